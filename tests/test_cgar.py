"""CGAR: the depth curriculum, the supervision weights, full depth at evaluation, and the
training-FLOPs saving measured per curriculum phase."""

from __future__ import annotations

import pytest
import torch

import reasonbench as rb
from reasonbench.tasks.base import TaskMetadata
from reasonbench_plugins.cgar import CGARModel

from .reference_layout import reference_batch

META = TaskMetadata(name="sudoku", vocab_size=11, seq_len=81, num_puzzle_ids=3, grid_shape=(9, 9))


def _tiny(**kw) -> CGARModel:
    torch.manual_seed(0)
    return CGARModel(META, **{**dict(hidden_size=16, num_heads=2, num_layers=1, puzzle_emb_dim=16, puzzle_emb_len=1,
                                    halt_max_steps=3, halt_exploration_prob=0.0), **kw})


@pytest.mark.parametrize("T, n, expected", [
    (3, 6, [(1, 2), (1, 2), (2, 4), (2, 4), (3, 6), (3, 6)]),  # the paper's Sudoku schedule
    (3, 4, [(1, 2), (1, 2), (2, 3), (2, 3), (3, 4), (3, 4)]),  # n at least 2 in the first stage
])
def test_depth_follows_training_progress(T, n, expected):
    model = _tiny(recursions=T, latent_steps=n)
    assert [model.depth_at(p) for p in (0.0, 0.29, 0.3, 0.59, 0.6, 1.0)] == expected
    assert _tiny(recursions=T, latent_steps=n, curriculum=False).depth_at(0.0) == (T, n)


def test_evaluation_runs_at_full_depth_whatever_the_progress():
    model = _tiny(recursions=3, latent_steps=4)
    calls = []
    model.net.register_forward_hook(lambda m, a, o: calls.append(1))
    model.depth_at = lambda progress: (1, 2)  # what training would use now
    model.eval()
    with torch.inference_mode():
        model(reference_batch())
    assert len(calls) == 3 * 3 * (4 + 1)  # 3 segments x 3 recursions x (4 latent + 1 answer)


def test_segment_losses_are_weighted_by_decay_to_the_power_of_segment_minus_one():
    weighted, plain = _tiny(), _tiny(supervision_decay=1.0)
    plain.load_state_dict(weighted.state_dict())
    batch = reference_batch()
    for step in range(1, 4):
        loss_w, logs_w = weighted.training_loss(batch)
        loss_p, logs_p = plain.training_loss(batch)
        # every slot is at segment `step` (no halting before halt_max_steps = 3)
        assert logs_w["lm_loss"].item() == pytest.approx(0.7 ** (step - 1) * logs_p["lm_loss"].item(), rel=1e-6)
        assert loss_w.item() == pytest.approx(0.7 ** (step - 1) * loss_p.item(), rel=1e-6)


def test_rejects_bad_curriculum_settings():
    with pytest.raises(ValueError, match="curriculum_stages"):
        _tiny(curriculum_stages=(0.7, 0.3))
    with pytest.raises(ValueError, match="supervision_decay"):
        _tiny(supervision_decay=0.0)


def test_curriculum_saves_training_flops_measured_in_each_phase(tmp_path):
    fast = {"trainer.enable_progress_bar": False, "measure.train_flop_steps": 1}
    trm = rb.run("trm", "maze", preset="smoke", seed=0, out=str(tmp_path), **fast)
    cgar = rb.run("cgar", "maze", preset="smoke", seed=0, out=str(tmp_path), **fast)
    assert cgar["cost"]["train_steps"] == trm["cost"]["train_steps"] == 24
    # smoke TRM: T=2, n=2 -> CGAR runs (1,2) for 8 steps, (2,2) after: (8*3 + 16*6) / (24*6) of the net calls
    saving = cgar["cost"]["train_flops"] / trm["cost"]["train_flops"]
    assert 0.75 < saving < 0.95
    assert cgar["cost"]["flops_per_example_forward"] == trm["cost"]["flops_per_example_forward"]
