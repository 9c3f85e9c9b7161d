"""SE-RRM: fidelity to the reference code (ml-jku/SE-RRM), the reference parameter counts, symbol
equivariance, its halting, and import of reference checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from reasonbench.tasks.base import TaskMetadata
from reasonbench.tools.checkpoint_import import rename_reference_state
from reasonbench_plugins.se_rrm import SERRMModel

from .conftest import call_cli
from .reference_layout import NUM_IDS, SE_RRM_CONFIGS, SEQ_LEN, VOCAB, reference_batch, se_rrm_reference_state_dict

PINNED = json.loads((Path(__file__).parent / "data" / "reference_outputs.json").read_text())["se_rrm"]
META = TaskMetadata(name="sudoku", vocab_size=VOCAB, seq_len=SEQ_LEN, num_puzzle_ids=NUM_IDS, grid_shape=(9, 9),
                    symbols=tuple(range(2, VOCAB)))


def imported_model(name: str) -> SERRMModel:
    model = SERRMModel(META, **SERRMModel.reference_arguments(SE_RRM_CONFIGS[name])).eval()
    model.load_state_dict(rename_reference_state(SERRMModel, se_rrm_reference_state_dict(name)), strict=True)
    return model


def assert_matches_pins(model: SERRMModel, pins: list[dict], dtype: torch.dtype, atol: float) -> None:
    """Every segment's logits and confidence equal the pinned reference outputs within atol."""
    model, batch = model.to(dtype), reference_batch()
    state = model.initial_state(batch)
    with torch.no_grad():
        for pinned in pins:
            state, logits, confidence, _ = model.segment(state, batch)
            assert logits.dtype == confidence.dtype == dtype
            for value, key in ((logits[0, 0], "logits_first"), (confidence, "confidence")):
                torch.testing.assert_close(value.double(), torch.tensor(pinned[key], dtype=torch.float64),
                                           atol=atol, rtol=0, msg=lambda m, key=key: f"{key}: {m}")
            tol = atol * logits.numel() ** 0.5  # each term of the sums off by up to atol, independently
            assert logits.double().sum().item() == pytest.approx(pinned["logits_sum"], abs=tol, rel=0)
            assert logits.double().abs().sum().item() == pytest.approx(pinned["logits_abs_sum"], abs=tol, rel=0)


# The pins are the reference code's outputs in float64 (benchmarks/reference_outputs.py
# --se-rrm-reference); reasonbench's float64 outputs equal them to the last bit on the machine
# that made them, 1e-9 leaves room for other CPUs' kernels (~1e-13) and catches any real deviation
# (a weight off by 1e-6 moves these outputs by ~1e-7). float32: 1e-6 apart measured, 1e-3 as for
# HRM/TRM (other kernels; a wrong op moves outputs by O(0.1)).
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-9), (torch.float32, 1e-3)], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(SE_RRM_CONFIGS))
def test_outputs_equal_the_reference_implementation(name, dtype, atol):
    assert_matches_pins(imported_model(name), PINNED[name], dtype, atol)


@pytest.mark.parametrize("name", sorted(SE_RRM_CONFIGS))
def test_training_steps_equal_the_reference_implementation(name):
    """Two carried training steps (float64, no random stops): the loss (stablemax answer loss
    plus 0.5 x the confidence's cross-entropy, which has no gradient) and the gradient's norm
    equal the reference's loss head's, per example (4e-16 apart measured; 1e-9 as for the outputs)."""
    torch.manual_seed(0)
    model = SERRMModel(META, **{**SERRMModel.reference_arguments(SE_RRM_CONFIGS[name]), "halt_exploration_prob": 0.0})
    model.load_state_dict(rename_reference_state(SERRMModel, se_rrm_reference_state_dict(name)), strict=True)
    model = model.double().train()
    batch = reference_batch()
    for pinned in PINNED["training"][name]:
        model.zero_grad()
        loss, _ = model.training_loss(batch)
        loss.backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
        assert loss.item() == pytest.approx(pinned["loss"], abs=1e-9, rel=0)
        assert norm.item() == pytest.approx(pinned["grad_norm"], abs=1e-9, rel=0)


@pytest.mark.parametrize("task, expected", [("sudoku", 1_970_176), ("maze", 1_976_832)])
def test_paper_presets_have_the_reference_parameter_counts(task, expected):
    """Counted on the reference model itself (ml-jku/SE-RRM SERRM with the README's settings)."""
    result = call_cli("info", "--model", "se-rrm", "--task", task, "--preset", "paper")
    assert result.returncode == 0, result.stderr
    assert f"parameters  {expected:,}\n" in result.stdout


def test_reference_arc_config_has_the_reference_parameter_count():
    """The README's ARC-AGI-1 settings on a 30x30 canvas: 1,967,104 trained weights in the
    reference (its puzzle table apart, as here)."""
    arch = {**yaml.safe_load((Path(__file__).parent.parent / "plugins" / "se_rrm" / "presets" / "sudoku" /
                              "paper.yaml").read_text())["model"]}
    meta = TaskMetadata(name="arc", vocab_size=12, seq_len=900, num_puzzle_ids=1000, grid_shape=(30, 30),
                        symbols=tuple(range(2, 12)))
    arch.update(latent_steps=4, add_tokens=0, dropout=0.0, puzzle_emb=True, halt_exploration_prob=0.1)
    model = SERRMModel(meta, **arch)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_967_104
    assert sum(p.numel() for p in model.extra_parameters()) == 1000 * (12 + 256)


def _relabel(ids: torch.Tensor, perm: list[int]) -> torch.Tensor:
    return torch.tensor(perm)[ids]


@pytest.mark.parametrize("pos_encodings, add_tokens", [("rope2d", 2), ("learned", 0)])
def test_permuting_the_symbols_permutes_the_answer(pos_encodings, add_tokens):
    """Symbol equivariance: the digits of a puzzle renamed, the logits come out renamed alike
    (the fixed ids, pad and blank, stay); without it the model has no such symmetry."""
    torch.manual_seed(0)
    batch = reference_batch()
    perm = [0, 1] + [int(i) + 2 for i in torch.randperm(VOCAB - 2)]
    renamed = {**batch, "inputs": _relabel(batch["inputs"], perm)}
    kw = dict(hidden_size=16, num_heads=2, head_dim=8, symbol_heads=2, symbol_head_dim=4, num_layers=1,
              recursions=2, latent_steps=2, halt_max_steps=2, pos_encodings=pos_encodings, add_tokens=add_tokens)
    model = SERRMModel(META, **kw).double().eval()
    with torch.no_grad():
        logits, moved = model(batch).logits, model(renamed).logits
    torch.testing.assert_close(moved[..., perm], logits, atol=1e-10, rtol=0)
    plain = SERRMModel(META, **kw, equivariant_symbols=False).double().eval()
    with torch.no_grad():
        assert not torch.allclose(plain(renamed).logits[..., perm], plain(batch).logits, atol=1e-3)


def test_a_task_without_symbols_needs_equivariance_off():
    maze = TaskMetadata(name="maze", vocab_size=6, seq_len=36, num_puzzle_ids=1, grid_shape=(6, 6))
    with pytest.raises(ValueError, match="equivariant_symbols false"):
        SERRMModel(maze, hidden_size=16, head_dim=8)
    SERRMModel(maze, hidden_size=16, head_dim=8, equivariant_symbols=False)


def test_training_slots_stop_at_random_or_at_the_limit_and_evaluation_runs_every_segment():
    """No halting head: a training slot stops after halt_max_steps segments, or earlier with
    probability halt_exploration_prob per segment; evaluation runs all segments and reports the
    last; the confidence (least, over cells, of the largest probability) is the output's."""
    batch = {k: v.repeat(20, *([1] * (v.ndim - 1))) for k, v in reference_batch().items()}
    kw = dict(hidden_size=8, num_heads=1, head_dim=8, symbol_heads=1, symbol_head_dim=8, num_layers=1, recursions=1,
              latent_steps=1, halt_max_steps=3)
    torch.manual_seed(0)
    model = SERRMModel(META, **kw, halt_exploration_prob=0.0).train()
    for step in range(1, 4):
        model.training_loss(batch)
        assert model._carry.halted.all().item() == (step == 3)
    model = SERRMModel(META, **kw, halt_exploration_prob=0.5).train()
    model.training_loss(batch)
    assert 0.25 < model._carry.halted.float().mean().item() < 0.75  # 60 slots: 3.9 standard deviations
    model.eval()
    with torch.no_grad():
        out = model(batch)
        state = model.initial_state(batch)
        for _ in range(3):
            state, logits, _, _ = model.segment(state, batch)
    assert out.steps.tolist() == [3] * batch["inputs"].shape[0] and out.halt_logits is None
    expected = logits.softmax(-1).amax(-1).amin(-1)
    torch.testing.assert_close(out.confidence, expected)


def test_attention_dropout_acts_in_training_only():
    torch.manual_seed(0)
    kw = dict(hidden_size=16, num_heads=2, head_dim=8, symbol_heads=2, symbol_head_dim=4, num_layers=1,
              recursions=1, latent_steps=1, halt_max_steps=1)
    plain, dropped = SERRMModel(META, **kw), SERRMModel(META, **kw, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    batch = reference_batch()
    plain.eval(), dropped.eval()
    with torch.no_grad():
        torch.testing.assert_close(dropped(batch).logits, plain(batch).logits, atol=0, rtol=0)
    plain.train(), dropped.train()
    torch.manual_seed(1)
    loss_dropped = dropped.training_loss(batch)[0]
    torch.manual_seed(1)
    assert loss_dropped.item() != pytest.approx(plain.training_loss(batch)[0].item(), abs=1e-4)


def _write_reference_run(folder: Path, name: str) -> Path:
    """A checkpoint as the reference's training script leaves it: the state dict (float32, its
    key layout) and all_config.yaml beside it."""
    folder.mkdir()
    torch.save(se_rrm_reference_state_dict(name), folder / "step_100")
    arch = {"name": "recursive_reasoning.trm_equi@SERRM",
            "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"}, **SE_RRM_CONFIGS[name]}
    (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch, "global_batch_size": 272}))
    return folder / "step_100"


@pytest.mark.parametrize("name", ["se_rrm_rope2d", "se_rrm_learned"])
def test_import_checkpoint_gives_the_reference_outputs(tmp_path, name):
    """`import-checkpoint --from se-rrm` on a reference-layout checkpoint with its
    all_config.yaml: the converted checkpoint holds the same tensors, and its model computes the
    logits the reference code computed on them (the float64 pins)."""
    path = _write_reference_run(tmp_path / "run", name)
    out = tmp_path / "imported.pt"
    result = call_cli("import-checkpoint", "--from", "se-rrm", str(path), "--task", "sudoku", "--preset", "smoke",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    loaded = torch.load(out, weights_only=True)
    args = {k: v for k, v in loaded["config"]["model"].items() if k != "name"}
    assert args == {**args, **SERRMModel.reference_arguments(SE_RRM_CONFIGS[name])}
    expected = imported_model(name).state_dict()
    assert set(loaded["state_dict"]) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded["state_dict"][key], value), key
    model = SERRMModel(META, **args).eval()
    model.load_state_dict(loaded["state_dict"], strict=True)
    assert_matches_pins(model, PINNED[name], torch.float64, 1e-9)


def test_import_checkpoint_without_config_reads_the_shapes(tmp_path):
    """Without all_config.yaml the weights tell the width, layers, appended tokens, puzzle
    vector and whether symbols are shared; the rest (heads, RoPE's kind) comes from the preset,
    here smoke's (2 heads of 8 over positions, 1 of 8 over symbols, as this checkpoint's)."""
    path = _write_reference_run(tmp_path / "run", "se_rrm_rope")
    (path.parent / "all_config.yaml").unlink()
    out = tmp_path / "imported.pt"
    result = call_cli("import-checkpoint", "--from", "se-rrm", str(path), "--task", "sudoku", "--preset", "smoke",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    args = {k: v for k, v in torch.load(out, weights_only=True)["config"]["model"].items() if k != "name"}
    assert (args["hidden_size"], args["num_layers"], args["add_tokens"], args["puzzle_emb"],
            args["equivariant_symbols"], args["pos_encodings"]) == (16, 1, 0, False, True, "rope2d")
    model = SERRMModel(META, **{**args, "pos_encodings": "rope", "latent_steps": 3}).eval()
    model.load_state_dict(torch.load(out, weights_only=True)["state_dict"], strict=True)
    assert_matches_pins(model, PINNED["se_rrm_rope"], torch.float64, 1e-9)


@pytest.mark.parametrize("source, weights, says", [
    ("se-rrm", "trm", "holds TRM weights (one L_level network (1 layers), no H_level module), not SE-RRM: "
                      "import it with --from trm"),
    ("trm", "se-rrm", "holds SE-RRM weights (symbol-equivariant layers (attn_t)), not TRM: import it with --from se-rrm"),
])
def test_import_checkpoint_names_the_architecture_the_weights_belong_to(tmp_path, source, weights, says):
    if weights == "trm":
        state = {"_orig_mod.model.inner.embed_tokens.embedding_weight": torch.zeros(VOCAB, 16),
                 "_orig_mod.model.inner.H_init": torch.zeros(16),  # TRM saves its fixed starting states
                 "_orig_mod.model.inner.L_level.layers.0.self_attn.qkv_proj.weight": torch.zeros(48, 16)}
    else:
        state = se_rrm_reference_state_dict("se_rrm_rope")
    torch.save(state, tmp_path / "step_1")
    out = tmp_path / "x.pt"
    result = call_cli("import-checkpoint", "--from", source, str(tmp_path / "step_1"), "--task", "sudoku",
                      "--out", str(out))
    assert result.returncode == 2
    assert says in result.stderr and "\n" not in result.stderr.strip()
    assert not out.exists()
