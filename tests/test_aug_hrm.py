"""Augmented HRM: hinted training copies, relabellings, and the label-free vote."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import reasonbench as rb
from reasonbench.model.module import ReasoningOutput
from reasonbench.model.recursive import Segments
from reasonbench.tasks.maze import encoding as maze_encoding
from reasonbench.tasks.sudoku import data as sudoku_data
from reasonbench.tasks.sudoku.grid import random_solved_grid
from reasonbench.tasks.sudoku.task import with_hints
from reasonbench_plugins.aug_hrm.model import oracle_any_right, vote

from .conftest import call_cli


def test_vote_takes_the_answer_most_confident_passes_give():
    a, b = [1, 1], [2, 2]
    # example 0: passes 0 and 2 confident and agree on a; pass 1 (b) is not confident
    # example 1: nobody confident: all vote, b twice
    predictions = torch.tensor([[a, b], [b, b], [a, a]])  # [P=3, B=2, L=2]
    confident = torch.tensor([[True, False], [False, False], [True, False]])
    confidence = torch.tensor([[0.9, 0.1], [0.2, 0.1], [0.8, 0.1]])
    winner = vote(predictions, confident, confidence)
    assert predictions[winner, torch.arange(2)].tolist() == [a, b]


def test_vote_breaks_ties_by_mean_confidence():
    predictions = torch.tensor([[[1]], [[2]]])  # two passes, two answers, one vote each
    confident = torch.tensor([[True], [True]])
    assert vote(predictions, confident, torch.tensor([[0.6], [0.7]])).tolist() == [1]
    assert vote(predictions, confident, torch.tensor([[0.7], [0.6]])).tolist() == [0]


def test_relabellings_map_puzzles_to_equivalent_puzzles():
    shifts = torch.tensor(sudoku_data.digit_shifts())
    assert shifts.shape == (9, 11) and shifts[0].tolist() == list(range(11))
    solved = torch.from_numpy(sudoku_data.encode(random_solved_grid(np.random.default_rng(0)).reshape(1, 81)))[0]
    for perm in shifts:
        grid = perm[solved].view(9, 9) - 1  # still a solved Sudoku: each row holds 1..9
        assert all(sorted(row.tolist()) == list(range(1, 10)) for row in grid)
        assert sorted(perm.tolist()) == list(range(11)) and perm[:2].tolist() == [0, 1]
    assert maze_encoding.RELABELLINGS[1] == (0, 1, 2, 4, 3, 5)  # S (3) and G (4) swapped


def test_hinted_copies_fill_some_but_not_all_blanks_from_the_answer():
    rng = np.random.default_rng(0)
    answers = np.stack([random_solved_grid(rng).reshape(81) for _ in range(200)])
    questions = np.where(rng.random(answers.shape) < 0.5, 0, answers)
    easier = with_hints(questions, answers, rng)
    blanks_before, blanks_after = (questions == 0).sum(1), (easier == 0).sum(1)
    filled = blanks_before - blanks_after
    assert np.all((filled >= 1) & (filled <= blanks_before - 1))
    assert np.all(np.where(easier != 0, easier == answers, True))  # filled cells are the answer's
    assert np.all(np.where(questions != 0, easier == questions, True))  # clues untouched
    assert len(set(filled.tolist())) > 10  # the count varies from copy to copy


def test_task_option_adds_one_hinted_copy_per_training_example():
    plain = rb.create_task("sudoku", preset="smoke")
    hinted = rb.create_task("sudoku", preset="smoke", hints=True)
    n = len(plain.splits["train"])
    train = hinted.splits["train"]
    assert len(train) == 2 * n and torch.equal(train.labels[:n], train.labels[n:])
    blanks = lambda inputs: (inputs == 1).sum(1)  # noqa: E731 (blank id 1)
    assert torch.all(blanks(train.inputs[n:]) < blanks(train.inputs[:n]))
    assert len(hinted.splits["test"]) == len(plain.splits["test"])  # the test split is untouched


def test_each_pass_is_mapped_back_before_the_vote():
    """A stand-in network that copies its (relabelled) input: every pass, mapped back, must
    give the original puzzle."""
    task = rb.create_task("sudoku", preset="smoke")
    model = rb.create_model("aug-hrm", task=task, preset="smoke").eval()
    vocab = task.metadata.vocab_size

    def copy_input(batch):
        logits = torch.nn.functional.one_hot(batch["inputs"], vocab).float()
        zeros = torch.zeros(batch["inputs"].shape[0])
        return Segments(logits, zeros + 1.0, zeros, torch.ones_like(zeros, dtype=torch.long),
                        logits.argmax(-1).unsqueeze(0), zeros.unsqueeze(0))

    model.run_segments = copy_input
    batch = {"inputs": task.splits["test"].inputs[:4].long(), "labels": task.splits["test"].labels[:4].long(),
             "puzzle_ids": task.splits["test"].puzzle_ids[:4].long()}
    out = model(batch)
    assert isinstance(out, ReasoningOutput)
    assert torch.equal(out.logits.argmax(-1), batch["inputs"])


def test_oracle_counts_a_puzzle_when_any_checkpoint_is_right():
    labels = torch.tensor([[1, 2, -100], [3, 4, 5]])
    answers = torch.tensor([[[1, 2, 9], [3, 4, 0]],  # checkpoint 0: example 0 right (cell 2 unsupervised)
                            [[0, 2, 0], [0, 4, 5]]])  # checkpoint 1: neither right
    assert oracle_any_right(answers, labels).tolist() == [True, False]


def test_checkpoint_ensemble_is_taken_saved_and_evaluated_again(tmp_path):
    result = call_cli("run", "--model", "aug-hrm", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = json.loads(next(tmp_path.rglob("*.json")).read_text())
    final = torch.load(record["checkpoint"], weights_only=True)
    snapshots = final["state_dict"]["snapshots._extra_state"]
    assert snapshots["steps"].tolist() == [16, 20]  # 24 steps, 3 checkpoints 4 steps apart
    # the copies differ from the final weights (training moved on) and from each other
    head = [snapshots["weights"][i]["head.weight"] for i in ("0", "1")] + [final["state_dict"]["head.weight"]]
    assert not torch.equal(head[0], head[1]) and not torch.equal(head[1], head[2])
    oracle = record["metrics"]["oracle_any_checkpoint_exact"]
    assert oracle is not None and 0 <= oracle <= 1

    again = call_cli("eval", "--model", "aug-hrm", "--task", "sudoku", "--preset", "smoke",
                     "--checkpoint", record["checkpoint"], "--out", str(tmp_path / "eval"))
    assert again.returncode == 0, again.stderr
    evaluated = json.loads(next((tmp_path / "eval").rglob("*.json")).read_text())
    for key in ("exact_accuracy", "token_accuracy", "oracle_any_checkpoint_exact", "mean_steps"):
        assert evaluated["metrics"][key] == pytest.approx(record["metrics"][key], abs=1e-9), key


def test_ensemble_evaluation_leaves_the_live_weights_in_place():
    task = rb.create_task("sudoku", preset="smoke")
    model = rb.create_model("aug-hrm", task=task, preset="smoke").eval()
    live = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.snapshots.take({n: torch.randn_like(p) for n, p in model.named_parameters()}, step=1)
    batch = {k: v[:4].long() for k, v in (("inputs", task.splits["test"].inputs), ("labels", task.splits["test"].labels),
                                         ("puzzle_ids", task.splits["test"].puzzle_ids))}
    with torch.inference_mode():
        out = model(batch)
    assert out.stats is not None and 0 <= out.stats["oracle_any_checkpoint_exact"] <= 1
    assert all(torch.equal(p, live[n]) for n, p in model.named_parameters())
