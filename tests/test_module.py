"""The base module: evaluation hooks, schedule, optimizer groups."""

import pytest
import torch

from reasonbench.model.optim import scheduled_lr

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


def test_warmup_then_cosine_counts_steps_from_one():
    """Step t's rate as the reference's pretrain.py computes it: t / warmup during the warm-up,
    then cosine from 1 to min_ratio at the planned total."""
    assert scheduled_lr(1.0, 1, 10, 110, 0.1) == 0.1
    assert scheduled_lr(1.0, 5, 10, 110, 0.1) == 0.5
    assert scheduled_lr(1.0, 10, 10, 110, 0.1) == 1.0
    assert scheduled_lr(1.0, 60, 10, 110, 0.1) == pytest.approx(0.55)
    assert scheduled_lr(1.0, 110, 10, 110, 0.1) == pytest.approx(0.1)
    assert scheduled_lr(1.0, 500, 10, 110, 0.1) == pytest.approx(0.1)  # a longer run stays at the floor
    assert scheduled_lr(1.0, 500, 10, 110, 1.0) == 1.0  # constant after warm-up
    # rounded as the reference rounds: base * t / warmup, not base * (t / warmup)
    assert scheduled_lr(1e-4, 1, 50, 100, 1.0) == 1e-4 * 1.0 / 50.0 != 1e-4 * (1 / 50)


def test_a_restored_schedule_continues_the_same_sequence():
    from reasonbench.model.optim import ScheduledLR

    def rate(base: float, step: int) -> float:
        return scheduled_lr(base, step, 3, 12, 0.1)

    def make() -> tuple[torch.optim.Optimizer, ScheduledLR]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        return optimizer, ScheduledLR(optimizer, rate)

    optimizer, schedule = make()
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
        if len(seen) == 5:
            saved = (optimizer.state_dict(), schedule.state_dict())
    assert seen == [rate(0.5, t) for t in range(1, 13)]
    assert "rate" not in saved[1]  # the function is not pickled into checkpoints
    optimizer, schedule = make()
    optimizer.load_state_dict(saved[0])
    schedule.load_state_dict(saved[1])
    resumed = []
    for _ in range(7):
        resumed.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert resumed == seen[5:]


def test_lightning_applies_step_ts_rate_to_update_t_for_weights_and_puzzle_table(tmp_path, monkeypatch):
    """The first update uses lr / warmup (not 0), update t the rate of step t, for the weights
    and the puzzle-embedding sign-SGD alike."""
    import lightning as L

    import reasonbench as rb
    from reasonbench.nn import PuzzleEmbedding

    task = rb.create_task("sudoku", preset="smoke")
    model = rb.create_model("trm", task=task, preset="smoke")
    model.optim.warmup_steps, model.optim.min_lr_ratio = 4, 0.1
    base, emb_base = model.optim.lr, model.optim.puzzle_emb_lr
    weight_rates: list[float] = []
    table_rates: list[float] = []

    class Spy(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            weight_rates.append(optimizer.param_groups[0]["lr"])

    sign_sgd_step = PuzzleEmbedding.sign_sgd_step
    monkeypatch.setattr(PuzzleEmbedding, "sign_sgd_step",
                        lambda self, lr, wd: (table_rates.append(lr), sign_sgd_step(self, lr, wd))[1])
    trainer = L.Trainer(max_steps=6, logger=False, enable_checkpointing=False, callbacks=[Spy()], limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=task)
    steps = range(1, 7)
    assert weight_rates == [scheduled_lr(base, t, 4, 6, 0.1) for t in steps]
    assert weight_rates[0] == base / 4 and weight_rates[3] == base
    assert model.puzzle_tables() and table_rates == [scheduled_lr(emb_base, t, 4, 6, 0.1) for t in steps]


def test_optimizer_decays_matrices_only_not_extras():
    model = LoopModel()
    optimizer = model.configure_optimizers()["optimizer"]
    decay, no_decay = optimizer.param_groups
    ids = lambda group: {id(p) for p in group["params"]}  # noqa: E731
    assert ids(decay) == {id(model.embed.weight), id(model.mix.weight), id(model.head.weight)}
    assert ids(no_decay) == {id(model.head.bias), id(model.extra.table.weight)}
    assert decay["weight_decay"] == model.optim.weight_decay and no_decay["weight_decay"] == 0.0
