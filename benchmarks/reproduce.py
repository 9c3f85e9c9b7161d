"""Re-run one committed leaderboard record and require the same result: the CI check that a
row of the mini track is reproduced, not only built from committed files.

    python -m reasonbench_benchmarks.reproduce leaderboard/results/trm/sudoku/mini/seed0.json

Runs the record's model, task, preset, seed and the settings its command gave beyond the preset into
a temporary folder (the command the record names, its --out replaced) and compares the test split's
exact count, the OOD split's and the data fingerprint. Exit 0 when they agree, 1 when not (both
figures printed). The re-run uses the record's torch thread count (``provenance.cpu.threads``): a
float32 sum split over another number of threads rounds differently, and over 2,000 steps that can
move the count. TRM on Sudoku mini reproduces across CPUs (its data is exact integer work; its
training, float32 on the CPU, has reproduced bit for bit on AVX2 and AVX-512 machines)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from reasonbench.cli import main as reasonbench
from reasonbench.leaderboard.records import command_settings


def compared(record: dict) -> dict:
    metrics = record["metrics"] or {}
    return {"exact_correct": metrics.get("exact_correct"), "n_test_examples": metrics.get("n_test_examples"),
            "ood_exact_correct": (metrics.get("ood") or {}).get("exact_correct"),
            "data_fingerprint": record["provenance"]["data_fingerprint"]}


def _rerun(committed: dict) -> dict | None:
    """The record's run (its preset and the settings its command gave) into a temporary folder;
    the new record, or None when the run failed."""
    with tempfile.TemporaryDirectory() as out:
        code = reasonbench(["run", "--model", committed["model"], "--task", committed["task"], "--preset",
                            committed["preset"], "--seed", str(committed["seed"]), "--out", out,
                            "--trainer.enable_progress_bar", "false",
                            *[word for name, value in command_settings(committed) for word in (f"--{name}", value)]])
        if code != 0:
            print(f"reproduce: the run failed (exit {code})", file=sys.stderr)
            return None
        path = Path(out) / committed["model"] / committed["task"] / committed["preset"] / f"seed{committed['seed']}.json"
        return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a committed record (train mode)")
    args = parser.parse_args(argv)
    committed = json.loads(args.record.read_text())
    threads = (committed["provenance"].get("cpu") or {}).get("threads")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(threads or threads_before))
    try:
        start = time.perf_counter()
        again = _rerun(committed)
        threads_used = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads_before)
    if again is None:
        return 1
    want, got = compared(committed), compared(again)
    print(f"reproduce {args.record}: committed {want}, re-run {got} ({time.perf_counter() - start:.0f} s, "
          f"CPU {again['provenance'].get('cpu', {}).get('model', '?')}, {threads_used} torch threads)")
    if got != want:
        print("reproduce: the re-run differs from the committed record", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
