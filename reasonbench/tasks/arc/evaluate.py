"""Voting over augmented variants and pass@K scoring, as the reference ARC evaluators do
(TinyRecursiveModels ``evaluators/arc.py``; HRM ``arc_eval.ipynb``).

For every test input the model has predicted each augmented variant. Each prediction is cropped
at its end-of-grid marker, mapped back through its variant's inverse (dihedral transform, then
colours), and counted as a vote for that grid. Candidates rank by votes, ties by the mean
halting confidence of their voters (when the model gives one), remaining ties by first
appearance. A test output counts as right at K when the true grid is among the top K.

Two task scores are reported: the reference's partial credit (TRM's evaluator: a task earns the
fraction of its test outputs that are right) and strict credit (HRM's notebook and the ARC
Prize: a task counts only when all of its test outputs are right).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reasonbench.tasks.arc.data import decode_grid, grid_key, inverse_dihedral, invert_colour_map
from reasonbench.util.atomic import write_atomic

DEFAULT_KS = (1, 2)


@dataclass
class Candidate:
    """One distinct decoded grid with its votes."""

    grid: np.ndarray
    votes: int = 0
    confidence_sum: float = 0.0
    first_seen: int = 0

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / self.votes if self.votes else 0.0


def rank(grids: Sequence[np.ndarray], confidences: Sequence[float] | None = None) -> list[Candidate]:
    """Distinct grids ranked by votes, then mean confidence, then first appearance."""
    by_key: dict[bytes, Candidate] = {}
    for i, grid in enumerate(grids):
        key = grid_key(grid)
        cand = by_key.get(key)
        if cand is None:
            cand = by_key[key] = Candidate(grid=np.ascontiguousarray(grid, dtype=np.uint8), first_seen=i)
        cand.votes += 1
        if confidences is not None:
            cand.confidence_sum += float(confidences[i])
    return sorted(by_key.values(), key=lambda c: (-c.votes, -c.mean_confidence, c.first_seen))


def collect_votes(predictions: np.ndarray, task_index: np.ndarray, pair_index: np.ndarray,
                  transforms: np.ndarray, colours: np.ndarray, canvas: int,
                  confidences: np.ndarray | None = None) -> dict[tuple[int, int], list[Candidate]]:
    """Ranked candidates per (task, test pair) from predicted ids ``[N, canvas*canvas]`` of N
    augmented test examples; ``transforms[n]`` and ``colours[n]`` (a colour lookup table) say
    how example n was augmented."""
    n = len(predictions)
    for name, arr in (("task_index", task_index), ("pair_index", pair_index), ("transforms", transforms),
                      ("colours", colours)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows for {n} predictions")
    if confidences is not None and len(confidences) != n:
        raise ValueError(f"confidences has {len(confidences)} rows for {n} predictions")
    grouped: dict[tuple[int, int], tuple[list[np.ndarray], list[float]]] = {}
    inverse_tables: dict[bytes, np.ndarray] = {}
    for i in range(n):
        mapping = colours[i]
        key = mapping.tobytes()
        inverse = inverse_tables.get(key)
        if inverse is None:
            inverse = inverse_tables[key] = invert_colour_map(mapping)
        grid = inverse[inverse_dihedral(decode_grid(predictions[i], canvas), int(transforms[i]))]
        grids, confs = grouped.setdefault((int(task_index[i]), int(pair_index[i])), ([], []))
        grids.append(grid)
        if confidences is not None:
            confs.append(float(confidences[i]))
    return {k: rank(g, c if confidences is not None else None) for k, (g, c) in grouped.items()}


def score(ranked: dict[tuple[int, int], list[Candidate]], answers: Sequence[Sequence[np.ndarray]],
          ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """pass@K per task, partial (``pass@K``) and strict (``pass@K_strict``), averaged over the
    tasks of ``answers`` (the true test outputs of each task, in order). A test pair with no
    predictions counts as wrong."""
    if not answers:
        raise ValueError("no tasks to score")
    partial = {k: 0.0 for k in ks}
    strict = {k: 0 for k in ks}
    for t, outputs in enumerate(answers):
        right = {k: 0 for k in ks}
        for p, truth in enumerate(outputs):
            keys = [grid_key(c.grid) for c in ranked.get((t, p), [])]
            target = grid_key(truth)
            for k in ks:
                right[k] += target in keys[:k]
        for k in ks:
            partial[k] += right[k] / len(outputs)
            strict[k] += right[k] == len(outputs)
    n = len(answers)
    result: dict[str, float] = {}
    for k in ks:
        result[f"pass@{k}"] = partial[k] / n
    for k in ks:
        result[f"pass@{k}_strict"] = strict[k] / n
    result["n_tasks"] = n
    return result


def submission(ranked: dict[tuple[int, int], list[Candidate]], task_ids: Sequence[str],
               pairs_per_task: Sequence[int], attempts: int = 2) -> dict[str, list[dict[str, list[list[int]]]]]:
    """The ARC Prize submission ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``:
    the top ``attempts`` candidates per test input, in test order. Fewer candidates repeat the
    first (as the reference does); an input with no usable prediction gets ``[[0]]``, the
    placeholder grid the ARC Prize format uses for "no answer"."""
    out: dict[str, list[dict[str, list[list[int]]]]] = {}
    for t, (task_id, n_pairs) in enumerate(zip(task_ids, pairs_per_task)):
        entries = []
        for p in range(n_pairs):
            grids = [c.grid.tolist() for c in ranked.get((t, p), []) if c.grid.size][:attempts]
            if not grids:
                grids = [[[0]]]
            grids += [grids[0]] * (attempts - len(grids))
            entries.append({f"attempt_{i + 1}": g for i, g in enumerate(grids)})
        out[task_id] = entries
    return out


def write_json(data: object, path: str | Path) -> Path:
    """Write ``data`` as compact JSON (``json.dumps``'s bytes), atomically and fsynced (a crash
    never leaves half a submission); returns the path."""
    path = Path(path)
    write_atomic(path, json.dumps(data))
    return path
