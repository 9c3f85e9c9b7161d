"""Reasoning-depth analysis: accuracy per step, halting, test-time depth, difficulty buckets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import reasonbench as rb
from reasonbench.record.metrics import ReasoningMetrics
from reasonbench.tasks.base import Difficulty

from .conftest import QUIET, call_cli


def _stub_outputs(right_from: torch.Tensor, steps: int, length: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels all 1; example i answers 1 from step right_from[i] on (0 before): known curves."""
    labels = torch.ones(len(right_from), length, dtype=torch.long)
    step = torch.arange(1, steps + 1).view(-1, 1, 1)
    predictions = (step >= right_from.view(1, -1, 1)).long().expand(-1, -1, length)
    return predictions, labels


def test_curves_of_a_model_whose_answer_becomes_right_at_step_k() -> None:
    right_from = torch.tensor([1, 2, 2, 3, 99])  # the last is never right
    halt_at = torch.tensor([1, 1, 2, 3, 3])  # the second halts too early
    predictions, labels = _stub_outputs(right_from, steps=3)
    metrics = ReasoningMetrics()
    metrics.update(predictions[-1], labels, steps=halt_at, step_predictions=predictions,
                   step_residuals=torch.tensor([[1.0] * 5, [0.5] * 5, [0.25] * 5]))
    result = metrics.compute()
    curve = result["by_step"]
    assert curve["exact"] == pytest.approx([0.2, 0.6, 0.8])
    assert curve["token"] == pytest.approx([0.2, 0.6, 0.8])
    assert curve["halted"] == pytest.approx([0.4, 0.2, 0.4])
    assert curve["residual"] == pytest.approx([1.0, 0.5, 0.25])
    # right where it stopped: examples 0, 2, 3 (1 stopped before it was right, 4 never is)
    assert result["halted_exact_accuracy"] == pytest.approx(0.6)
    assert result["exact_accuracy"] == pytest.approx(0.8)


def test_difficulty_buckets_and_ood() -> None:
    difficulty = Difficulty("rating", torch.tensor([0, 1, 2, 3, 9, 10, 150]), [1, 3, 10, 30, 100])
    assert difficulty.buckets().tolist() == [0, 1, 1, 2, 2, 3, 5]
    assert difficulty.names() == ["0", "1-2", "3-9", "10-29", "30-99", ">= 100"]
    metrics = ReasoningMetrics()
    labels = torch.ones(7, 2, dtype=torch.long)
    predictions = labels.clone()
    predictions[[1, 6]] = 0  # wrong on one "1-2" and the ">= 100" example
    metrics.update(predictions, labels, buckets=difficulty.buckets(), ood=difficulty.values > 10)
    result = metrics.compute()
    counts = result["by_difficulty_counts"]
    assert counts["examples"][:6] == [1, 2, 2, 1, 0, 1] and counts["exact"][:6] == [1, 1, 2, 1, 0, 0]
    assert result["ood"]["n_test_examples"] == 1 and result["ood"]["exact_accuracy"] == 0.0


def test_task_difficulties() -> None:
    sudoku = rb.create_task("sudoku", preset="smoke")
    assert sudoku.difficulty("test").kind == "rating"
    assert torch.equal(sudoku.difficulty("test").values, sudoku.splits["test"].info["rating"])
    maze = rb.create_task("maze", preset="smoke")
    lengths = maze.difficulty("test").values
    assert maze.difficulty("test").kind == "shortest path length"
    # the labelled path marks every cell of a shortest path but S and G ('o' = 5)
    assert torch.equal(lengths, (maze.splits["test"].labels == 5).sum(-1) + 1)
    arc = rb.create_task("arc", preset="smoke")
    board = arc.splits["test"].inputs.view(-1, arc.canvas, arc.canvas)
    sides = arc.difficulty("test").values
    for i in range(0, len(sides), max(1, len(sides) // 5)):
        colour = (board[i] >= 2).nonzero()
        assert sides[i] == max(colour[:, 0].max(), colour[:, 1].max()) + 1


def test_deeper_evaluation_keeps_the_first_steps() -> None:
    task = rb.create_task("sudoku", preset="smoke")
    model = rb.create_model("trm", task=task, preset="smoke").eval()
    batch = {k: v[:8] for k, v in {"inputs": task.splits["test"].inputs, "labels": task.splits["test"].labels,
                                   "puzzle_ids": task.splits["test"].puzzle_ids}.items()}
    batch = {k: v.long() for k, v in batch.items()}
    with torch.inference_mode():
        trained_depth = model(batch)
        model.eval_max_steps = 3 * model.halt_max_steps
        deeper = model(batch)
    steps = model.halt_max_steps
    assert trained_depth.step_predictions.shape[0] == steps and deeper.step_predictions.shape[0] == 3 * steps
    assert torch.equal(deeper.step_predictions[:steps], trained_depth.step_predictions)
    assert torch.equal(deeper.step_residuals[:steps], trained_depth.step_residuals)


MAZE_ARGS = ["--model", "trm", "--task", "maze", "--preset", "smoke", *QUIET]


@pytest.fixture(scope="module")
def trained_maze(tmp_path_factory) -> Path:
    """A TRM smoke run on Maze: its results folder (record and final.pt)."""
    out = tmp_path_factory.mktemp("trained")
    assert call_cli("run", *MAZE_ARGS, "--out", str(out)).returncode == 0
    return out


def test_eval_max_steps_writes_the_longer_curve(trained_maze, tmp_path) -> None:
    args = MAZE_ARGS
    trained = json.loads((trained_maze / "trm/maze/smoke/seed0.json").read_text())["metrics"]
    checkpoint = trained_maze / "trm/maze/smoke/seed0/final.pt"
    result = call_cli("eval", *args, "--checkpoint", str(checkpoint), "--out", str(tmp_path), "--eval-depth", "6")
    assert result.returncode == 0, result.stderr
    deeper = json.loads((tmp_path / "trm/maze/smoke/seed0.eval.json").read_text())
    assert deeper["provenance"]["config"]["eval_max_steps"] == 6
    curve, base = deeper["metrics"]["by_step"], trained["by_step"]
    assert len(curve["exact"]) == 6 and curve["exact"][:2] == base["exact"] and curve["token"][:2] == base["token"]
    assert trained["by_difficulty"]["kind"] == "shortest path length"
    assert sum(b["n_test_examples"] for b in trained["by_difficulty"]["buckets"]) == trained["n_test_examples"]
    bad = call_cli("eval", *args, "--checkpoint", str(checkpoint), "--out", str(tmp_path), "--eval-depth", "0")
    assert bad.returncode == 2 and "--eval-depth" in bad.stderr
    no_depth = call_cli("run", "--model", "transformer", "--task", "maze", "--eval-depth", "4", *QUIET,
                        "--out", str(tmp_path))
    assert no_depth.returncode == 2 and "option --eval-depth: model transformer has no reasoning steps" in no_depth.stderr


@pytest.mark.parametrize("weights", ["final.pt", "checkpoints/last.ckpt"])
def test_eval_takes_model_task_and_preset_from_the_checkpoint(trained_maze, tmp_path, weights) -> None:
    """``eval --checkpoint C`` alone: the model, the task with the settings it was trained with,
    the preset and the seed all come from the checkpoint (final.pt and Lightning's .ckpt)."""
    trained = json.loads((trained_maze / "trm/maze/smoke/seed0.json").read_text())
    result = call_cli("eval", "--checkpoint", str(trained_maze / "trm/maze/smoke/seed0" / weights), *QUIET,
                      "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "trm/maze/smoke/seed0.eval.json").read_text())
    assert (record["model"], record["task"], record["preset"], record["seed"]) == ("trm", "maze", "smoke", 0)
    assert record["provenance"]["config"]["task"] == trained["provenance"]["config"]["task"]
    assert record["provenance"]["data_fingerprint"] == trained["provenance"]["data_fingerprint"]
    if weights == "final.pt":  # the final weights: the trained run's own test figures
        assert record["metrics"]["exact_accuracy"] == trained["metrics"]["exact_accuracy"]


def _same_splits(a, b, names=("train", "val", "test")) -> bool:
    return all(torch.equal(getattr(a.splits[n], f), getattr(b.splits[n], f)) for n in names
               for f in ("inputs", "labels", "puzzle_ids"))


def test_generated_sudoku_ood_split() -> None:
    plain = rb.create_task("sudoku", preset="smoke")
    task = rb.create_task("sudoku", preset="smoke", num_ood=30, ood_blanks=12)
    ood = task.splits["ood"]
    blanks = (ood.inputs == 1).sum(-1)  # blank is id 1
    assert len(ood) == 30 and blanks.tolist() == [12] * 30 and (task.splits["train"].inputs == 1).sum(-1).max() == 6
    # every answer completes its puzzle: clues kept, each row a permutation of the digits 2..10
    clues = ood.inputs != 1
    assert torch.equal(ood.labels[clues], ood.inputs[clues])
    assert torch.equal(ood.labels.view(-1, 9, 9).sort(-1).values, torch.arange(2, 11).expand(30, 9, 9))
    # a stream of its own: the other splits do not change, a build without it keeps its fingerprint key
    assert _same_splits(task, plain) and "ood" not in plain.splits and "ood" not in plain.recipe()
    assert task.ood_definition() == "30 generated puzzles with 12 blanks (training puzzles have 6)"
    assert plain.ood_definition() is None and task.fingerprint != plain.fingerprint
    # ... but the test split's own fingerprint: both score the same test examples
    assert task.split_fingerprint("test") == plain.split_fingerprint("test") != task.split_fingerprint("val")
    other = rb.create_task("sudoku", preset="smoke", data_seed=1)
    assert other.split_fingerprint("test") != plain.split_fingerprint("test")


def test_generated_maze_ood_split() -> None:
    plain = rb.create_task("maze", preset="smoke")
    task = rb.create_task("maze", preset="smoke", num_ood=40)
    longest = int(task.splits["train"].info["path_length"].max())
    ood = task.splits["ood"]
    lengths = ood.info["path_length"]
    assert len(ood) == 40 and int(lengths.min()) > longest
    assert torch.equal(lengths, (ood.labels == 5).sum(-1) + 1)  # the labelled path is that long
    test_keys = {row.numpy().astype(np.int8).tobytes() for row in task.splits["test"].inputs}
    assert not test_keys & {row.numpy().astype(np.int8).tobytes() for row in ood.inputs}
    assert _same_splits(task, plain)
    assert task.ood_definition() == (f"40 generated 8x8 mazes whose shortest path is longer than every "
                                     f"training maze's (> {longest} steps)")
    # the generated split replaces the implicit one (test examples above the training maximum)
    assert "ood" not in next(iter(task.test_dataloader())) and "ood" in next(iter(plain.test_dataloader()))


def test_ood_split_is_scored_beside_the_test_split(trained_maze, tmp_path) -> None:
    trained = json.loads((trained_maze / "trm/maze/smoke/seed0.json").read_text())["metrics"]
    checkpoint = trained_maze / "trm/maze/smoke/seed0/final.pt"
    result = call_cli("eval", *MAZE_ARGS, "--checkpoint", str(checkpoint), "--out", str(tmp_path),
                      "--task.num_ood", "48")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "trm/maze/smoke/seed0.eval.json").read_text())["metrics"]
    # the test split's figures do not move
    for key in ("exact_correct", "token_accuracy", "by_step", "by_difficulty", "halting_accuracy"):
        assert metrics[key] == trained[key], key
    ood = metrics["ood"]
    assert ood["n_test_examples"] == 48 and ood["definition"].startswith("48 generated 8x8 mazes")
    assert 0 <= ood["exact_correct"] <= 48 and ood["exact_accuracy"] == ood["exact_correct"] / 48
    assert len(ood["by_step"]["exact"]) == len(trained["by_step"]["exact"]) and "valid_path" in ood
    assert ood["by_step"]["exact"][-1] == pytest.approx(ood["exact_accuracy"])
    assert "out of distribution" in result.stdout
    info = call_cli("data", "info", "--task", "maze", "--preset", "smoke", "--task.num_ood", "48")
    assert info.returncode == 0 and "ood 48" in info.stdout and "\nood          48 generated 8x8 mazes" in info.stdout


@pytest.mark.parametrize("overrides, message", [
    ({"num_ood": 5}, "task.ood_blanks must be in 7..64"),
    ({"num_ood": 5, "ood_blanks": 6}, "task.ood_blanks must be in 7..64"),
    ({"num_ood": -1}, "task.num_ood must be >= 0"),
    ({"num_ood": 5, "ood_blanks": 12, "generator": "extreme"}, "task.num_ood: the out-of-distribution split"),
    ({"num_ood": 2, "ood_blanks": 64}, "could not generate 2 distinct puzzles with 64 blanks"),  # 17 clues: rare
])
def test_bad_ood_options(overrides, message) -> None:
    with pytest.raises(Exception, match=message.replace(".", r"\.")):
        rb.create_task("sudoku", preset="smoke", **overrides)
