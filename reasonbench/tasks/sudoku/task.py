"""The ``sudoku`` task: Sudoku-Extreme from the reference CSVs, or generated puzzles."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reasonbench.util.errors import UserError
from reasonbench.tasks.base import Difficulty, ReasoningTask, Split, TaskMetadata, check_planned_size
from reasonbench.tasks.reference_csv import ReferenceCsvSource, load_splits, sample_train_val
from reasonbench.tasks.images import BLACK, GREEN, RED, grid_image, side_by_side
from reasonbench.tasks.sudoku import data
from reasonbench.tasks.sudoku.grid import (augment_batch, canonical_form, extreme_puzzle, make_puzzle,
                                           random_solved_grid, rating)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a batch job's or container's
    share), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity masks
        return os.cpu_count() or 1


def _as_split(questions: np.ndarray, answers: np.ndarray, ratings: np.ndarray) -> Split:
    n = len(questions)
    return Split(inputs=torch.from_numpy(data.encode(questions)),
                 labels=torch.from_numpy(data.encode(answers)),  # every cell supervised, clues too
                 puzzle_ids=torch.zeros(n, dtype=torch.long),  # Sudoku has one (blank) identifier
                 info={"rating": torch.as_tensor(ratings, dtype=torch.long)})


def _blanked_puzzles(rng: np.random.Generator, blanks: int):  # noqa: ANN202 (a generator)
    """Endless (question, answer, rating): a random solved grid with ``blanks`` cells blanked,
    its solution kept unique (fewer blanks where the grid runs out of removable clues)."""
    while True:
        answer = random_solved_grid(rng)
        question = make_puzzle(answer, rng, blanks)
        yield question, answer, rating(question)


def _distinct(candidates, count: int, seen: set[bytes], blanks: int | None, option: str,  # noqa: ANN001
              exact_blanks: bool = False) -> tuple[np.ndarray, ...]:
    """``count`` puzzles from ``candidates``, none equivalent under the Sudoku symmetry group to
    another or to one in ``seen`` (updated); ``exact_blanks``: only those with ``blanks`` blanks."""
    questions, answers, ratings = [], [], []
    attempts = 0
    while len(questions) < count:
        attempts += 1
        if attempts > 20 * count + 100:
            raise UserError(f"could not generate {count} distinct puzzles with {blanks} blanks; "
                            f"change {option} or lower the counts")
        question, answer, score = next(candidates)
        if exact_blanks and int((question == 0).sum()) != blanks:
            continue
        key = canonical_form(question)
        if key in seen:
            continue
        seen.add(key)
        questions.append(question)
        answers.append(answer)
        ratings.append(score)
    return np.stack(questions), np.stack(answers), np.asarray(ratings, dtype=np.int64)


def with_hints(questions: np.ndarray, answers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Easier copies: for each puzzle with b >= 2 blanks, k ~ uniform{1..b-1} of them, chosen
    uniformly, filled from the answer (never all: the copy still needs solving)."""
    blank = questions == 0
    count = blank.sum(1)
    k = np.where(count >= 2, rng.integers(1, np.maximum(count, 2)), 0)
    keys = np.where(blank, rng.random(questions.shape), 2.0)  # clues sort last
    rank = keys.argsort(1, kind="stable").argsort(1, kind="stable")
    return np.where(blank & (rank < k[:, None]), answers, questions).astype(questions.dtype)


class SudokuTask(ReferenceCsvSource, ReasoningTask):
    """Sudoku-Extreme with the reference encoding (blank 1, digits 2-10, vocab 11, length 81).

    Args:
        path: reference data: a directory with ``train.csv`` and ``test.csv``, or one CSV file
            (split into train and test with ``data_seed``), or a Hugging Face dataset
            ``hf://OWNER/NAME[@REVISION]`` holding them (``hf://sapientinc/sudoku-extreme``:
            fetched into the Hub cache, read from it offline). ``None`` generates puzzles.
        num_train: training puzzles sampled (with ``data_seed``) before augmentation; ``None``
            (with ``path``): every training row not held out for validation.
        num_val: held-out training puzzles used only to monitor training; ``None`` (with ``path``):
            a tenth of the training rows.
        num_test: test puzzles; ``None`` takes the whole test file.
        augmentations: extra copies of each training puzzle under the reference symmetries.
        generator: ``blanks``: a solved grid with ``num_blanks`` random cells blanked
            (unique solution); ``extreme``: Sudoku-Extreme-like minimal puzzles mixing easy and
            hard ones (see ``grid.extreme_puzzle``), slow: seconds per hard puzzle.
        num_blanks: blanks per puzzle of the ``blanks`` generator.
        hard_fraction: share of ``extreme`` puzzles hardened by search.
        hard_mean: mean target rating (backtracks) of the hardened ones.
        workers: processes for the ``extreme`` generator (0 = one per CPU core this process
            may use); the data do not depend on it.
        skip_invalid: skip and count bad CSV rows instead of stopping at the first.
        fit_to_files: with ``path``, sizes larger than the files hold shrink to them (validation
            to a tenth of the training rows when the number asked would take half of them or
            more); set when ``path`` is given on the command line and this is not.
        hints: add to every training example an easier copy with a random number (1 to
            blanks - 1) of its blanks filled from the solution (Augmented HRM's data side).
        num_ood: puzzles of a generated out-of-distribution split (0: none), evaluated beside
            the test split: ``ood_blanks`` blanks each, more than any training puzzle has.
        ood_blanks: blanks per out-of-distribution puzzle, more than ``num_blanks`` (required
            with ``num_ood``; ``blanks`` generator only).
        batch_size: training examples per optimizer step (over all devices together).
        eval_batch_size: examples per batch at validation and test.
        data_seed: seed of the data: which puzzles are generated or sampled, the splits and the
            training order.
    """

    # own data (``task.path`` given, these not): sizes shrink to what the files hold, the
    # generated out-of-distribution split is left out
    own_data_defaults = {"fit_to_files": True, "num_ood": 0}
    own_data_sizes = ("num_train", "num_val", "num_test")  # set by the user: their sizes, not fitted
    validation_source = "held out from the training rows"

    name = "sudoku"

    def __init__(self, path: str | None = None, num_train: int | None = 1000, num_val: int | None = 100,
                 num_test: int | None = 1000, augmentations: int = 0,
                 generator: Literal["blanks", "extreme"] = "blanks", num_blanks: int = 40,
                 hard_fraction: float = 0.5, hard_mean: float = 55.0, workers: int = 0,
                 skip_invalid: bool = False, fit_to_files: bool = False, hints: bool = False, num_ood: int = 0, ood_blanks: int | None = None,
                 batch_size: int = 32, eval_batch_size: int = 256, data_seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed)
        if any(n is not None and n < 1 for n in (num_train, num_val, num_test)):
            raise ValueError("task.num_train, task.num_val and task.num_test must be positive")
        if (num_train is None or num_val is None) and path is None:
            raise ValueError("task.num_train and task.num_val null (sizes from the files) need task.path; "
                             "generated data need numbers")
        if augmentations < 0:
            raise ValueError("task.augmentations must be >= 0")
        if not 1 <= num_blanks <= 64:
            raise ValueError(f"task.num_blanks must be in 1..64 (a unique Sudoku has at least 17 clues), got {num_blanks}")
        if not 0 <= hard_fraction <= 1 or not 0 < hard_mean < float("inf") or workers < 0:
            raise ValueError("task.hard_fraction must be in [0, 1], task.hard_mean finite and > 0, task.workers >= 0")
        if generator not in ("blanks", "extreme"):
            raise ValueError(f"task.generator must be 'blanks' or 'extreme', got '{generator}'")
        if num_ood < 0:
            raise ValueError(f"task.num_ood must be >= 0, got {num_ood}")
        if num_ood and (path is not None or generator != "blanks"):
            raise ValueError("task.num_ood: the out-of-distribution split is generated with more blanks; "
                             "it needs generated puzzles (no task.path) and task.generator 'blanks'")
        if num_ood and (ood_blanks is None or not num_blanks < ood_blanks <= 64):
            raise ValueError(f"task.ood_blanks must be in {num_blanks + 1}..64 (more blanks than task.num_blanks "
                             f"{num_blanks}), got {ood_blanks}")
        check_planned_size((num_train or 0) * (1 + augmentations) * (2 if hints else 1) + (num_val or 0)
                           + (num_test or 0) + num_ood,
                           data.SEQ_LEN, "task.num_train x (1 + task.augmentations), task.num_val, task.num_test, task.num_ood")
        self.num_ood, self.ood_blanks = num_ood, ood_blanks
        self.generator, self.hard_fraction, self.hard_mean, self.workers = generator, hard_fraction, hard_mean, workers
        self.path = path
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.augmentations = augmentations
        self.num_blanks = num_blanks
        self.skip_invalid = skip_invalid
        self.fit_to_files = fit_to_files
        self.hints = hints
        self.skipped_rows: dict[str, int] = {}  # invalid CSV rows skipped, per file (skip_invalid)

    def difficulty(self, split: str) -> Difficulty:
        # the backtracking rating of Sudoku-Extreme (tdoku-style guesses; 0 = no guess needed)
        return Difficulty("rating", self.splits[split].info["rating"], [1, 3, 10, 30, 100])

    @property
    def metadata(self) -> TaskMetadata:
        return TaskMetadata(name=self.name, vocab_size=data.VOCAB_SIZE, seq_len=data.SEQ_LEN,
                            relabellings=data.digit_shifts(), symbols=data.DIGIT_IDS,
                            num_puzzle_ids=1, grid_shape=(9, 9))

    def recipe(self) -> dict[str, Any]:
        return {"task": self.name, "source": self.source_stamp(), "num_train": self.num_train, "num_val": self.num_val,
                "num_test": self.num_test, "augmentations": self.augmentations,
                "generator": None if self.path else self.generator,
                "num_blanks": None if self.path or self.generator != "blanks" else self.num_blanks,
                "hard": None if self.path or self.generator != "extreme" else [self.hard_fraction, self.hard_mean],
                "skip_invalid": self.skip_invalid, "hints": self.hints,
                **({"fit_to_files": True} if self.fit_to_files and self.path else {}),
                "data_seed": self.data_seed, "version": 1,
                # only when asked for: builds without one keep their cache key and fingerprint
                **({"ood": [self.num_ood, self.ood_blanks]} if self.num_ood else {})}

    def generated_source(self) -> dict[str, Any]:
        settings = ({"num_blanks": self.num_blanks} if self.generator == "blanks"
                    else {"hard_fraction": self.hard_fraction, "hard_mean": self.hard_mean})
        return {"kind": "generated", "generator": f"reasonbench.tasks.sudoku {self.generator}",
                "data_seed": self.data_seed, "settings": settings}

    def describe(self) -> list[str]:
        return [*super().describe(), *self.source_lines()]

    def ood_definition(self) -> str | None:
        if "ood" not in self.splits:
            return None
        return (f"{len(self.splits['ood']):,} generated puzzles with {self.ood_blanks} blanks "
                f"(training puzzles have {self.num_blanks})")

    def build(self) -> dict[str, Split]:
        rng = np.random.default_rng(self.data_seed)
        if self.path:
            pool, test, self.skipped_rows = load_splits(self.csv_source().local, self._read_file, self.num_test, rng,
                                                        "puzzles")
        else:
            pool, test = self._generate(rng)
        (q, a, r), held = sample_train_val(pool, self.num_train, self.num_val, rng, "puzzles", fit=self.fit_to_files and self.path is not None)
        splits = {"val": _as_split(*held), "test": _as_split(*test)}
        if self.augmentations:
            copies_q, copies_a = [q], [a]
            for _ in range(self.augmentations):
                moved_q, moved_a = augment_batch(q, a, rng)
                copies_q.append(moved_q)
                copies_a.append(moved_a)
            q, a, r = np.concatenate(copies_q), np.concatenate(copies_a), np.tile(r, self.augmentations + 1)
        if self.hints:
            q, a, r = np.concatenate([q, with_hints(q, a, rng)]), np.concatenate([a, a]), np.concatenate([r, r])
        splits["train"] = _as_split(q, a, r)
        if self.num_ood:
            # a stream of its own: the other splits are the same with or without it
            splits["ood"] = _as_split(*self._generate_ood(np.random.default_rng([self.data_seed, 2])))
        return splits

    def _generate_ood(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Distinct unique-solution puzzles with exactly ``ood_blanks`` blanks (none equivalent
        to another; none can equal a training or test puzzle: those have fewer blanks)."""
        return _distinct(_blanked_puzzles(rng, self.ood_blanks), self.num_ood, set(), self.ood_blanks,
                         "task.ood_blanks", exact_blanks=True)

    def _read_file(self, path: Path) -> tuple[tuple[np.ndarray, ...], int]:
        rows = data.read_csv(path, self.skip_invalid)
        return (rows.questions, rows.answers, rows.ratings), rows.skipped

    def _generate(self, rng: np.random.Generator) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Unique-solution puzzles with ``num_blanks`` blanks; no test puzzle is equivalent
        (under the Sudoku symmetry group) to a training puzzle, nor to another test puzzle."""
        num_test = self.num_test or 1000
        wanted = [self.num_train + self.num_val, num_test]
        candidates = self._candidates(rng, sum(wanted))
        seen: set[bytes] = set()
        train, test = (_distinct(candidates, count, seen, self.num_blanks, "task.num_blanks") for count in wanted)
        return train, test

    def write_csv(self, path: Path, inputs: np.ndarray, labels: np.ndarray, ratings: np.ndarray) -> None:
        data.write_csv(path, data.decode(inputs), data.decode(labels), ratings)

    def _candidates(self, rng: np.random.Generator, expected: int):  # noqa: ANN202 (a generator)
        """Endless (question, answer, rating) stream for the chosen generator."""
        if self.generator == "blanks":
            yield from _blanked_puzzles(rng, self.num_blanks)
        # one SeedSequence per puzzle: the same puzzles whatever the number of processes
        root = np.random.SeedSequence(self.data_seed)
        cores = available_cores()
        workers = min(self.workers or cores, cores)  # more processes than cores only oversubscribe
        while True:
            # the k-th puzzle comes from the k-th child seed however the rounds are cut; a small
            # margin for the rare duplicate, then another round if still short
            seeds = root.spawn(expected + max(2, expected // 100))
            if workers == 1:
                yield from (extreme_puzzle(s, self.hard_fraction, self.hard_mean) for s in seeds)
                continue
            try:
                # spawned workers import only the generator (numpy), not torch or Lightning;
                # one puzzle per task: their times vary by orders of magnitude
                with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                    yield from pool.map(extreme_puzzle, seeds, [self.hard_fraction] * len(seeds),
                                        [self.hard_mean] * len(seeds))
            except BrokenProcessPool:
                raise UserError(f"the Sudoku generator's {workers} worker processes stopped (out of memory, or a "
                                "script that starts them outside `if __name__ == '__main__':`); set task.workers 1 "
                                "to generate in this process") from None

    def render_image(self, inputs: torch.Tensor, prediction: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> np.ndarray:
        """Puzzle | prediction (right fills green, wrong ones red and outlined) | answer."""
        question = data.decode(inputs.cpu().numpy()).reshape(9, 9)
        white = np.full((9, 9, 3), 255, dtype=np.uint8)
        panels = [grid_image(white, np.where(question > 0, question, -1), cell=16, block=3)]
        answer = data.decode(labels.cpu().numpy()).reshape(9, 9) if labels is not None else None
        if prediction is not None:
            pred = data.decode(prediction.cpu().numpy()).reshape(9, 9)
            wrong = (pred != answer) if answer is not None else np.zeros((9, 9), bool)
            ink = np.where(question[..., None] > 0, BLACK, np.where(wrong[..., None], RED, GREEN)).astype(np.uint8)
            panels.append(grid_image(white, np.where(pred > 0, pred, -1), wrong, cell=16, digit_colour=ink, block=3))
        if answer is not None:
            panels.append(grid_image(white, answer, cell=16, block=3))
        return side_by_side(panels)

    def render(self, inputs: torch.Tensor, prediction: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> str:
        question = data.decode(inputs.cpu().numpy())
        pred = data.decode(prediction.cpu().numpy()) if prediction is not None else None
        answer = data.decode(labels.cpu().numpy()) if labels is not None else None
        return data.render(question, pred, answer)
