"""timm-style: every registered model x task builds from its smoke preset and runs forward
and backward; gradients reach every trainable parameter."""

import pytest
import torch

import reasonbench as rb
from reasonbench.config import registry

PAIRS = [(m, t) for m in registry.list_models() for t in registry.list_tasks()]


@pytest.mark.parametrize("model_name, task_name", PAIRS)
def test_forward_backward_on_smoke(model_name, task_name):
    torch.manual_seed(0)
    task = rb.create_task(task_name, preset="smoke")
    model = rb.create_model(model_name, task=task, preset="smoke")
    meta = task.metadata
    batch = next(iter(task.train_dataloader()))
    assert batch["inputs"].dtype == torch.long and batch["inputs"].shape == (task.batch_size, meta.seq_len)
    model.train()
    loss, _ = model.training_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    model.eval()
    with torch.inference_mode():
        out = model(batch)
    assert out.logits.shape == (task.batch_size, meta.seq_len, meta.vocab_size)
