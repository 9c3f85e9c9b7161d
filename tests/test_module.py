"""The base module: evaluation hooks, schedule, optimizer groups."""

import pytest
import torch

from reasonbench.optim import warmup_cosine

from .test_measure import LoopModel


def test_whole_split_aggregation_sees_every_prediction_in_order(monkeypatch):
    model = LoopModel()
    seen = {}

    def aggregate(predictions, confidences):
        seen["predictions"], seen["confidences"] = predictions, confidences
        return {"pass@1": 0.25}

    # in a run the task's aggregate_scores, reached through trainer.datamodule
    monkeypatch.setattr(LoopModel, "task_aggregate", property(lambda self: aggregate))
    batches = [{"inputs": torch.tensor([[k, 1, 2, 3]]), "labels": torch.tensor([[k, 1, 2, 3]]),
                "puzzle_ids": torch.zeros(1, dtype=torch.long)} for k in range(3)]
    model.eval()
    model.on_test_epoch_start()
    expected = []
    with torch.inference_mode():
        for i, batch in enumerate(batches):
            expected.append(model(batch).logits.argmax(-1))
            model.test_step(batch, i)
        with pytest.warns(Warning):  # self.log outside a Trainer only warns
            model.on_test_epoch_end()
    assert torch.equal(seen["predictions"], torch.cat(expected))
    assert seen["confidences"] is None
    assert model.test_results["pass@1"] == 0.25 and model.test_results["n_test_examples"] == 3


def test_warmup_then_cosine():
    assert warmup_cosine(0, 10, 110, 0.1) == 0.0
    assert warmup_cosine(5, 10, 110, 0.1) == 0.5
    assert warmup_cosine(10, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 110, 1.0) == 1.0  # constant after warm-up


def test_optimizer_decays_matrices_only_not_extras():
    model = LoopModel()
    optimizer = model.configure_optimizers()["optimizer"]
    decay, no_decay = optimizer.param_groups
    ids = lambda group: {id(p) for p in group["params"]}  # noqa: E731
    assert ids(decay) == {id(model.embed.weight), id(model.mix.weight), id(model.head.weight)}
    assert ids(no_decay) == {id(model.head.bias), id(model.extra.table.weight)}
    assert decay["weight_decay"] == model.optim.weight_decay and no_decay["weight_decay"] == 0.0
