"""The fast GPU path, checked on the CPU: training steps that never read the device on the host
(divergence still recorded at the step it happened), fused blocks equal to the eager ones within
bf16 tolerance (and off by default on the CPU), regional compilation equal to eager, and the
prepared GPU session script in its CPU smoke form."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from reasonbench.model import fastpath
from reasonbench.model.fastpath import HostSyncError, no_host_sync
from reasonbench.nn import PuzzleEmbedding
from reasonbench.model.optim import AdamAtan2
from reasonbench.tasks.base import TaskMetadata
from reasonbench_plugins.hrm import HRMModel
from reasonbench_plugins.trm import TRMModel

from .reference_layout import CONFIGS, reference_batch
from .test_recursive import imported_model

META = TaskMetadata(name="sudoku", vocab_size=11, seq_len=81, num_puzzle_ids=1, grid_shape=(9, 9))
TINY = {TRMModel: dict(hidden_size=32, num_heads=2, num_layers=2, recursions=2, latent_steps=2, mixer="mlp",
                       pos_encodings="none", puzzle_emb_dim=32, puzzle_emb_len=16, halt_max_steps=2),
        HRMModel: dict(hidden_size=32, num_heads=2, high_layers=1, low_layers=1, high_cycles=2, low_cycles=2,
                       puzzle_emb_dim=32, halt_max_steps=2)}


def tiny(cls, **kw):
    torch.manual_seed(0)
    return cls(META, **{**TINY[cls], **kw})


def sudoku_batch(size: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(1, 11, (size, 81), generator=g), "labels": torch.randint(2, 11, (size, 81), generator=g),
            "puzzle_ids": torch.zeros(size, dtype=torch.long)}


# --- no host synchronisation ---------------------------------------------------------------------
def test_the_guard_catches_every_kind_of_host_read():
    t = torch.randn(6)
    for read in (lambda: bool(t.sum() > 0), lambda: t.sum().item(), lambda: t[t > 0], lambda: t.tolist(),
                 lambda: t.nonzero(), lambda: t.unique(), lambda: float(t[0]), lambda: t.to("cpu")):
        with pytest.raises(HostSyncError), no_host_sync():
            read()
    with no_host_sync():  # device-side selections are fine
        torch.where(t > 0, t, 0).sum(), (t > 0).any(), t[torch.tensor([0, 2])]


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast_bf16"])
@pytest.mark.parametrize("cls", [TRMModel, HRMModel])
def test_training_steps_never_wait_for_the_device(cls, fast):
    """Forward, loss, logging, backward, Adam-atan2 and the puzzle sign-SGD of several steps (slots
    halting and refilled) with no host read, as on a GPU (the divergence check deferred); also
    on the fast path under bf16 autocast, as the GPU runs it."""
    model = tiny(cls).train()
    model.defer_divergence_check = True
    fastpath.set_fast_path(model, fast)
    opt = AdamAtan2([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.1)
    with no_host_sync():
        for step in range(4):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
                loss = model.training_step(sudoku_batch(seed=step), step)
            loss.backward()
            opt.step()
            opt.zero_grad()
            model.puzzle_embedding.sign_sgd_step(1e-3, 0.1)
    assert not model.check_divergence() and model._non_finite[0].item() == -1


def test_logged_metrics_are_over_the_finished_examples():
    """Masked sums give what the masked means gave: exact accuracy, segments and halting
    accuracy over the slots that halted this step (0 where none did, as the reference logs)."""
    model = tiny(TRMModel, halt_max_steps=3).train()
    with torch.no_grad():
        model.halt.linear.bias.copy_(torch.tensor([5.0, 0.0]))  # q_halt > 0: every slot halts
    batch = sudoku_batch()
    batch["labels"][:3] = batch["inputs"][:3]  # not solved; metrics need supervised cells only
    batch["labels"][5] = -100  # nothing to score: not counted
    _, logs = model.training_loss(batch)
    assert model._carry.halted.all()
    assert logs["steps"].item() == 1.0 and logs["exact_accuracy"].item() == 0.0
    assert logs["halting_accuracy"].item() == 0.0  # it halts (q_halt >= 0) on answers that are wrong
    with torch.no_grad():
        model.halt.linear.bias.copy_(torch.tensor([-5.0, 0.0]))
    model._carry = None
    _, logs = model.training_loss(batch)  # nothing finished
    assert (logs["steps"].item(), logs["exact_accuracy"].item(), logs["halting_accuracy"].item()) == (0, 0, 0)


def test_dense_sign_sgd_equals_the_update_over_unique_rows():
    """A table no longer than the batch is updated without ``unique`` (which waits for the
    device), bit for bit as the rows-used update does."""
    torch.manual_seed(0)
    table = PuzzleEmbedding(3, 4)
    with torch.no_grad():
        table.weight.normal_()
    before = table.weight.detach().clone()
    ids = torch.tensor([2, 0, 2, 2, 0, 2])  # row 1 unused
    rows = table(ids)
    grad = torch.randn(6, 4)
    rows.backward(grad)
    table.sign_sgd_step(0.1, 0.5)
    expected = before.clone()
    for i in (0, 2):
        summed = grad[ids == i].sum(0)
        expected[i] = before[i].mul(1 - 0.1 * 0.5).add(summed.sign(), alpha=-0.1)
    assert torch.equal(table.weight.detach(), expected)


DIVERGING_AT = 2


class _Loader(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in sudoku_batch(1, seed=i).items()}


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "at_once"])
def test_divergence_is_recorded_at_the_step_it_happened(deferred):
    """Read on the host every 3 steps (deferred, as on a GPU) or at once (the CPU): the same
    step and loss are recorded, and training stops at the first read."""

    class Diverging(TRMModel):
        def training_loss(self, batch):
            loss, logs = super().training_loss(batch)
            return (loss * float("nan") if self.global_step >= DIVERGING_AT else loss), logs

    torch.manual_seed(0)
    model = Diverging(META, **TINY[TRMModel])
    model.defer_divergence_check, model.divergence_check_interval = deferred, 3
    trainer = L.Trainer(accelerator="cpu", max_steps=10, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, torch.utils.data.DataLoader(_Loader(), batch_size=4))
    assert model.diverged == f"non-finite training loss (nan) at step {DIVERGING_AT}"
    assert model.diverged_step == DIVERGING_AT
    # deferred: the update of step 2 happened, then the read after it stopped training at step 3
    assert trainer.global_step == (3 if deferred else DIVERGING_AT + 1)


# --- fused blocks ----------------------------------------------------------------------------------
def test_fast_path_is_off_on_the_cpu_unless_asked(monkeypatch):
    model = tiny(TRMModel)
    monkeypatch.delenv(fastpath.FAST_PATH_ENV, raising=False)
    fastpath.prepare(model)
    assert not fastpath.fast_path_on(model)
    monkeypatch.setenv(fastpath.FAST_PATH_ENV, "1")
    fastpath.prepare(model)
    assert fastpath.fast_path_on(model)
    fastpath.set_fast_path(model, False)  # an explicit choice outlasts the environment
    fastpath.prepare(model)
    assert not fastpath.fast_path_on(model)
    monkeypatch.delenv(fastpath.FAST_PATH_ENV)
    assert fastpath.fast_path_default(torch.device("cuda")) and not fastpath.fast_path_default(torch.device("cpu"))


def _segments(model, batch, n: int = 2):
    state, out = model.initial_state(batch), []
    with torch.no_grad():
        for _ in range(n):
            state, logits, q_halt, _ = model.segment(state, batch)
            out += [logits.float(), q_halt.float()]
    return out


@pytest.mark.parametrize("name", ["trm_mlp", "trm_attention", "hrm"])
def test_fast_path_equals_the_eager_path(name):
    """Two segments of the reference-layout models. In float32 the fused blocks equal the eager
    ones within float32 rounding. Under CPU bf16 autocast (the GPU path's dtype), where the fast
    path also keeps the state in bfloat16 as the reference does, outputs are as close to the
    float32 ones as a bfloat16 model's (the reference's dtype) or the eager autocast path's,
    within a factor 2: bf16 keeps 8 bits, and 12 block applications a segment amplify them."""
    model, batch = imported_model(name), reference_batch()
    exact = _segments(model, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager_bf16 = _segments(model, batch)
    pure_bf16 = _segments(imported_model(name).to(torch.bfloat16), batch)
    fastpath.set_fast_path(model, True)
    assert fastpath.fast_path_on(model) and model.state_dtype("cpu") is None
    for a, b in zip(_segments(model, batch), exact):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.state_dtype("cpu") == torch.bfloat16
        fused_bf16 = _segments(model, batch)
    for fused, eager, pure, want in zip(fused_bf16, eager_bf16, pure_bf16, exact):
        bf16_error = max((eager - want).abs().max().item(), (pure - want).abs().max().item())
        assert (fused - want).abs().max().item() <= 2 * bf16_error + 0.02 * want.abs().max().item(), name


def test_only_the_declared_recursion_runs_in_bfloat16():
    """A subclass with its own recursion (an ODE, a solver) keeps its float32 state."""

    class OwnRecursion(TRMModel):
        def recursion(self, y, z, x, latent_steps, rotary):
            return super().recursion(y, z, x, latent_steps, rotary)

    class SameRecursion(TRMModel):
        pass

    for cls, dtype in ((TRMModel, torch.bfloat16), (SameRecursion, torch.bfloat16), (OwnRecursion, None)):
        model = cls(META, **TINY[TRMModel])
        fastpath.set_fast_path(model, True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert model.state_dtype("cpu") == dtype, cls


def test_fused_token_mixing_pads_to_aligned_gemms():
    """97 positions (81 + 16 puzzle rows) run as GEMMs over 104: the fused mixer's output equals
    the eager one, gradients too."""
    torch.manual_seed(0)
    from reasonbench.nn import SequenceMLP

    mixer = SequenceMLP(97)
    x = torch.randn(4, 97, 24, requires_grad=True)
    eager = mixer(x)
    (g_eager,) = torch.autograd.grad(eager.square().sum(), x)
    mixer.fused = True
    fused = mixer(x)
    (g_fused,) = torch.autograd.grad(fused.square().sum(), x)
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_fused, g_eager, atol=1e-4, rtol=1e-4)


# --- regional compilation --------------------------------------------------------------------------
def test_compile_blocks_takes_the_repeated_block_once():
    trm, hrm = tiny(TRMModel), tiny(HRMModel)
    assert fastpath.compile_blocks(trm) == ["net"] and fastpath.compiled_blocks(trm) == ["net"]
    assert fastpath.compile_blocks(trm) == ["net"]  # again: nothing new
    assert sorted(fastpath.compile_blocks(hrm)) == ["high", "low"]
    # compiled in place: the weights keep their names (checkpoints unchanged)
    assert list(trm.state_dict()) == list(tiny(TRMModel).state_dict())


@pytest.mark.slow
def test_compiled_blocks_equal_eager_and_report_the_compile_time(capsys):
    """A tiny TRM with its block compiled (inductor, CPU): segment outputs and a training step's
    gradients equal the eager ones within float32 rounding. Prints the compile time."""
    eager, compiled = tiny(TRMModel).train(), tiny(TRMModel).train()
    batch = sudoku_batch()
    fastpath.compile_blocks(compiled)
    t0 = time.perf_counter()
    out = _segments(compiled, batch, 1)
    seconds = time.perf_counter() - t0
    for a, b in zip(out, _segments(eager, batch, 1)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    grads = []
    for model in (eager, compiled):
        model._carry = None
        loss, _ = model.training_loss(batch)
        loss.backward()
        grads.append([p.grad for p in model.net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    with capsys.disabled():
        print(f"\ntiny TRM block compiled (no-grad graph) in {seconds:.1f} s, cache {fastpath.configure_compile_cache()}")


# --- the prepared GPU session ----------------------------------------------------------------------
@pytest.mark.slow
def test_gpu_session_smoke_runs_its_parts_on_the_cpu(tmp_path):
    """The GPU session's script with the smoke presets on the CPU: the environment probe, the
    bench rows, and where reference checkouts are found (trm_ref, hrm_ref in the temporary folder) the
    reference comparison; each part's JSON and the summary written."""
    parts = ["env", "bench"] + [f"reference_{m}" for m in ("trm", "hrm") if (Path(tempfile.gettempdir()) / f"{m}_ref" / "models").is_dir()]
    out = tmp_path / "session"
    result = subprocess.run([sys.executable, "-m", "reasonbench_benchmarks.gpu_session", "--smoke", "--out", str(out),
                             "--parts", ",".join(parts), "--budget", "1200"], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [(p["name"], p["status"]) for p in summary["parts"]] == [(p, "ok") for p in parts]
    assert summary["parts"][0]["env"]["torch"] == torch.__version__
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert [(r["model"], r["status"], r["dtype"]) for r in rows] == [("trm", "ok", "bf16-mixed"), ("hrm", "ok", "bf16-mixed")]
    for name in parts[2:]:
        reference = json.loads((out / f"{name}.json").read_text())
        assert reference["ratio"] > 0 and reference["device"] == "cpu" and reference["dtype"] == "bf16"
