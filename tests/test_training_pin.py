"""Training equal to the reference code step by step: reasonbench's own training (Lightning,
its Adam-atan2, learning-rate schedule, puzzle-embedding sign-SGD, EMA, slots carried across
batches, EqR's random starting states and noise) over the batch stream of
``tests/reference_layout.py`` gives the losses, rates, halting decisions and weights the
reference implementations gave (``tests/data/reference_training.json``, made by
``benchmarks/reference_training.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from reasonbench.nn import PuzzleEmbedding
from reasonbench.model.optim import OptimConfig
from reasonbench.config.registry import get_model
from reasonbench.tasks.base import TaskMetadata
from reasonbench.tools.checkpoint_import import rename_reference_state

from .reference_layout import (CONFIGS, EMA_DECAY, NUM_IDS, SEQ_LEN, TRAINING, TRAINING_BATCH, TRAINING_CONFIGS,
                               TRAINING_STEPS, VOCAB, eqr_draw, exploration_draws, parameter_digest,
                               reference_state_dict, training_batches)

PINNED = json.loads((Path(__file__).parent / "data" / "reference_training.json").read_text())
META = TaskMetadata(name="sudoku", vocab_size=VOCAB, seq_len=SEQ_LEN, num_puzzle_ids=NUM_IDS, grid_shape=(9, 9))
# float64 throughout: the two implementations round alike but not identically (their EMA and
# loss sums order operations differently, ~1e-16); that stays far below 1e-9 over the pinned
# steps, while a rate one step late moves the weights by ~1e-3 relative within 20 steps
RTOL = 1e-9


def train_like_the_reference(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict]:
    """reasonbench's model of config ``name``, from the reference weights, trained by Lightning
    for the pinned steps; per step what the pin holds."""
    arch = dict(CONFIGS[name])
    cls = get_model(arch["arch"])
    optim = OptimConfig(name="adam_atan2", ema_decay=EMA_DECAY[name], **TRAINING)
    model = cls(META, optim, **cls.reference_arguments(arch))
    model.load_state_dict(rename_reference_state(cls, reference_state_dict(name)), strict=True)
    model.double()
    digested = sorted(rename_reference_state(cls, reference_state_dict(name)))

    draws = exploration_draws(arch["halt_max_steps"])
    calls = {"uniform": 0, "integer": 0}

    def batch_rand(n: int, device: torch.device) -> torch.Tensor:
        calls["uniform"] += 1
        return draws[calls["uniform"] - 1][0]

    def batch_randint(low: int, high: int, n: int, device: torch.device) -> torch.Tensor:
        calls["integer"] += 1
        return draws[calls["integer"] - 1][1]

    monkeypatch.setattr(model, "batch_rand", batch_rand)
    monkeypatch.setattr(model, "batch_randint", batch_randint)
    steps: list[dict] = []
    # EqR: each draw of its starting states (a fill given: the answer state's, then the latent's)
    # and of its noise (none) made by the model's own batch_randn inside eqr_draw, as the
    # reference run made its own draws (benchmarks/reference_training.py)
    current = {"step": 0, "starts": 0, "noises": 0}  # the step in training, its draws so far
    batch_randn = model.batch_randn

    def drawn_like_the_reference(shape, dtype, device, fill=None):
        kind = "noises" if fill is None else "starts"
        draw = current[kind] + (2 if kind == "noises" else 0)
        current[kind] += 1
        with eqr_draw(current["step"], draw):
            return batch_randn(shape, dtype, device, fill)

    monkeypatch.setattr(model, "batch_randn", drawn_like_the_reference)
    table_rates: list[float] = []
    sign_sgd_step = PuzzleEmbedding.sign_sgd_step
    monkeypatch.setattr(PuzzleEmbedding, "sign_sgd_step",
                        lambda self, lr, wd: (table_rates.append(lr), sign_sgd_step(self, lr, wd))[1])
    training_terms = model.training_terms

    def recorded_terms(batch):
        current.update(step=current["step"] + 1, starts=0, noises=0)
        terms, logs = training_terms(batch)
        steps.append({"terms": {k: float(v.detach()) for k, v in terms.items()},
                      "draws": (current["starts"], current["noises"])})
        return terms, logs

    monkeypatch.setattr(model, "training_terms", recorded_terms)

    class Record(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            steps[-1]["lr"] = optimizer.param_groups[0]["lr"]

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            pin = steps[-1]
            pin["loss"] = float(outputs["loss"])
            pin["halted"], pin["segments"] = module._carry.halted.tolist(), module._carry.steps.tolist()
            state = module.state_dict()
            pin["weights"] = parameter_digest({k: state[k] for k in digested})
            if module.ema is not None:
                pin["ema_names"] = sorted(module.ema.shadow)
                pin["ema_weights"] = parameter_digest(module.ema.shadow)

    loader = torch.utils.data.DataLoader(training_batches(), batch_size=None)
    trainer = L.Trainer(max_steps=TRAINING_STEPS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[Record()],
                        default_root_dir=tmp_path)
    trainer.fit(model, train_dataloaders=loader)
    assert calls == {"uniform": TRAINING_STEPS, "integer": TRAINING_STEPS}
    # EqR: two starts (every slot's) and a noise tensor per update at every step; the others none
    expected = (0, 0)
    if arch["arch"] == "eqr":
        expected = (2, arch["H_cycles"] * (arch["L_cycles"] + 1) if arch["noise_scale"] else 0)
    assert [pin.pop("draws") for pin in steps] == [expected] * TRAINING_STEPS
    for pin, rate in zip(steps, table_rates, strict=len(table_rates) > 0):  # none without a puzzle embedding
        pin["puzzle_emb_lr"] = rate
    return steps


def _assert_digest(ours: dict, theirs: dict, what: str) -> None:
    assert ours["sumsq"] == pytest.approx(theirs["sumsq"], rel=RTOL, abs=0), f"{what}: sum of squares"
    assert abs(ours["projection"] - theirs["projection"]) <= RTOL * theirs["scale"], f"{what}: projection"


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_training_follows_the_reference_step_by_step(name, monkeypatch, tmp_path):
    pinned = PINNED[name]
    ours = train_like_the_reference(name, monkeypatch, tmp_path)
    assert len(ours) == len(pinned["steps"]) == TRAINING_STEPS
    for mine, ref in zip(ours, pinned["steps"]):
        where = f"{name} step {ref['step']}"
        # the rates are computed by the same formula in the same order: equal, not close
        assert mine["lr"] == ref["lr"], f"{where}: learning rate"
        assert mine.get("puzzle_emb_lr") == ref.get("puzzle_emb_lr"), f"{where}: puzzle-embedding rate"
        assert mine["terms"].keys() == ref["terms"].keys(), where
        for term, value in ref["terms"].items():
            assert mine["terms"][term] == pytest.approx(value, rel=RTOL, abs=0), f"{where}: {term}"
        assert mine["loss"] == pytest.approx(ref["loss"], rel=RTOL, abs=0), f"{where}: loss"
        assert mine["halted"] == ref["halted"] and mine["segments"] == ref["segments"], f"{where}: halting"
        _assert_digest(mine["weights"], ref["weights"], f"{where}: weights")
        if "ema_weights" in ref:
            assert mine["ema_names"] == pinned["names"]["ema_weights"], where
            _assert_digest(mine["ema_weights"], ref["ema_weights"], f"{where}: EMA weights")


def test_the_pinned_stream_exercises_warmup_cosine_halting_and_exploration():
    """The pins would not catch what they never see: the warm-up and the cosine both lie in the
    pinned steps, slots halt early and late, and exploration delays some halts."""
    assert sorted(k for k in PINNED if not k.startswith("_")) == sorted(TRAINING_CONFIGS)
    for name in TRAINING_CONFIGS:
        steps = PINNED[name]["steps"]
        rates = [s["lr"] for s in steps]
        assert rates[0] == TRAINING["lr"] / TRAINING["warmup_steps"] and max(rates) == TRAINING["lr"]
        assert rates[-1] == pytest.approx(TRAINING["lr"] * TRAINING["min_lr_ratio"])
        segments = {n for s in steps for n, h in zip(s["segments"], s["halted"]) if h}
        assert len(segments) >= 2, f"{name}: slots halt after {segments} segments only"
    assert any(bool((u < CONFIGS["hrm"]["halt_exploration_prob"]).any())
               for u, _ in exploration_draws(CONFIGS["hrm"]["halt_max_steps"]))
    # EqR: noise on, and some slots restart while others carry on (the restarting ones take
    # their rows of the starts drawn for every slot)
    eqr = [name for name in TRAINING_CONFIGS if CONFIGS[name]["arch"] == "eqr"]
    assert {CONFIGS[name]["mlp_t"] for name in eqr} == {False, True}
    for name in eqr:
        assert CONFIGS[name]["noise_scale"] > 0
        assert any(0 < sum(s["halted"]) < TRAINING_BATCH for s in PINNED[name]["steps"][:-1])
    assert len({tuple(b["puzzle_ids"].tolist()) for b in training_batches()}) > 1 and TRAINING_BATCH > NUM_IDS - 1
