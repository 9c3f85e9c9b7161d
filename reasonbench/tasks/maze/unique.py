"""Maze-Unique (EqR's maze benchmark): perfect mazes whose start and goal are joined by exactly
one shortest path, of a length drawn uniformly from a range (100-140 steps at 30x30).

The construction is the reference builder's (``dataset/build_maze_unique_dataset.py`` of
locuslab/EqR with ``--maze-mode perfect --length-distribution uniform --require-unique
--dedupe``), drawn from the same ``numpy`` generator in the same order, so a seed gives the
reference's mazes:

* a target length ``L`` uniform in ``[min, max]``;
* a perfect maze by depth-first search with backtracking on the odd grid (``size`` if odd, else
  ``size - 1``, the last row and column walls): cells at odd coordinates, a random unvisited
  neighbour (order down, up, right, left) opened at each step;
* a start uniform among the open cells, a breadth-first search from it, a goal uniform among the
  cells exactly ``L`` steps away (else another start, up to 200; then another maze, up to 200;
  then another length, up to 50);
* a maze whose question repeats an earlier one (training or test) is drawn again.

A perfect maze is a tree, so its shortest path is the only path. Encoding as Maze-Hard's (the
reference's charset ``# SGo``): wall 1, open 2, S 3, G 4, the path's cells between S and G 5.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from reasonbench.util.errors import UserError
from reasonbench.tasks.maze.encoding import GOAL, OPEN, PATH, START, WALL

DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # the reference's order: down, up, right, left
REFERENCE_SIZE, REFERENCE_LENGTHS = 30, (100, 140)
MAX_LENGTH_RESAMPLES, MAX_GRID_ATTEMPTS, MAX_START_ATTEMPTS = 50, 200, 200


def default_lengths(size: int) -> tuple[int, int]:
    """The path-length range for ``size``: the reference's 100-140 steps at 30x30, scaled by the
    number of cells elsewhere (at least 1..2 steps)."""
    if size == REFERENCE_SIZE:
        return REFERENCE_LENGTHS
    scale = size * size / REFERENCE_SIZE ** 2
    low = max(1, round(REFERENCE_LENGTHS[0] * scale))
    return low, max(low + 1, round(REFERENCE_LENGTHS[1] * scale))


def perfect_maze(n: int, rng: np.random.Generator) -> np.ndarray:
    """Open cells [n, n] bool of a perfect maze on an odd ``n`` >= 3 (the reference's
    depth-first search with backtracking)."""
    open_mask = np.zeros((n, n), dtype=bool)
    cells = (n - 1) // 2
    visited = np.zeros((cells, cells), dtype=bool)
    start = (int(rng.integers(cells)), int(rng.integers(cells)))
    stack = [start]
    visited[start] = True
    open_mask[2 * start[0] + 1, 2 * start[1] + 1] = True
    while stack:
        r, c = stack[-1]
        neighbours = [(r + dr, c + dc) for dr, dc in DIRECTIONS
                      if 0 <= r + dr < cells and 0 <= c + dc < cells and not visited[r + dr, c + dc]]
        if not neighbours:
            stack.pop()
            continue
        nr, nc = neighbours[int(rng.integers(len(neighbours)))]
        visited[nr, nc] = True
        open_mask[r + nr + 1, c + nc + 1] = True  # the wall between the two cells
        open_mask[2 * nr + 1, 2 * nc + 1] = True
        stack.append((nr, nc))
    return open_mask


def _bfs(open_mask: np.ndarray, start: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Steps from ``start`` to every cell (-1: unreachable) and each cell's predecessor."""
    n = open_mask.shape[0]
    dist = np.full((n, n), -1, dtype=np.int32)
    parent = np.full((n, n, 2), -1, dtype=np.int32)
    queue = deque([start])
    dist[start] = 0
    while queue:
        y, x = queue.popleft()
        for dy, dx in DIRECTIONS:
            ny, nx = y + dy, x + dx
            if 0 <= ny < n and 0 <= nx < n and open_mask[ny, nx] and dist[ny, nx] == -1:
                dist[ny, nx] = dist[y, x] + 1
                parent[ny, nx] = (y, x)
                queue.append((ny, nx))
    return dist, parent


def _one_maze(size: int, length: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], list[tuple[int, int]]] | None:
    """(open cells, start, goal, path) of a maze whose path has ``length`` steps, or None."""
    odd = size if size % 2 else size - 1
    for _ in range(MAX_GRID_ATTEMPTS):
        open_mask = np.zeros((size, size), dtype=bool)
        open_mask[:odd, :odd] = perfect_maze(odd, rng)
        if int(open_mask.sum()) < length + 1:
            continue
        positions = np.argwhere(open_mask)
        for _ in range(MAX_START_ATTEMPTS):
            start = tuple(int(v) for v in positions[rng.integers(positions.shape[0])])
            dist, parent = _bfs(open_mask, start)
            candidates = np.argwhere(dist == length)
            if candidates.shape[0] == 0:
                continue
            goal = tuple(int(v) for v in candidates[rng.integers(candidates.shape[0])])
            path = [goal]
            while path[-1] != start:
                path.append(tuple(int(v) for v in parent[path[-1]]))
            return open_mask, start, goal, path[::-1]
    return None


def encode_maze(open_mask: np.ndarray, start: tuple[int, int], goal: tuple[int, int],
                path: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(question, answer) token ids, flat row-major int8: the reference's encoding."""
    question = np.where(open_mask, OPEN, WALL).astype(np.int8)
    question[start], question[goal] = START, GOAL
    answer = question.copy()
    for cell in path[1:-1]:
        answer[cell] = PATH
    return question.reshape(-1), answer.reshape(-1)


@dataclass
class UniqueMazes:
    """Mazes of one split: questions and answers [n, size * size] int8, path lengths [n]."""

    questions: np.ndarray
    answers: np.ndarray
    path_lengths: np.ndarray


def generate_split(count: int, size: int, lengths: tuple[int, int], rng: np.random.Generator,
                   seen: set[bytes]) -> UniqueMazes:
    """``count`` mazes drawn from ``rng`` as the reference's ``_build_split`` draws them; a
    question already in ``seen`` (updated here) is drawn again."""
    if size < 3:
        raise UserError(f"task.size {size}: a perfect maze needs a side of at least 3")
    low, high = lengths
    questions, answers, steps = [], [], []
    while len(questions) < count:
        for _ in range(MAX_LENGTH_RESAMPLES):
            length = int(rng.integers(low, high + 1))
            maze = _one_maze(size, length, rng)
            if maze is None:
                raise UserError(f"task.unique_path_length {low}..{high}: no {size}x{size} perfect maze with a "
                                f"{length}-step path after {MAX_GRID_ATTEMPTS}x{MAX_START_ATTEMPTS} attempts; "
                                f"choose shorter paths")
            question, answer = encode_maze(*maze)
            key = question.astype(np.uint8).tobytes()
            if key in seen:
                continue
            seen.add(key)
            questions.append(question)
            answers.append(answer)
            steps.append(length)
            break
        else:
            raise UserError(f"task.unique_path_length {low}..{high}: only repeated mazes after "
                            f"{MAX_LENGTH_RESAMPLES} lengths; choose another range or a larger task.size")
    cells = size * size
    return UniqueMazes(np.stack(questions) if questions else np.zeros((0, cells), np.int8),
                       np.stack(answers) if answers else np.zeros((0, cells), np.int8),
                       np.asarray(steps, dtype=np.int64))


def generate_unique_mazes(num_train: int, num_test: int, size: int, lengths: tuple[int, int],
                          seed: int) -> tuple[UniqueMazes, UniqueMazes]:
    """Training and test mazes from one generator seeded with ``seed``, training first, no
    question twice: the reference builder's ``--seed seed --train-samples num_train
    --test-samples num_test`` output."""
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()
    train = generate_split(num_train, size, lengths, rng, seen)
    return train, generate_split(num_test, size, lengths, rng, seen)


def shortest_path_counts(questions: np.ndarray, size: int, cap: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(steps of the shortest S-to-G path, -1 if none; number of shortest paths, at most
    ``cap``) of every maze [n, size * size], batched: a breadth-first search by dilation that
    sums, at each step, the path counts of the cells one step nearer to S."""
    q = np.asarray(questions).reshape(-1, size, size)
    passable = np.isin(q, (OPEN, START, GOAL))
    goals = q == GOAL
    counts = (q == START).astype(np.int64)
    reached = counts > 0
    frontier = counts.copy()
    steps = np.full(len(q), -1, dtype=np.int64)
    found = np.zeros(len(q), dtype=np.int64)
    for step in range(1, size * size):
        incoming = np.zeros_like(frontier)
        incoming[:, 1:] += frontier[:, :-1]
        incoming[:, :-1] += frontier[:, 1:]
        incoming[:, :, 1:] += frontier[:, :, :-1]
        incoming[:, :, :-1] += frontier[:, :, 1:]
        new = (incoming > 0) & passable & ~reached
        frontier = np.where(new, np.minimum(incoming, cap), 0)
        reached |= new
        arrived = (new & goals).any((1, 2)) & (steps < 0)
        steps[arrived] = step
        found[arrived] = (frontier * goals).sum((1, 2))[arrived]
        if not new.any():
            break
    return steps, found
