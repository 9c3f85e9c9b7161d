"""Augmented HRM: hinted training copies, relabellings, and the label-free vote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reasonbench as rb
from reasonbench.module import ReasoningOutput
from reasonbench.tasks.maze import data as maze_data
from reasonbench.tasks.sudoku import data as sudoku_data
from reasonbench.tasks.sudoku.grid import random_solved_grid
from reasonbench.tasks.sudoku.task import with_hints
from reasonbench_plugins.aug_hrm.model import vote


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
    assert maze_data.RELABELLINGS[1] == (0, 1, 2, 4, 3, 5)  # S (3) and G (4) swapped


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
        return logits, zeros + 1.0, zeros, torch.ones_like(zeros, dtype=torch.long)

    model.run_segments = copy_input
    batch = {"inputs": task.splits["test"].inputs[:4].long(), "labels": task.splits["test"].labels[:4].long(),
             "puzzle_ids": task.splits["test"].puzzle_ids[:4].long()}
    out = model(batch)
    assert isinstance(out, ReasoningOutput)
    assert torch.equal(out.logits.argmax(-1), batch["inputs"])
