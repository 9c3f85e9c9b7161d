"""HRM and TRM: fidelity to the reference code, parameter counts, the gradient structure of
their recursions, halting, EMA, learning, and checkpoint import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import reasonbench as rb
from reasonbench.tools.checkpoint_import import import_checkpoint, reference_renames, rename_reference_state
from reasonbench.nn import PuzzleEmbedding, WeightEMA
from reasonbench.model.optim import AdamAtan2
from reasonbench.tasks.base import TaskMetadata
from reasonbench_plugins.hrm import HRMModel
from reasonbench_plugins.trm import TRMModel

from .conftest import call_cli
from .reference_layout import CONFIGS, NUM_IDS, SEQ_LEN, VOCAB, reference_batch, reference_state_dict

PINNED = json.loads((Path(__file__).parent / "data" / "reference_outputs.json").read_text())
META = TaskMetadata(name="sudoku", vocab_size=VOCAB, seq_len=SEQ_LEN, num_puzzle_ids=NUM_IDS, grid_shape=(9, 9))


def imported_model(name: str) -> HRMModel | TRMModel:
    arch = dict(CONFIGS[name])
    cls = HRMModel if arch["arch"] == "hrm" else TRMModel
    model = cls(META, **cls.reference_arguments(arch)).eval()
    model.load_state_dict(rename_reference_state(cls, reference_state_dict(name)), strict=True)
    return model


# The pins are the reference code's outputs in float64 (benchmarks/reference_outputs.py).
# float64: rounding differs across CPUs and kernels by ~1e-16 relative and grows through the 3
# segments to ~1e-13 (measured between AVX-512 and ATEN_CPU_CAPABILITY=default kernels), far
# below 1e-9, while a real deviation from the reference is far above it: one weight off by 1e-6
# moves these outputs by 1e-7 to 1e-6. float32, the dtype users train in: its rounding (6e-8
# relative) grows through trm_mlp's 36 block applications (3 segments) to 1e-4 (its
# sequence MLP amplifies most; 1.6e-4 with other kernels), so 1e-3 holds on any CPU and still
# catches a wrong op, which moves outputs by O(0.1).
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-9), (torch.float32, 1e-3)], ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["hrm", "trm_attention", "trm_mlp"])
def test_outputs_equal_the_reference_implementation(name, dtype, atol):
    """Same weights (reference layout, imported), same batch: every segment's logits and
    halting logits equal what the reference code computed (float64), within ``atol``."""
    model, batch = imported_model(name).to(dtype), reference_batch()
    state = model.initial_state(batch)
    with torch.no_grad():
        for pinned in PINNED[name]:
            state, logits, q_halt, q_continue = model.segment(state, batch)
            assert logits.dtype == q_halt.dtype == q_continue.dtype == dtype
            for value, key in ((logits[0, 0], "logits_first"), (q_halt, "q_halt"), (q_continue, "q_continue")):
                torch.testing.assert_close(value.double(), torch.tensor(pinned[key], dtype=torch.float64),
                                           atol=atol, rtol=0, msg=lambda m, key=key: f"{key}: {m}")
            # each of the sum's terms off by up to atol, independently: off by ~atol * sqrt(n)
            tol = atol * logits.numel() ** 0.5
            assert logits.double().sum().item() == pytest.approx(pinned["logits_sum"], abs=tol, rel=0)
            assert logits.double().abs().sum().item() == pytest.approx(pinned["logits_abs_sum"], abs=tol, rel=0)


PAPER_COUNTS = [
    ("hrm", "sudoku", [], 27_275_266),
    ("hrm", "maze", [], 27_270_146),
    ("hrm", "arc", [], 27_276_290),
    ("trm", "sudoku", [], 5_028_866),  # MLP mixer
    ("trm", "sudoku", ["--model.mixer", "attention", "--model.pos_encodings", "rope"], 6_828_034),
    ("trm", "maze", [], 6_822_914),
    ("trm", "arc", [], 6_829_058),
]


@pytest.mark.parametrize("model, task, extra, expected", PAPER_COUNTS)
def test_paper_presets_have_the_reference_parameter_counts(model, task, extra, expected):
    result = call_cli("info", "--model", model, "--task", task, "--preset", "paper", *extra)
    assert result.returncode == 0, result.stderr
    assert f"parameters  {expected:,}\n" in result.stdout


def _tiny(cls, **kw):
    torch.manual_seed(0)
    base = dict(hidden_size=16, num_heads=2, puzzle_emb_dim=16, halt_max_steps=3, halt_exploration_prob=0.0)
    if cls is HRMModel:
        base.update(high_layers=1, low_layers=1, high_cycles=3, low_cycles=2)
    else:
        base.update(num_layers=1, recursions=3, latent_steps=2, puzzle_emb_len=1)
    return cls(META, **{**base, **kw})


def _grad_modes(model, stacks):
    modes = []
    for stack in stacks:
        stack.register_forward_hook(lambda m, a, o, name=stack: modes.append((name, torch.is_grad_enabled())))
    return modes


def test_hrm_differentiates_only_the_last_low_and_high_update():
    model = _tiny(HRMModel).train()
    modes = _grad_modes(model, [model.low, model.high])
    batch = reference_batch()
    z_high0, z_low0 = (s.clone().requires_grad_(True) for s in model.initial_state(batch))
    x = model.encode(batch).detach().requires_grad_(True)
    z_high, z_low = model.reason((z_high0, z_low0), x)
    # 3 high cycles x 2 low cycles: 6 L and 3 H calls, of which the last L and the last H have grad
    assert [(m is model.high, g) for m, g in modes] == [(False, False), (False, False), (True, False),
                                                      (False, False), (False, False), (True, False),
                                                      (False, False), (False, True), (True, True)]
    grads = torch.autograd.grad(z_high.sum(), [z_high0, z_low0, x], allow_unused=True)
    assert grads[0] is None and grads[1] is None  # no gradient reaches the earlier cycles
    assert grads[2] is not None and grads[2].abs().sum() > 0


def test_trm_back_propagates_through_the_whole_last_recursion_only():
    model = _tiny(TRMModel).train()
    outputs = []
    model.net.register_forward_hook(lambda m, a, out: outputs.append(out) if torch.is_grad_enabled() else None)
    modes = _grad_modes(model, [model.net])
    batch = reference_batch()
    state0 = tuple(s.clone().requires_grad_(True) for s in model.initial_state(batch))
    y, z = model.reason(state0, model.encode(batch))
    # 3 recursions of (2 latent + 1 answer) updates; only the last recursion's 3 carry gradient
    assert [g for _, g in modes] == [False] * 6 + [True] * 3
    grads = torch.autograd.grad(y.sum(), [*state0, outputs[0]], allow_unused=True)
    assert grads[0] is None and grads[1] is None
    # the first latent update of the last recursion gets gradient through the two that follow
    assert grads[2] is not None and grads[2].abs().sum() > 0


def _set_halting(model, halt: float, cont: float) -> None:
    with torch.no_grad():
        model.halt.linear.bias.copy_(torch.tensor([halt, cont]))


@pytest.mark.parametrize("cls", [HRMModel, TRMModel])
def test_training_carries_slots_until_they_halt_at_the_step_limit(cls):
    model = _tiny(cls).train()
    _set_halting(model, -5.0, 5.0)  # never halts by itself
    first, second = reference_batch(seed=1), reference_batch(seed=2)
    seen = []
    for step in range(4):
        model.training_loss(first if step == 0 else second)
        seen.append((model._carry.steps.tolist(), model._carry.halted.tolist(),
                     torch.equal(model._carry.data["inputs"], first["inputs"])))
    assert seen[0] == ([1, 1, 1], [False] * 3, True)
    assert seen[1] == ([2, 2, 2], [False] * 3, True)  # the second batch is not taken in yet
    assert seen[2] == ([3, 3, 3], [True] * 3, True)  # halt_max_steps = 3
    assert seen[3] == ([1, 1, 1], [False] * 3, False)  # halted slots refilled from the new batch


def test_halting_head_stops_training_slots_early_and_exploration_delays_it():
    model = _tiny(TRMModel).train()
    _set_halting(model, 5.0, 0.0)  # q_halt > 0: halt at once
    model.training_loss(reference_batch())
    assert model._carry.halted.all() and model._carry.steps.tolist() == [1, 1, 1]
    model.halt_exploration_prob = 1.0  # every slot must run a random minimum of 2..3 segments
    model._carry = None
    model.training_loss(reference_batch())
    assert not model._carry.halted.any()


def test_hrm_halts_when_q_halt_beats_q_continue():
    model = _tiny(HRMModel).train()
    _set_halting(model, 1.0, 2.0)  # both positive; continue wins
    model.training_loss(reference_batch())
    assert not model._carry.halted.any()
    _set_halting(model, 2.0, 1.0)
    model._carry = None
    _, logs = model.training_loss(reference_batch())
    assert model._carry.halted.all()
    assert "continue_loss" in logs  # the bootstrapped Q target is trained


@pytest.mark.parametrize("cls", [HRMModel, TRMModel])
def test_evaluation_runs_every_segment_and_reports_the_first_halting_step(cls):
    model = _tiny(cls).eval()
    _set_halting(model, 5.0, 0.0)  # would halt at the first segment
    calls = []
    model.halt.register_forward_hook(lambda m, a, o: calls.append(1))
    with torch.inference_mode():
        out = model(reference_batch())
    assert len(calls) == 3  # all halt_max_steps segments ran
    assert out.steps.tolist() == [1, 1, 1]
    assert out.halt_logits.shape == (3,) and torch.all(out.confidence > 0.99)


def test_puzzle_embedding_sign_sgd_updates_only_the_rows_used():
    table = PuzzleEmbedding(5, 4).train()
    ids = torch.tensor([1, 3, 1])
    rows = table(ids)
    (rows * torch.tensor([1.0, -2.0, 0.5, 0.0])).sum().backward()
    table.sign_sgd_step(lr=0.1, weight_decay=0.0)
    expected = torch.zeros(5, 4)
    expected[[1, 3]] = torch.tensor([-0.1, 0.1, -0.1, 0.0])
    torch.testing.assert_close(table.weight.data, expected)
    assert not table.weight.requires_grad and table._looked_up == []


def test_ema_weights_are_evaluated_and_become_the_final_weights(tmp_path):
    import lightning as L

    task = rb.create_task("sudoku", preset="smoke")
    model = rb.create_model("trm", task=task, preset="smoke")
    decay = model.optim.ema_decay
    live_after_step: list[dict[str, torch.Tensor]] = []
    during_validation: list[bool] = []

    class Spy(L.Callback):
        def on_fit_start(self, trainer, module):
            self.start = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            live_after_step.append({n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad})

        def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
            if trainer.state.fn == "fit" and module.ema is not None:
                during_validation.append(all(torch.equal(p, module.ema.shadow[n]) for n, p in module.named_parameters()
                                             if n in module.ema.shadow))

    spy = Spy()
    trainer = L.Trainer(max_steps=6, val_check_interval=3, logger=False, enable_checkpointing=False, callbacks=[spy],
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=task)
    assert during_validation and all(during_validation)
    shadow = dict(spy.start)
    for live in live_after_step:
        shadow = {n: decay * shadow[n] + (1 - decay) * live[n] for n in shadow}
    for n, p in model.named_parameters():
        if n in shadow:
            torch.testing.assert_close(p.detach(), shadow[n], atol=1e-6, rtol=1e-5)
    assert not torch.equal(dict(model.named_parameters())["head.weight"], live_after_step[-1]["head.weight"])


def test_weight_ema_rejects_a_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(torch.nn.Linear(2, 2), 1.0)


@pytest.mark.parametrize("cls, kw", [(HRMModel, {}), (TRMModel, {"mixer": "mlp", "pos_encodings": "none"})])
def test_loss_falls_within_a_few_dozen_steps(cls, kw):
    """A fixed batch of 8 easy Sudokus: the answer loss more than halves in 40 steps."""
    task = rb.create_task("sudoku", preset="smoke")
    batch = next(iter(task.train_dataloader()))
    batch = {k: v[:8] for k, v in batch.items()}
    model = _tiny(cls, hidden_size=32, halt_max_steps=2, **kw).train()
    opt = AdamAtan2([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(40):
        loss, logs = model.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.puzzle_embedding.sign_sgd_step(1e-3, 0.0)
        losses.append(logs["lm_loss"].item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def _as_reference_checkpoint(model, path: Path) -> None:
    """Write ``model``'s weights the way the reference training script saves them."""
    renames = reference_renames(type(model))
    inverse = sorted(((new, old) for old, new in renames.items()), key=lambda kv: -len(kv[0]))
    state = {}
    for key, value in model.state_dict().items():
        name = key
        for new, old in inverse:
            if name.startswith(new):
                name = old + name[len(new):]
                break
        for new, old in inverse:
            if f".{new}" in name:
                name = name.replace(f".{new}", f".{old}", 1)
                break
        state["_orig_mod.model.inner." + name] = value
    torch.save(state, path)


def test_import_checkpoint_then_eval_scores_without_training(tmp_path):
    """A reference-layout TRM checkpoint with its all_config.yaml becomes a reasonbench
    checkpoint; `reasonbench eval` rebuilds the architecture from it and scores it."""
    task = rb.create_task("sudoku", preset="smoke")
    source = rb.create_model("trm", task=task, preset="smoke")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt_dir = tmp_path / "reference_run"
    ckpt_dir.mkdir()
    _as_reference_checkpoint(source, ckpt_dir / "step_100")
    (ckpt_dir / "all_config.yaml").write_text(
        "arch:\n  name: recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1\n"
        "  loss: {name: losses@ACTLossHead, loss_type: stablemax_cross_entropy}\n"
        "  halt_exploration_prob: 0.1\n  halt_max_steps: 2\n  H_cycles: 2\n  L_cycles: 2\n  H_layers: 0\n"
        "  L_layers: 1\n  hidden_size: 32\n  num_heads: 2\n  expansion: 4\n  puzzle_emb_ndim: 32\n"
        "  pos_encodings: none\n  mlp_t: true\n  puzzle_emb_len: 2\n  no_ACT_continue: true\n")
    out = tmp_path / "imported.pt"
    result = call_cli("import-checkpoint", "--from", "trm", str(ckpt_dir / "step_100"), "--task", "sudoku",
                      "--preset", "smoke", "--out", str(out))
    assert result.returncode == 0, result.stderr
    loaded = torch.load(out, weights_only=True)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded["state_dict"][key], value), key
    assert loaded["config"]["model"]["mixer"] == "mlp" and loaded["config"]["model"]["latent_steps"] == 2

    result = call_cli("eval", "--task", "sudoku", "--preset", "smoke", "--checkpoint", str(out),
                      "--out", str(tmp_path / "results"), "--trainer.enable_progress_bar", "false")
    assert result.returncode == 0, result.stderr
    record = json.loads(next((tmp_path / "results").rglob("seed0.eval.json")).read_text())
    source.eval()
    test = task.splits["test"]
    batch = {"inputs": test.inputs.long(), "labels": test.labels.long(), "puzzle_ids": test.puzzle_ids.long()}
    with torch.inference_mode():
        expected = (source(batch).logits.argmax(-1) == batch["labels"]).float().mean().item()
    assert record["metrics"]["token_accuracy"] == pytest.approx(expected, abs=1e-6)
    assert record["metrics"]["halting_accuracy"] is not None and record["metrics"]["mean_steps"] <= 2


def test_import_checkpoint_refuses_a_foreign_state_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    result = call_cli("import-checkpoint", "--from", "hrm", str(path), "--task", "sudoku", "--out", str(tmp_path / "x.pt"))
    assert result.returncode == 2
    assert "encoder.weight" in result.stderr and "\n" not in result.stderr.strip()
    assert not (tmp_path / "x.pt").exists()


def _sign_sgd_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    table = PuzzleEmbedding(4, 2).train()
    ids = torch.tensor([[0, 1], [1, 2]][rank])
    rows = table(ids)
    # rank 0 pushes id 1 up by 1.0; rank 1 pushes it down by 3.0: the sum decides the sign
    weights = torch.tensor([[[1.0, 1.0], [-1.0, 1.0]], [[3.0, -1.0], [1.0, 1.0]]])[rank]
    (rows * weights).sum().backward()
    table.sign_sgd_step(lr=0.5, weight_decay=0.0)
    torch.save(table.weight.data, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_puzzle_embedding_updates_agree_across_processes(tmp_path):
    """Under DDP every process applies the update of the rows used by all of them."""
    import torch.multiprocessing as mp

    mp.spawn(_sign_sgd_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    tables = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    expected = torch.tensor([[-0.5, -0.5], [-0.5, 0.0], [-0.5, -0.5], [0.0, 0.0]])
    torch.testing.assert_close(tables[0], expected)
    torch.testing.assert_close(tables[1], expected)


@pytest.mark.parametrize("model", ["hrm", "trm"])
def test_trained_checkpoints_evaluate_to_the_recorded_metrics(model, tmp_path):
    """final.pt re-scores to the record; for TRM (EMA) so does the Lightning last.ckpt, whose
    averaged weights, not the live ones, are what eval loads."""
    record = rb.run(model, "maze", preset="smoke", seed=0, out=str(tmp_path / "r"), **{"trainer.enable_progress_bar": False})
    assert record["metrics"]["halting_accuracy"] is not None
    run_dir = Path(record["checkpoint"]).parent
    checkpoints = [record["checkpoint"]] + ([str(run_dir / "checkpoints" / "last.ckpt")] if model == "trm" else [])
    for i, checkpoint in enumerate(checkpoints):
        out = tmp_path / f"e{i}"
        result = call_cli("eval", "--model", model, "--task", "maze", "--preset", "smoke", "--checkpoint", checkpoint,
                          "--out", str(out), "--trainer.enable_progress_bar", "false")
        assert result.returncode == 0, result.stderr
        evaluated = json.loads(next(out.rglob("seed0.eval.json")).read_text())
        assert evaluated["metrics"] == record["metrics"], checkpoint
