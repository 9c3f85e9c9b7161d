"""Maze-Hard generation speed: time to generate hard mazes (1,000 30x30 with a shortest path
over 110 steps by default), candidates examined per second and acceptance rates.

Prints figures, never pass/fail. Run: python -m reasonbench_benchmarks.maze_generation
"""

from __future__ import annotations

import argparse

import numpy as np

from reasonbench.tasks.maze.generate import generate_mazes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.maze_generation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="mazes to generate")
    parser.add_argument("--size", type=int, default=30, help="side of the square maze")
    parser.add_argument("--min-path-length", type=int, default=110, help="keep paths longer than this (steps)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    mazes = generate_mazes(args.count, args.size, args.min_path_length, seed=args.seed)
    lengths = mazes.path_lengths
    walls = (mazes.questions == 1).mean(axis=1)
    print(f"maze generation: {args.count:,} {args.size}x{args.size} mazes, shortest path > "
          f"{args.min_path_length} steps, seed {args.seed}")
    print(f"  time                  {mazes.seconds:8.1f} s  ({args.count / mazes.seconds:,.1f} mazes/s)")
    print(f"  candidates            {mazes.candidates:,}  ({mazes.candidates / mazes.seconds:,.0f}/s)")
    print(f"  acceptance            {mazes.acceptance:.3e}  (goal drawn among the cells far enough)")
    print(f"  reference acceptance  {mazes.reference_acceptance:.3e}  (goal drawn among all open cells: "
          f"~{args.count / max(mazes.reference_acceptance, 1e-12):,.0f} candidates needed)")
    print(f"  path length (steps)   min {lengths.min()}  median {np.median(lengths):.0f}  max {lengths.max()}")
    print(f"  wall fraction         min {walls.min():.2f}  median {np.median(walls):.2f}  max {walls.max():.2f}")


if __name__ == "__main__":
    main()
