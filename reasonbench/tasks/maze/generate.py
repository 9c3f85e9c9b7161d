"""Maze-Hard generation and the valid-shortest-path check.

Generation follows the reference (Searchformer's maze procedure with HRM's length filter):
shuffle the ``size * size`` cells and make the first ``n`` walls, ``n`` uniform over the counts
from 30% to 50% of the cells (270..450 of 900, Searchformer's bounds; 11..18 of a 6x6 maze); pick
the start among the open cells; keep the maze when its shortest 4-neighbour path is longer than
``min_path_length`` steps (moves, i.e. path cells counting S and G minus one).

Lengths are counted in steps, HRM's "shortest path length". Searchformer's own filter counted the
cells of its A* plan including S and G (steps + 1); the HRM paper does not say which it
thresholded at 110, so a one-step shift against the reference files is possible.

The goal: the reference draws it uniformly among the other open cells and rejects the maze when
the path is too short. At 30x30 with 110 that accepts about 2e-5 of candidates (about 50M
candidates for 1,000 mazes, many CPU minutes). Here each candidate's breadth-first search from
the start yields every cell's distance at once, so the goal is drawn uniformly among the cells
farther than ``min_path_length``, and the candidate is rejected only when there is none. Same
walls, start rule and filter; the one difference is that a (walls, start) pair is kept with
probability 1[some cell is far enough] rather than (far cells)/(open cells - 1).
``GeneratedMazes.reference_acceptance`` reports the reference's rate for comparison.

The answer's path is the one Searchformer's deterministic A* returns (Manhattan heuristic, ties
broken by the lower row-major index): a fixed convention, because a random 30x30 maze typically
has millions of shortest paths and exact-match scoring needs one agreed label.

Throughput comes from a bit-sliced breadth-first search: bit j of word g of cell c says whether
candidate 64 * g + j has reached cell c, so one OR/AND over a [rows, cols, groups] uint64 array
advances 64 candidates per word. Candidates are processed in batches of fixed sizes, each from
its own seeded generator, so a seed always yields the same sequence of mazes.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from reasonbench.util.errors import UserError
from reasonbench.tasks.maze.encoding import GOAL, OPEN, PATH, START, WALL, dihedral


def wall_count_range(cells: int) -> tuple[int, int]:
    """Inclusive range of the number of walls: every count from 30% to 50% of the cells.
    (``cells // 10 * 3`` .. ``cells // 10 * 5`` agrees at 900 cells but gives 9..15 of 36: 25-42%.)"""
    return (3 * cells + 9) // 10, cells // 2


@dataclass
class GeneratedMazes:
    """Mazes from ``generate_mazes`` and what it took to find them."""

    questions: np.ndarray  # int8 [n, size * size]
    answers: np.ndarray  # int8 [n, size * size]
    path_lengths: np.ndarray  # int64 [n], steps of the shortest path
    candidates: int  # (walls, start) candidates examined
    reference_hits: float  # expected acceptances of the reference's uniform goal over those candidates
    seconds: float

    @property
    def acceptance(self) -> float:
        return len(self.questions) / self.candidates if self.candidates else 0.0

    @property
    def reference_acceptance(self) -> float:
        return self.reference_hits / self.candidates if self.candidates else 0.0


# ---------------------------------------------------------------------------------------------
# Batched candidates and their breadth-first search


def _sample_candidates(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (walls, start) candidates as bit-sliced masks [cells, ceil(n / 64)] uint64:
    the open cells (start included) and the start cell.

    Walls plus start form a uniform random (walls + 1)-subset, drawn by selection sampling
    (cell i joins with probability still-needed / cells-left); the start is a uniformly chosen
    member of it. That is exactly "shuffle, first ``walls`` cells are walls, start uniform among
    the rest", at a cost linear in the cells rather than a sort per candidate.
    """
    cells = size * size
    lo, hi = wall_count_range(cells)
    small = np.int16 if cells < 2**15 else np.int32  # narrow counters: less memory traffic
    # sorted wall counts: a group of 64 then has similar mazes and finishes its search together
    walls = np.sort(rng.integers(lo, hi + 1, size=n)).astype(small)
    needed = walls + 1
    until_start = rng.integers(0, needed).astype(small)  # members to pass before the start
    groups = (n + 63) // 64
    open_bits = np.empty((cells, groups), dtype=np.uint64)
    start_cell = np.zeros(n, dtype=np.int64)
    bits = np.zeros(groups * 64, dtype=bool)  # candidates past n stay all-wall, so never hit
    joins = np.empty(n, dtype=bool)
    is_start = np.empty(n, dtype=bool)
    for i in range(cells):
        np.less(rng.integers(0, cells - i, size=n, dtype=small), needed, out=joins)
        needed -= joins
        np.equal(until_start, 0, out=is_start)
        is_start &= joins
        until_start -= joins
        start_cell[is_start] = i
        np.logical_not(joins, out=bits[:n])
        bits[:n] |= is_start
        open_bits[i] = np.packbits(bits, bitorder="little").view("<u8")
    start_bits = np.zeros((cells, groups), dtype=np.uint64)
    idx = np.arange(n)
    np.bitwise_or.at(start_bits, (start_cell, idx // 64), np.left_shift(np.uint64(1), (idx % 64).astype(np.uint64)))
    return open_bits, start_bits


def _far_candidates(open_bits: np.ndarray, start_bits: np.ndarray, size: int, min_path_length: int) -> np.ndarray:
    """Indices of the candidates with at least one cell more than ``min_path_length`` steps
    from the start: those whose search still grows at step ``min_path_length + 1``."""
    groups = open_bits.shape[1]
    # cells on a (size + 2)^2 grid with a frame of walls, flattened: the 4 neighbours of the
    # inner block are then the contiguous blocks shifted by 1 and by one row
    row = size + 2
    lo, hi = row + 1, row * (size + 1) - 1
    passable = np.zeros((size + 2, size + 2, groups), dtype=np.uint64)
    passable[1:-1, 1:-1] = open_bits.reshape(size, size, groups)
    passable = passable.reshape(row * row, groups)
    reached = np.zeros_like(passable)
    reached.reshape(row, row, groups)[1:-1, 1:-1] = start_bits.reshape(size, size, groups)
    after = np.zeros_like(reached)  # double buffer: the search one step further
    ids = np.arange(groups)
    last = min_path_length + 1
    for step in range(1, last + 1):
        grown = after[lo:hi]
        np.bitwise_or(reached[lo - 1:hi - 1], reached[lo + 1:hi + 1], out=grown)
        grown |= reached[lo - row:hi - row]
        grown |= reached[lo + row:hi + row]
        grown |= reached[lo:hi]
        grown &= passable[lo:hi]
        reached, after = after, reached
        if step == last or step % 8 == 0:
            # cells first reached at this step; a search whose frontier is empty has ended
            frontier = np.bitwise_or.reduce(reached[lo:hi] ^ after[lo:hi], axis=0)
            if step == last:
                hit = np.unpackbits(frontier.view(np.uint8), bitorder="little").reshape(-1, 64).astype(bool)
                return (ids[:, None] * 64 + np.arange(64))[hit]
            alive = frontier != 0
            if not alive.any():
                return np.zeros(0, dtype=np.int64)
            if not alive.all():
                # drop groups whose 64 searches all ended: every one of them is rejected
                reached, passable, ids = reached[:, alive], passable[:, alive], ids[alive]
                after = np.zeros_like(reached)
    raise AssertionError("unreachable")


def _grow(mask: np.ndarray) -> np.ndarray:
    """4-neighbour dilation of boolean grids [..., rows, cols]."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def distance_maps(passable: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Steps from the start to every cell (-1 where unreachable) for grids [n, rows, cols]
    of passable cells and flat start indices [n]."""
    n, rows, cols = passable.shape
    dist = np.full(passable.shape, -1, dtype=np.int32)
    reached = np.zeros(passable.shape, dtype=bool)
    reached.reshape(n, -1)[np.arange(n), starts] = True
    dist[reached] = 0
    step = 0
    while True:
        step += 1
        grown = _grow(reached) & passable
        new = grown & ~reached
        if not new.any():
            return dist
        dist[new] = step
        reached = grown


def astar_path(passable: np.ndarray, size: int, start: int, goal: int) -> list[int]:
    """Cells (flat indices, S first) of the path Searchformer's deterministic A* returns:
    Manhattan heuristic, the open node with the lowest (g + h, row-major index) expanded next,
    a node's parent replaced only by a strictly shorter route. ``passable``: flat bool cells."""
    goal_r, goal_c = divmod(goal, size)

    def heuristic(v: int) -> int:
        r, c = divmod(v, size)
        return abs(r - goal_r) + abs(c - goal_c)

    best = {start: 0}
    parent = {start: -1}
    closed: set[int] = set()
    heap = [(heuristic(start), start)]
    while heap:
        _, v = heapq.heappop(heap)
        if v in closed:
            continue  # an outdated entry: the node was re-queued with a shorter route
        closed.add(v)
        if v == goal:
            break
        r, c = divmod(v, size)
        for u, ok in ((v + size, r + 1 < size), (v - size, r > 0), (v - 1, c > 0), (v + 1, c + 1 < size)):
            if not ok or not passable[u]:
                continue
            g = best[v] + 1
            if best.get(u, g + 1) <= g:
                continue
            best[u] = g
            parent[u] = v
            closed.discard(u)
            heapq.heappush(heap, (g + heuristic(u), u))
    if goal not in closed:
        raise ValueError("goal unreachable")
    path = [goal]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]


def maze_keys(questions: np.ndarray, size: int) -> set[bytes]:
    """Byte keys of the mazes and all their dihedral images (for duplicate checks)."""
    q = np.asarray(questions, dtype=np.int8)
    return {row.tobytes() for k in range(8) for row in dihedral(q, size, k)}


def _batch_size(cells: int, index: int) -> int:
    """Candidates in batch ``index``: doubling from 1,024 (a few easy mazes cost little) up to
    about 16k for 30x30, big enough to amortise numpy's per-call cost and small enough that
    the search's working set stays in cache (measured fastest here). A fixed schedule, so a
    seed's sequence of mazes does not depend on how many are asked for."""
    cap = int(np.clip((2**24 // cells) // 64 * 64, 1024, 65536))
    return min(cap, 1024 << min(index, 6))


def _check_acceptance(accepted: int, count: int, candidates: int, give_up_after: int, size: int,
                      min_path_length: int) -> None:
    """A UserError when ``give_up_after`` candidates gave no maze, or the rate seen so far would
    need over 100 times as many for ``count``."""
    rate = accepted / candidates
    if rate == 0 or count / rate > 100 * give_up_after:
        raise UserError(f"only {accepted} of {count} {size}x{size} mazes with a shortest path "
                        f"longer than {min_path_length} steps in {candidates:,} candidates; "
                        "lower task.min_path_length")


def _maze(rng: np.random.Generator, passable: np.ndarray, start: int, dist: np.ndarray, size: int,
          min_path_length: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """One maze from a far candidate: a goal drawn among the cells farther than
    ``min_path_length`` steps from the start, the A* path to it marked in the answer. Returns
    (question, answer, path length, the share of the candidate's other open cells that are far)."""
    far = np.nonzero(dist > min_path_length)[0]
    far_share = len(far) / (passable.sum() - 1)
    goal = int(far[rng.integers(len(far))])
    path = astar_path(passable, size, start, goal)
    question = np.where(passable, OPEN, WALL).astype(np.int8)
    question[start], question[goal] = START, GOAL
    answer = question.copy()
    answer[path[1:-1]] = PATH
    return question, answer, len(path) - 1, far_share


def generate_mazes(count: int, size: int = 30, min_path_length: int = 110,
                   seed: int | Sequence[int] = 0, exclude: Iterable[bytes] = (),
                   batch_size: int | None = None, give_up_after: int = 2_000_000) -> GeneratedMazes:
    """``count`` distinct mazes whose shortest S-to-G path is longer than ``min_path_length``
    steps, with their answers (the A* path marked 'o'). Deterministic for a ``seed``; a larger
    ``count`` extends the sequence a smaller one gives. Mazes whose question bytes are in
    ``exclude`` (or repeat an earlier one) are skipped. Raises UserError when nothing is accepted
    in ``give_up_after`` candidates, or the acceptance seen then would need over 100 times as many.
    """
    cells = size * size
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    if not 0 <= min_path_length <= cells - 2:
        raise ValueError(f"min_path_length must be in 0..{cells - 2}, got {min_path_length}")
    seen = set(exclude)
    base = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    questions: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    lengths: list[int] = []
    candidates, reference_hits, index = 0, 0.0, 0
    start_time = time.perf_counter()
    while len(questions) < count:
        if candidates >= give_up_after:
            _check_acceptance(len(questions), count, candidates, give_up_after, size, min_path_length)
        rng = np.random.default_rng([*base, index])
        batch = batch_size or _batch_size(cells, index)
        index += 1
        open_bits, start_bits = _sample_candidates(rng, batch, size)
        hits = _far_candidates(open_bits, start_bits, size, min_path_length)
        hits = hits[hits < batch]
        used = batch
        if len(hits):
            word, bit = hits // 64, (hits % 64).astype(np.uint64)
            passable = ((open_bits[:, word] >> bit) & np.uint64(1)).astype(bool).T  # [hits, cells]
            starts = np.argmax(((start_bits[:, word] >> bit) & np.uint64(1)).astype(bool).T, axis=1)
            dist = distance_maps(passable.reshape(-1, size, size), starts).reshape(len(hits), cells)
            for j in range(len(hits)):
                question, answer, length, far_share = _maze(rng, passable[j], int(starts[j]), dist[j], size,
                                                            min_path_length)
                reference_hits += far_share
                key = question.tobytes()
                if key in seen:
                    continue
                seen.add(key)
                questions.append(question)
                answers.append(answer)
                lengths.append(length)
                if len(questions) == count:
                    used = int(hits[j]) + 1  # later candidates of this batch were never looked at
                    break
        candidates += used
    empty = np.zeros((0, cells), dtype=np.int8)
    return GeneratedMazes(questions=np.stack(questions) if questions else empty,
                          answers=np.stack(answers) if answers else empty,
                          path_lengths=np.asarray(lengths, dtype=np.int64), candidates=candidates,
                          reference_hits=reference_hits, seconds=time.perf_counter() - start_time)


# ---------------------------------------------------------------------------------------------
# Checking a predicted path (torch, batched, on whatever device the tensors live)


@dataclass
class PathCheck:
    """Per-example verdicts of ``check_paths``: ``codes`` (OK or the first failed rule), the
    shortest S-to-G distance in steps (-1 if none) and the number of 'o' cells marked."""

    OK = 0
    MALFORMED = 1  # the question lacks exactly one S and one G, or holds other tokens
    ALTERED = 2  # the prediction changes a cell other than turning an open cell into 'o'
    UNSOLVABLE = 3  # G cannot be reached from S
    WRONG_LENGTH = 4  # number of 'o' cells is not (shortest distance - 1)
    DISCONNECTED = 5  # the 'o' cells do not join S to G

    codes: torch.Tensor  # int64 [B]
    shortest: torch.Tensor  # int64 [B]
    marked: torch.Tensor  # int64 [B]


def _grow_t(mask: torch.Tensor) -> torch.Tensor:
    out = mask.clone()
    out[:, 1:, :] |= mask[:, :-1, :]
    out[:, :-1, :] |= mask[:, 1:, :]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def check_paths(inputs: torch.Tensor, predictions: torch.Tensor, size: int) -> PathCheck:
    """Is each prediction the question with exactly one shortest S-to-G path marked?

    Valid means: every cell equals the question's except open cells turned into 'o' (S and G
    may also be written 'o'); and the
    'o' cells number (shortest distance - 1) and join S to G through 4-neighbour steps. A set of
    d + 1 cells holding S and G that connects them, when S and G are d steps apart, is exactly
    a shortest path, so any equally short alternative to the label passes. Batched: two
    breadth-first searches by repeated dilation, in the open cells and in the marked cells.
    """
    b = inputs.shape[0]
    q = inputs.reshape(b, size, size)
    p = predictions.reshape(b, size, size)
    starts, goals = q == START, q == GOAL
    known = (q == WALL) | (q == OPEN) | starts | goals
    well_formed = (starts.flatten(1).sum(1) == 1) & (goals.flatten(1).sum(1) == 1) & known.flatten(1).all(1)
    marks = (p == PATH) & (q == OPEN)
    # S and G may also be written 'o' (they lie on the path): tolerated, whichever convention
    # a file or a model follows, since the path itself is the same
    endpoints_as_path = (p == PATH) & (starts | goals)
    unaltered = ((p == q) | marks | endpoints_as_path).flatten(1).all(1)
    passable = known & (q != WALL)
    on_path = starts | goals | marks
    open_reach, path_reach = starts.clone(), starts.clone()
    shortest = torch.full((b,), -1, dtype=torch.long, device=inputs.device)
    joined = torch.zeros(b, dtype=torch.bool, device=inputs.device)
    for step in range(1, size * size):
        grown_open = _grow_t(open_reach) & passable
        grown_path = _grow_t(path_reach) & on_path
        arrived = (grown_open & goals).flatten(1).any(1) & (shortest < 0)
        shortest = torch.where(arrived, torch.full_like(shortest, step), shortest)
        joined |= (grown_path & goals).flatten(1).any(1)
        if torch.equal(grown_open, open_reach) and torch.equal(grown_path, path_reach):
            break
        open_reach, path_reach = grown_open, grown_path
    marked = marks.flatten(1).sum(1)
    codes = torch.full((b,), PathCheck.OK, dtype=torch.long, device=inputs.device)
    # assigned from the last rule to the first, so the first failed rule wins
    codes[~joined] = PathCheck.DISCONNECTED
    codes[marked != shortest - 1] = PathCheck.WRONG_LENGTH
    codes[shortest < 0] = PathCheck.UNSOLVABLE
    codes[~unaltered] = PathCheck.ALTERED
    codes[~well_formed] = PathCheck.MALFORMED
    return PathCheck(codes=codes, shortest=shortest, marked=marked)


def valid_shortest_paths(inputs: torch.Tensor, predictions: torch.Tensor, size: int) -> torch.Tensor:
    """bool [B]: the prediction marks a valid shortest S-to-G path and changes nothing else."""
    return check_paths(inputs, predictions, size).codes == PathCheck.OK
