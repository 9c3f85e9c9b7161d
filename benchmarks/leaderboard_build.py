"""Leaderboard build speed: time to build the site (`reasonbench leaderboard`, a fresh process,
imports included) from 10,000 result records by default, made by copying the committed fixture
records under new model names and seeds, with varied accuracies.

``--rows 300,1000,3000``: how the build grows with the board instead: for each count, that many
rows spread over 30 tracks (3 tasks x 10 presets, each preset a track of its own), 3 seeds a
row, made from the committed leaderboard records (curves, difficulty buckets, per-example
outcomes, pictures: a record of the whole field), each with a random count of right answers;
printed: build time (a fresh process), the site's size and leaderboard.json's.

Prints figures, never pass/fail. Run: python -m reasonbench_benchmarks.leaderboard_build
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reasonbench.record.stats import wilson_interval

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "leaderboard"
COMMITTED = Path(__file__).resolve().parent.parent / "leaderboard" / "results"


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


def _outcomes(n: int, correct: int, rng: random.Random) -> dict:
    """Per-example outcomes with ``correct`` of ``n`` right, as records store them."""
    right = set(rng.sample(range(n), correct))
    bits = bytearray(-(-n // 8))
    for i in right:
        bits[i // 8] |= 0x80 >> (i % 8)
    return {"encoding": "bits-base64", "n": n, "data": base64.b64encode(bytes(bits)).decode("ascii")}


def with_correct(record: dict, correct: int, rng: random.Random) -> dict:
    """``record`` with ``correct`` right answers, everything that counts them kept consistent."""
    metrics = dict(record["metrics"])
    n = metrics["n_test_examples"]
    metrics.update(exact_correct=correct, exact_accuracy=correct / n, exact_accuracy_ci95=list(wilson_interval(correct, n)))
    if isinstance(metrics.get("exact_by_example"), dict):
        metrics["exact_by_example"] = _outcomes(n, correct, rng)
    if isinstance(metrics.get("by_difficulty"), dict):
        buckets = [dict(b, exact_correct=b["n_test_examples"] * correct // n) for b in metrics["by_difficulty"]["buckets"]]
        for b in buckets:
            b["exact_accuracy"] = b["exact_correct"] / b["n_test_examples"] if b["n_test_examples"] else None
        metrics["by_difficulty"] = {**metrics["by_difficulty"], "buckets": buckets}
    return {**record, "metrics": metrics}


def make_board(sources_folder: Path, out: Path, rows: int, tracks_per_task: int = 10, seeds: int = 3) -> int:
    """Write ``rows`` rows of ``seeds`` records each under ``out``: row i is task i % 3 (of the
    tasks the sources have), preset "p<k>" (a track of its own), a source record of that task
    under a new model name. Returns the number of records."""
    sources: dict[str, list[dict]] = {}
    for path in sorted(sources_folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if record.get("preset") not in (None, "smoke") and record.get("status") == "completed" \
                and record.get("mode") == "train":
            sources.setdefault(record["task"], []).append(record)
    tasks = sorted(sources)
    rng = random.Random(0)
    written = 0
    for i in range(rows):
        task = tasks[i % len(tasks)]
        source = sources[task][(i // len(tasks)) % len(sources[task])]
        preset = f"p{(i // len(tasks)) % tracks_per_task}"
        model = f"{source['model']}-{i:05d}"
        centre = rng.random()  # each row its own level, each seed near it
        for seed in range(seeds):
            n = source["metrics"]["n_test_examples"]
            correct = min(n, max(0, round(n * (centre + rng.uniform(-0.05, 0.05)))))
            record = with_correct(source, correct, rng)
            record.update(model=model, preset=preset, seed=seed)
            path = out / model / task / preset / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            written += 1
    return written


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def growth(counts: list[int], sources: Path) -> None:
    """Build time and size of boards of ``counts`` rows (30 tracks, 3 seeds a row)."""
    print(f"leaderboard growth: rows over 30 tracks, 3 seeds a row, from {sources}; {os.cpu_count()} CPUs")
    print(f"  {'rows':>6} {'records':>8} {'build s':>8} {'CPU s':>7} {'site MiB':>9} {'json MiB':>9} {'files':>6}"
          "   (CPU s: user + system of the build and its picture process; on a busy machine the wall time "
          "grows, this less)")
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            results, site = Path(tmp) / "results", Path(tmp) / "site"
            records = make_board(sources, results, count)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "reasonbench", "leaderboard", "--results", str(results),
                                   "--out", str(site), "--reported", "none"], capture_output=True, text=True)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            if done.returncode != 0:
                sys.exit(f"build of {count} rows failed: {done.stderr.strip()[-500:]}")
            files = sum(1 for p in site.rglob("*") if p.is_file())
            print(f"  {count:>6,} {records:>8,} {seconds:>8.1f} {cpu:>7.1f} {_size(site) / 2**20:>9.1f} "
                  f"{(site / 'leaderboard.json').stat().st_size / 2**20:>9.1f} {files:>6,}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.leaderboard_build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="records to build from")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="records to copy")
    parser.add_argument("--repeats", type=int, default=3, help="builds to time (the best is reported)")
    parser.add_argument("--rows", type=str, default=None,
                        help="instead: comma-separated row counts (e.g. 300,1000,3000), each a board of 30 tracks")
    parser.add_argument("--sources", type=Path, default=COMMITTED, help="records to copy for --rows")
    args = parser.parse_args(argv)
    if args.rows:
        try:
            counts = [int(c) for c in args.rows.split(",")]
        except ValueError:
            parser.error(f"--rows {args.rows}: comma-separated whole numbers expected")
        if any(c < 1 for c in counts):
            parser.error(f"--rows {args.rows}: counts of at least 1 expected")
        growth(counts, args.sources)
        return

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
