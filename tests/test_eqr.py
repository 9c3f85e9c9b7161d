"""EqR: fidelity to the reference code (float64 pins, its random draws seeded alike), the
reference parameter counts, the damped noisy update, seeded reproducibility, and the import of
the reference's training checkpoints (eqr.pth: a file or hf://)."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from reasonbench.tasks.base import TaskMetadata
from reasonbench.tools.checkpoint_import import rename_reference_state
from reasonbench_plugins.eqr import EqRModel

from .conftest import call_cli
from .reference_layout import CONFIGS, EQR_SEED, NUM_IDS, SEQ_LEN, VOCAB, reference_batch, reference_state_dict
from .test_hub import hub_cache, hub_commit  # noqa: F401 (a fixture)

PINNED = json.loads((Path(__file__).parent / "data" / "reference_outputs.json").read_text())
META = TaskMetadata(name="sudoku", vocab_size=VOCAB, seq_len=SEQ_LEN, num_puzzle_ids=NUM_IDS, grid_shape=(9, 9))
EQR_CONFIGS = ["eqr_attention", "eqr_attention_noiseless", "eqr_mlp"]


def imported_model(name: str) -> EqRModel:
    model = EqRModel(META, **EqRModel.reference_arguments(dict(CONFIGS[name]))).eval()
    model.load_state_dict(rename_reference_state(EqRModel, reference_state_dict(name)), strict=True)
    return model


def assert_equals_pins(model: EqRModel, name: str, atol: float = 1e-9) -> None:
    """Seeded as the reference run was, every segment's logits and halting logit equal the
    reference code's (float64) within ``atol``."""
    batch = reference_batch()
    torch.manual_seed(EQR_SEED)
    state = model.initial_state(batch)
    with torch.no_grad():
        for pinned in PINNED[name]:
            state, logits, q_halt, _ = model.segment(state, batch)
            assert logits.dtype == q_halt.dtype == torch.float64
            torch.testing.assert_close(logits[0, 0], torch.tensor(pinned["logits_first"], dtype=torch.float64),
                                       atol=atol, rtol=0)
            torch.testing.assert_close(q_halt, torch.tensor(pinned["q_halt"], dtype=torch.float64), atol=atol, rtol=0)
            tol = atol * logits.numel() ** 0.5
            assert logits.sum().item() == pytest.approx(pinned["logits_sum"], abs=tol, rel=0)
            assert logits.abs().sum().item() == pytest.approx(pinned["logits_abs_sum"], abs=tol, rel=0)


# float64 as the pins of HRM and TRM (tests/test_recursive.py): CPU rounding reaches ~1e-13 after 3
# segments, a wrong operation moves the outputs by far more than 1e-9. The starting states and the
# noise are the same numbers as the reference's: both draw them from torch's generator, seeded
# alike, in the same order and shapes.
@pytest.mark.parametrize("name", EQR_CONFIGS)
def test_outputs_equal_the_reference_implementation(name):
    assert_equals_pins(imported_model(name).double(), name)


def test_the_pins_tell_noise_and_its_absence_apart():
    """The noisy and noiseless pins differ by far more than the tolerance, so the noise (where
    it is added, in evaluation too) is what the pins check."""
    noisy, quiet = PINNED["eqr_attention"][-1]["logits_first"], PINNED["eqr_attention_noiseless"][-1]["logits_first"]
    assert max(abs(a - b) for a, b in zip(noisy, quiet)) > 1e-3


PAPER_COUNTS = [("sudoku", 4_855_298), ("maze", 263_938), ("arc", 6_829_058)]


@pytest.mark.parametrize("task, expected", PAPER_COUNTS)
def test_paper_presets_have_the_reference_parameter_counts(task, expected):
    # the reference EqR built from its own configs at these task shapes (benchmarks/reference_outputs.py)
    assert PINNED["eqr_paper_parameters"][task] == expected
    result = call_cli("info", "--model", "eqr", "--task", task, "--preset", "paper")
    assert result.returncode == 0, result.stderr
    assert f"parameters  {expected:,}\n" in result.stdout


def _tiny(**kw) -> EqRModel:
    torch.manual_seed(0)
    base = dict(hidden_size=16, num_heads=2, num_layers=1, recursions=3, latent_steps=2, halt_max_steps=3,
                halt_exploration_prob=0.0)
    return EqRModel(META, **{**base, **kw}).double()


def test_an_update_is_damped_and_adds_seeded_noise():
    model = _tiny(damping=0.9, noise_scale=0.25)
    state, injection = torch.randn(2, SEQ_LEN, 16, dtype=torch.float64), torch.randn(2, SEQ_LEN, 16, dtype=torch.float64)
    torch.manual_seed(5)
    got = model.update(state, injection, model.rotary_tables())
    f = model.net(state, injection, model.rotary_tables())
    torch.manual_seed(5)
    noise = torch.randn_like(state)
    torch.testing.assert_close(got, 0.1 * state + 0.9 * f + 0.25 * noise, atol=1e-12, rtol=0)
    quiet = _tiny(damping=0.9, noise_scale=0.0)
    quiet.load_state_dict(model.state_dict())
    torch.testing.assert_close(quiet.update(state, injection, quiet.rotary_tables()), 0.1 * state + 0.9 * f, atol=1e-12, rtol=0)


def test_starting_states_are_truncated_normals_of_their_stds_per_example():
    model = _tiny(high_init_std=2.0, low_init_std=0.5)
    batch = {"inputs": torch.zeros(64, SEQ_LEN, dtype=torch.long)}
    high, low = model.initial_state(batch)
    assert high.shape == low.shape == (64, SEQ_LEN, 16) and high.dtype == torch.float64
    assert high.std().item() == pytest.approx(2.0, rel=0.02) and low.std().item() == pytest.approx(0.5, rel=0.02)
    assert high.abs().max().item() <= 2 * 2.0 / 0.8796 + 1e-9  # bounds at 2 standard normals, rescaled
    assert not torch.equal(high[0], high[1])  # drawn per example, not one shared vector
    assert "high_init" not in model.state_dict() and "low_init" not in model.state_dict()


def test_evaluation_samples_from_the_seeded_generator():
    model = _tiny().eval()
    batch = reference_batch()

    def logits(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        with torch.inference_mode():
            return model(batch).logits

    assert torch.equal(logits(3), logits(3))
    assert not torch.equal(logits(3), logits(4))


def test_only_the_last_recursion_carries_gradient():
    model = _tiny().train()
    modes = []
    model.net.register_forward_hook(lambda m, a, o: modes.append(torch.is_grad_enabled()))
    batch = reference_batch()
    state0 = tuple(s.requires_grad_(True) for s in model.initial_state(batch))
    y, _ = model.reason(state0, model.encode(batch))
    assert modes == [False] * 6 + [True] * 3  # 3 recursions of (2 latent + 1 answer) updates
    grads = torch.autograd.grad(y.sum(), list(state0), allow_unused=True)
    assert grads[0] is None and grads[1] is None


@dataclass
class ModelCarry:  # stands for the reference's training carry, pickled in its checkpoints
    z_H: torch.Tensor
    steps: torch.Tensor


def released_checkpoint(name: str) -> bytes:
    """A checkpoint as the reference's training script writes it (utils/checkpoint.py): the
    loss head's state dict under ``model``, the EMA under ``ema``, its run config, and training
    state holding objects of its own classes and numpy's random state. The EMA holds the
    reference-layout weights; ``model`` holds other ones (the reference evaluates the EMA)."""
    weights = reference_state_dict(name)
    arch = {k: v for k, v in CONFIGS[name].items() if k not in ("arch", "levels")}
    arch.update(name="eqr@EqRModel", loss={"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"})
    checkpoint = {"step": 100, "total_steps": 100, "model": {k: v + 0.5 for k, v in weights.items()},
                  "optimizers": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}], "optimizer_lrs": [1e-4],
                  "carry": ModelCarry(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int32)),
                  "rng": {"torch": torch.get_rng_state(), "cuda": None}, "numpy": np.random.get_state(),
                  "python": random.getstate(), "train_dataset": None, "iteration": 7,
                  "config": {"arch": arch, "ema": True, "ema_rate": 0.999, "global_batch_size": 768, "seed": 0},
                  "ema": {"mu": 0.999, "shadow": dict(weights)}, "wandb_run_id": None}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def _imported(out: Path) -> EqRModel:
    saved = torch.load(out, weights_only=True)
    assert saved["imported_from"]["weights"] == "EMA (mu 0.999)"
    args = {k: v for k, v in saved["config"]["model"].items() if k != "name"}
    model = EqRModel(META, **args).double().eval()
    model.load_state_dict(saved["state_dict"], strict=True)
    return model


def test_import_checkpoint_reads_the_released_layout_and_gives_the_reference_outputs(tmp_path):
    path = tmp_path / "sudoku-extreme" / "eqr.pth"
    path.parent.mkdir()
    path.write_bytes(released_checkpoint("eqr_attention"))
    out = tmp_path / "eqr.pt"
    result = call_cli("import-checkpoint", "--from", "eqr", str(path), "--task", "sudoku", "--preset", "smoke",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "(EMA (mu 0.999) weights)" in result.stdout and "the config stored in eqr.pth" in result.stdout
    model = _imported(out)
    assert (model.damping, model.noise_scale, model.high_init_std, model.low_init_std) == (0.95, 0.01, 1.0, 0.5)
    assert_equals_pins(model, "eqr_attention")


def test_import_checkpoint_by_hub_id(hub_cache, tmp_path):  # noqa: F811 (the fixture)
    hub_commit(hub_cache, "locuslab/EqR-model", {"sudoku-extreme/eqr.pth": released_checkpoint("eqr_mlp")},
               repo_type="model")
    out = tmp_path / "eqr.pt"
    result = call_cli("import-checkpoint", "--from", "eqr", "hf://locuslab/EqR-model:sudoku-extreme/eqr.pth",
                      "--task", "sudoku", "--preset", "smoke", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "read sudoku-extreme/eqr.pth of locuslab/EqR-model" in result.stdout
    model = _imported(out)
    assert model.net.layers[0].seq_mlp is not None
    assert_equals_pins(model, "eqr_mlp")


def test_import_names_eqr_weights_imported_as_trm(tmp_path):
    path = tmp_path / "eqr.pth"
    path.write_bytes(released_checkpoint("eqr_attention"))
    result = call_cli("import-checkpoint", "--from", "trm", str(path), "--task", "sudoku", "--out", str(tmp_path / "x.pt"))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "holds EQR weights" in line and "--from eqr" in line and "\n" not in line
    assert not (tmp_path / "x.pt").exists()


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 (what a hostile checkpoint pickles)
        import os

        return os.system, (f"touch {self.marker}",)


def test_objects_pickled_in_a_training_checkpoint_never_run(tmp_path):
    """The training state's objects are left unread: a pickled call (here os.system) in a
    checkpoint is never made, and the weights beside it still import."""
    marker = tmp_path / "ran"
    checkpoint = torch.load(io.BytesIO(released_checkpoint("eqr_attention")), weights_only=False)
    checkpoint["carry"] = _RunsCode(marker)
    path = tmp_path / "eqr.pth"
    torch.save(checkpoint, path)
    out = tmp_path / "eqr.pt"
    result = call_cli("import-checkpoint", "--from", "eqr", str(path), "--task", "sudoku", "--preset", "smoke",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert_equals_pins(_imported(out), "eqr_attention")


def _half_batch_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = _tiny().eval()
    batch = {k: v[rank * 2:(rank + 1) * 2] for k, v in reference_batch(batch_size=4).items()}
    torch.manual_seed(7)
    with torch.inference_mode():
        torch.save(model(batch).logits, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: tens of seconds
def test_two_processes_sample_what_one_does_for_the_same_examples(tmp_path):
    """Each process draws the global batch's starting states and noise and keeps its rows: two
    processes holding half a batch each give the logits one process gives for the whole batch."""
    import torch.multiprocessing as mp

    mp.spawn(_half_batch_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    halves = torch.cat([torch.load(tmp_path / f"rank{r}.pt") for r in range(2)])
    model = _tiny().eval()
    torch.manual_seed(7)
    with torch.inference_mode():
        whole = model(reference_batch(batch_size=4)).logits
    torch.testing.assert_close(halves, whole, atol=1e-12, rtol=0)


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast_bf16"])
def test_training_steps_never_wait_for_the_device(fast):
    """EqR's draws and updates add no host read to a training step; on the fast path under
    bf16 autocast (as a GPU runs it) the state is bfloat16, as the reference computes it."""
    from reasonbench.model import fastpath
    from reasonbench.model.fastpath import no_host_sync
    from reasonbench.model.optim import AdamAtan2

    torch.manual_seed(0)
    model = EqRModel(META, hidden_size=16, num_heads=2, num_layers=1, recursions=2, latent_steps=2,
                     halt_max_steps=3).train()
    model.defer_divergence_check = True
    fastpath.set_fast_path(model, fast)
    opt = AdamAtan2(list(model.parameters()), lr=1e-3, weight_decay=0.1)
    with no_host_sync():
        for step in range(4):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
                loss = model.training_step(reference_batch(seed=step), step)
            loss.backward()
            opt.step()
            opt.zero_grad()
    assert not model.check_divergence()
    assert model._carry.state[0].dtype == (torch.bfloat16 if fast else torch.float32)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(config={"ema": True}), "its stored config has no 'arch' section"),
    (lambda c: c.update(model={"a": 1}, ema={}), "its 'model' entry is not a state dict of tensors"),
    (lambda c: c["config"]["arch"].update(hidden_size=32), "says hidden_size 32, the weights are 16 wide"),
])
def test_a_bad_training_checkpoint_is_one_line(tmp_path, change, message):
    checkpoint = torch.load(io.BytesIO(released_checkpoint("eqr_attention")), weights_only=False)
    change(checkpoint)
    path = tmp_path / "eqr.pth"
    torch.save(checkpoint, path)
    result = call_cli("import-checkpoint", "--from", "eqr", str(path), "--task", "sudoku", "--out", str(tmp_path / "x.pt"))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert message in line and "\n" not in line, line
    assert not (tmp_path / "x.pt").exists()


def test_loss_falls_within_a_few_dozen_steps():
    """A fixed batch of 8 easy Sudokus: the answer loss more than halves in 40 steps, through the
    random starting states and the noise (as for HRM and TRM in tests/test_recursive.py)."""
    import reasonbench as rb
    from reasonbench.model.optim import AdamAtan2

    task = rb.create_task("sudoku", preset="smoke")
    batch = {k: v[:8] for k, v in next(iter(task.train_dataloader())).items()}
    torch.manual_seed(0)
    model = EqRModel(META, hidden_size=32, num_heads=2, num_layers=1, recursions=3, latent_steps=2, mixer="mlp",
                     pos_encodings="none", halt_max_steps=2, halt_exploration_prob=0.0).train()
    opt = AdamAtan2(list(model.parameters()), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(40):
        loss, logs = model.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(logs["lm_loss"].item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_a_pickle_that_is_no_torch_file_runs_nothing(tmp_path):
    """A bare pickle of a call (no torch archive, torch's legacy path) is refused in one line and
    the call is never made."""
    import pickle

    marker = tmp_path / "ran"
    path = tmp_path / "eqr.pth"
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    result = call_cli("import-checkpoint", "--from", "eqr", str(path), "--task", "sudoku", "--out", str(tmp_path / "x.pt"))
    assert result.returncode == 2 and "\n" not in result.stderr.strip() and str(path) in result.stderr
    assert not marker.exists()
