"""The ``maze`` task: Maze-Hard from the reference CSVs, or generated mazes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UserError
from ..base import Difficulty, ReasoningTask, Split, TaskMetadata, check_planned_size
from ..reference_csv import ReferenceCsvSource, load_splits, sample_train_val
from . import data
from .generate import generate_mazes, maze_keys, valid_shortest_paths

# The reference test split holds 1,000 mazes; generation makes as many when num_test is None.
REFERENCE_TEST_SIZE = 1000


def _as_split(questions: np.ndarray, answers: np.ndarray, ratings: np.ndarray,
              path_lengths: np.ndarray) -> Split:
    n = len(questions)
    return Split(inputs=torch.from_numpy(questions.astype(np.int64)),
                 labels=torch.from_numpy(answers.astype(np.int64)),  # every cell supervised, walls too
                 puzzle_ids=torch.zeros(n, dtype=torch.long),  # one (blank) identifier, as in the reference
                 info={"rating": torch.as_tensor(ratings, dtype=torch.long),
                       "path_length": torch.as_tensor(path_lengths, dtype=torch.long)})


class MazeTask(ReferenceCsvSource, ReasoningTask):
    """Maze-Hard: mark a shortest 4-neighbour path from S to G in a random-wall maze.

    Reference encoding: wall 1, open 2, S 3, G 4, path 'o' 5, pad 0 (vocab 6), length
    ``size * size``. Scored by exact match against the labelled path (Searchformer's A* one for
    generated mazes) and by ``valid_path``: any equally short path counts.

    Args:
        path: reference data: a directory with ``train.csv`` and ``test.csv``, or one CSV file
            (split into train and test with ``data_seed``), or a Hugging Face dataset
            ``hf://OWNER/NAME[@REVISION]`` holding them (``hf://sapientinc/maze-30x30-hard-1k``:
            fetched into the Hub cache, read from it offline). ``None`` generates mazes.
        size: side of the square mazes; every CSV row must have ``size * size`` cells.
        min_path_length: generation keeps mazes whose shortest path is longer than this many
            steps (110 for the reference 30x30 mazes). Not applied to CSV files.
        num_train: training mazes sampled (with ``data_seed``) before augmentation; ``None``
            (with ``path``): every training row not held out for validation.
        num_val: held-out training mazes used only to monitor training; ``None`` (with ``path``):
            a tenth of the training rows.
        num_test: test mazes; ``None`` takes the whole test file (or generates 1,000).
        dihedral_augment: add the 7 other rotations/reflections of every training maze
            (8x the training set; off in the reference recipe).
        skip_invalid: skip and count bad CSV rows instead of stopping at the first.
        fit_to_files: with ``path``, sizes larger than the files hold shrink to them (validation
            to a tenth of the training rows when the number asked would take half of them or
            more); set when ``path`` is given on the command line and this is not.
        num_ood: mazes of a generated out-of-distribution split (0: none), evaluated beside the
            test split: the same size, with a shortest path longer than every training maze's.
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

    name = "maze"
    # pad, wall, open, start, goal, path
    palette = np.array([(255, 255, 255), (30, 30, 30), (245, 245, 245), (46, 204, 64), (255, 65, 54),
                        (0, 116, 217)], dtype=np.uint8)

    def __init__(self, path: str | None = None, size: int = 30, min_path_length: int = 110,
                 num_train: int | None = 1000, num_val: int | None = 100, num_test: int | None = 1000,
                 dihedral_augment: bool = False, skip_invalid: bool = False, fit_to_files: bool = False, num_ood: int = 0,
                 batch_size: int = 32, eval_batch_size: int = 256, data_seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed)
        if size < 2:
            raise ValueError(f"task.size must be >= 2, got {size}")
        if not 0 <= min_path_length <= size * size - 2:
            raise ValueError(f"task.min_path_length must be in 0..{size * size - 2} for task.size {size} "
                             f"(a path visits each of the {size * size} cells at most once), got {min_path_length}")
        if any(n is not None and n < 1 for n in (num_train, num_val, num_test)):
            raise ValueError("task.num_train, task.num_val and task.num_test must be positive")
        if (num_train is None or num_val is None) and path is None:
            raise ValueError("task.num_train and task.num_val null (sizes from the files) need task.path; "
                             "generated data need numbers")
        if num_ood < 0:
            raise ValueError(f"task.num_ood must be >= 0, got {num_ood}")
        check_planned_size((num_train or 0) * (8 if dihedral_augment else 1) + (num_val or 0)
                           + (num_test or REFERENCE_TEST_SIZE) + num_ood,
                           size * size, "task.size, task.num_train, task.num_val, task.num_test, task.num_ood")
        self.num_ood = num_ood
        self.path = path
        self.size = size
        self.min_path_length = min_path_length
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.dihedral_augment = dihedral_augment
        self.skip_invalid = skip_invalid
        self.fit_to_files = fit_to_files
        self.skipped_rows: dict[str, int] = {}  # invalid CSV rows skipped, per file (skip_invalid)

    def difficulty(self, split: str) -> Difficulty:
        # shortest S-G path length, in steps of a side's length (Maze-Hard's paths are > 110 on 30x30)
        s = self.size
        return Difficulty("shortest path length", self.splits[split].info["path_length"], [s, 2 * s, 3 * s, 4 * s, 6 * s])

    @property
    def metadata(self) -> TaskMetadata:
        return TaskMetadata(name=self.name, vocab_size=data.VOCAB_SIZE, seq_len=self.size * self.size,
                            relabellings=data.RELABELLINGS,
                            num_puzzle_ids=1, grid_shape=(self.size, self.size), extra_metrics=("valid_path",))

    def recipe(self) -> dict[str, Any]:
        return {"task": self.name, "source": self.source_stamp(), "size": self.size,
                "min_path_length": None if self.path else self.min_path_length,
                "num_train": self.num_train, "num_val": self.num_val, "num_test": self.num_test,
                "dihedral_augment": self.dihedral_augment, "skip_invalid": self.skip_invalid,
                **({"fit_to_files": True} if self.fit_to_files and self.path else {}),
                # generated data v2: walls over 30-50% of the cells at every size (v1: 25-42% at 6x6)
                "data_seed": self.data_seed, "version": 1 if self.path else 2,
                # only when asked for: builds without one keep their cache key and fingerprint
                **({"num_ood": self.num_ood} if self.num_ood else {})}

    def generated_source(self) -> dict[str, Any]:
        return {"kind": "generated", "generator": "reasonbench.tasks.maze (random 30-50% walls, shortest path, "
                "Searchformer-style)", "data_seed": self.data_seed,
                "settings": {"size": self.size, "min_path_length": self.min_path_length}}

    def ood_definition(self) -> str | None:
        if "ood" not in self.splits:
            return None
        longest = int(self.splits["train"].info["path_length"].max())
        return (f"{len(self.splits['ood']):,} generated {self.size}x{self.size} mazes whose shortest path is "
                f"longer than every training maze's (> {longest} steps)")

    def describe(self) -> list[str]:
        lines = super().describe()
        if self.path:
            lines += self.source_lines() or [f"source       reference CSV {self.path} ({self.size}x{self.size})"]
        else:
            lines.append(f"source       generated {self.size}x{self.size} mazes, shortest path > "
                         f"{self.min_path_length} steps, seed {self.data_seed}")
        return lines

    def build(self) -> dict[str, Split]:
        rng = np.random.default_rng(self.data_seed)
        if self.path:
            pool, test, self.skipped_rows = load_splits(self.csv_source().local, self._read_file, self.num_test, rng,
                                                        "mazes")
        else:
            pool, test = self._generate()
        (q, a, r, lengths), held = sample_train_val(pool, self.num_train, self.num_val, rng, "mazes", fit=self.fit_to_files and self.path is not None)
        splits = {"val": _as_split(*held), "test": _as_split(*test)}
        if self.dihedral_augment:
            # the 8 images of a maze are valid mazes with the same path length; the labelled
            # path's tie-breaking convention is not preserved under rotation, validity is
            q = np.concatenate([data.dihedral(q, self.size, k) for k in range(8)])
            a = np.concatenate([data.dihedral(a, self.size, k) for k in range(8)])
            r, lengths = np.tile(r, 8), np.tile(lengths, 8)
        splits["train"] = _as_split(q, a, r, lengths)
        if self.num_ood:
            # longer than the longest training path; CSV data too (the generator's walls and start rule)
            longest = int(lengths.max())
            try:
                ood = generate_mazes(self.num_ood, self.size, longest, seed=(self.data_seed, 2),
                                     exclude=maze_keys(test[0], self.size))
            except UserError:
                raise UserError(f"task.num_ood: too few {self.size}x{self.size} mazes have a shortest path longer "
                                f"than the longest training maze's ({longest} steps) to generate "
                                f"{self.num_ood:,}; lower task.num_ood or set it to 0") from None
            splits["ood"] = _as_split(ood.questions, ood.answers, ood.path_lengths, ood.path_lengths)
        return splits

    def _read_file(self, path: Path) -> tuple[tuple[np.ndarray, ...], int]:
        rows = data.read_csv(path, self.size, self.skip_invalid)
        return (rows.questions, rows.answers, rows.ratings, rows.path_lengths), rows.skipped

    def _generate(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Training pool and test mazes from separate seed streams; no test maze equals a
        training maze or any rotation/reflection of one (so augmentation cannot leak it)."""
        train = generate_mazes(self.num_train + self.num_val, self.size, self.min_path_length,
                               seed=(self.data_seed, 0))
        test = generate_mazes(self.num_test or REFERENCE_TEST_SIZE, self.size, self.min_path_length,
                              seed=(self.data_seed, 1), exclude=maze_keys(train.questions, self.size))
        # the rating column of generated data is the path length, the maze's difficulty
        return ((train.questions, train.answers, train.path_lengths, train.path_lengths),
                (test.questions, test.answers, test.path_lengths, test.path_lengths))

    def score(self, inputs: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"valid_path": valid_shortest_paths(inputs, predictions, self.size)}

    def write_csv(self, path: Path, inputs: np.ndarray, labels: np.ndarray, ratings: np.ndarray) -> None:
        data.write_csv(path, inputs, labels, ratings)

    def render(self, inputs: torch.Tensor, prediction: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> str:
        def host(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().cpu().numpy()

        return data.render(host(inputs), self.size, host(prediction), host(labels))
