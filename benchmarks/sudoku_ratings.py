"""Rating histogram and speed of the Sudoku-Extreme-like generator (``task.generator extreme``).

python -m reasonbench_benchmarks.sudoku_ratings [--puzzles N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from reasonbench.tasks.sudoku.grid import extreme_puzzle

BUCKETS = [(0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, 10**9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--hard-fraction", type=float, default=0.5)
    parser.add_argument("--hard-mean", type=float, default=55.0)
    args = parser.parse_args()
    seeds = np.random.SeedSequence(0).spawn(args.puzzles)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(extreme_puzzle, seeds, [args.hard_fraction] * len(seeds),
                                [args.hard_mean] * len(seeds), chunksize=2))
    elapsed = time.perf_counter() - start
    ratings = np.array([r for _, _, r in results])
    clues = np.array([(q > 0).sum() for q, _, _ in results])
    print(f"{args.puzzles} puzzles in {elapsed:.0f} s with {args.workers} processes "
          f"({args.puzzles / elapsed:.2f} puzzles/s); clues {clues.mean():.1f} on average")
    print(f"rating mean {ratings.mean():.1f}, median {np.median(ratings):.0f}, max {ratings.max()}")
    for low, high in BUCKETS:
        share = ((ratings >= low) & (ratings <= high)).mean()
        label = f"{low}" if low == high else (f"{low}-{high}" if high < 10**9 else f">{low - 1}")
        print(f"  {label:>7s}  {100 * share:5.1f}%  {'#' * int(round(60 * share))}")


if __name__ == "__main__":
    main()
