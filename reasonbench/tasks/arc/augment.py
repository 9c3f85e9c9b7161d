"""Per-task augmentation as in the reference builders (HRM / TRM ``build_arc_dataset.py``).

Each task gets a group of variants: the task itself first, then up to ``num`` random variants,
each a dihedral transform plus a permutation of colours 1-9 (0 fixed), applied to every grid of
the task. A candidate whose whole task (all demonstration and test pairs) equals one already in
the group is rejected; at most ``RETRIES_FACTOR * num`` candidates are drawn, so tasks with few
colours or much symmetry can end with fewer variants. Every variant gets its own puzzle
identifier; identifier 0 stays reserved for "blank" as in the reference.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from reasonbench.tasks.arc.data import (ArcTaskData, Pair, dihedral, grid_key, inverse_dihedral,
                                        invert_colour_map, random_colour_map)

RETRIES_FACTOR = 5  # the reference's ARCAugmentRetriesFactor
BLANK_PUZZLE_ID = 0


@dataclass(frozen=True)
class Variant:
    """A dihedral transform id (0-7) and a colour lookup table (``colours[c]`` = new colour)."""

    transform: int
    colours: np.ndarray

    def apply(self, grid: np.ndarray) -> np.ndarray:
        return dihedral(self.colours[grid], self.transform)

    def invert(self, grid: np.ndarray) -> np.ndarray:
        return invert_colour_map(self.colours)[inverse_dihedral(grid, self.transform)]

    def apply_pairs(self, pairs: tuple[Pair, ...]) -> list[Pair]:
        return [(self.apply(i), self.apply(o)) for i, o in pairs]


IDENTITY = Variant(0, np.arange(10, dtype=np.uint8))


def task_hash(pairs: list[Pair]) -> bytes:
    """Order-free fingerprint of a task's pairs (shapes included), as the reference's
    ``puzzle_hash``: equal hashes mean the same set of (input, output) pairs. Each pair's key
    starts with the grids' shapes, so the sorted keys joined are unambiguous."""
    keys = sorted(grid_key(i) + grid_key(o) for i, o in pairs)
    return hashlib.blake2b(b"".join(keys), digest_size=32).digest()


def make_variants(task: ArcTaskData, num: int, rng: np.random.Generator) -> list[Variant]:
    """The identity followed by up to ``num`` distinct random variants of ``task``."""
    group = [IDENTITY]
    if num <= 0:
        return group
    pairs = (*task.train, *task.test)
    seen = {task_hash(list(pairs))}
    for _ in range(RETRIES_FACTOR * num):
        candidate = Variant(int(rng.integers(0, 8)), random_colour_map(rng))
        h = task_hash(candidate.apply_pairs(pairs))
        if h not in seen:
            seen.add(h)
            group.append(candidate)
            if len(group) >= num + 1:
                break
    return group


def task_seed(data_seed: int, collection: str, task_id: str) -> np.random.Generator:
    """A generator for one task that does not depend on which other tasks are built, so a
    task's variants are the same in a small preset and in the full set."""
    digest = hashlib.sha256(f"{collection}/{task_id}".encode()).digest()
    return np.random.default_rng([data_seed, int.from_bytes(digest[:8], "little")])
