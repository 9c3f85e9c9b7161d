"""Leaderboard build speed: time to build the site (`reasonbench leaderboard`, a fresh process,
imports included) from 10,000 result records by default, made by copying the committed fixture
records under new model names and seeds, with varied accuracies.

Prints figures, never pass/fail. Run: python -m reasonbench_benchmarks.leaderboard_build
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reasonbench.stats import wilson_interval

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "leaderboard"


def make_records(fixtures: Path, out: Path, count: int, seeds: int = 5) -> int:
    """Write ``count`` records under ``out``: fixture record i % k as model "<model>-<variant>"
    with seed (i // k) % seeds and a random exact accuracy. Returns the number of rows to expect."""
    sources = [json.loads(p.read_text()) for p in sorted(fixtures.rglob("*.json"))]
    sources = [s for s in sources if s["preset"] != "smoke" and s["status"] == "completed"]
    rng = random.Random(0)
    rows = set()
    for i in range(count):
        record = dict(sources[i % len(sources)])
        variant, seed = divmod(i // len(sources), seeds)
        n = record["metrics"]["n_test_examples"]
        correct = rng.randint(0, n)
        # a consistent record: the leaderboard skips one whose interval misses its accuracy
        record["metrics"] = {**record["metrics"], "exact_correct": correct, "exact_accuracy": correct / n,
                             "exact_accuracy_ci95": list(wilson_interval(correct, n))}
        record.update(model=f"{record['model']}-{variant:04d}", seed=seed)
        path = out / record["model"] / record["task"] / record["preset"] / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
        rows.add((record["model"], record["task"], record["preset"]))
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.leaderboard_build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records to build from")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="records to copy")
    parser.add_argument("--repeats", type=int, default=3, help="builds to time (the best is reported)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        results, site = Path(tmp) / "results", Path(tmp) / "site"
        expected = make_records(args.fixtures, results, args.records)
        size = sum(p.stat().st_size for p in results.rglob("*.json"))
        times, cpu = [], []
        for _ in range(args.repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "reasonbench", "leaderboard", "--results", str(results),
                                   "--out", str(site)], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                sys.exit(f"build failed: {done.stderr.strip()}")
        # the same build in this process, by phase
        from reasonbench import leaderboard

        start = time.perf_counter()
        records, _ = leaderboard.collect(results)
        read = time.perf_counter() - start
        rows = leaderboard.aggregate(records)
        aggregated = time.perf_counter() - start - read
        leaderboard.build(results, Path(tmp) / "site2")
        whole = time.perf_counter() - start - read - aggregated
        site_size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())

    print(f"leaderboard build: {args.records:,} records ({size / 2**20:.1f} MiB) -> {len(rows):,} rows "
          f"(expected {expected:,}), {os.cpu_count()} CPUs")
    best = times.index(min(times))
    print(f"  whole command         {times[best]:6.2f} s best of {len(times)} "
          f"({', '.join(f'{t:.2f}' for t in times)}; fresh process, imports included)")
    print(f"  its CPU time          {cpu[best]:6.2f} s  (user + system of the build and of its picture process, "
          f"which imports torch and the tasks meanwhile)")
    print(f"  read and validate     {read:6.2f} s  ({args.records / read:,.0f} records/s)")
    print(f"  aggregate             {aggregated:6.2f} s")
    print(f"  whole build again     {whole:6.2f} s  (in process: read, validate, plots, pictures, pages)")
    print(f"  site                  {site_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
