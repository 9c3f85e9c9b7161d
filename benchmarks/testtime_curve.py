"""Accuracy against test-time compute: one checkpoint evaluated at every depth x breadth.

    python -m reasonbench_benchmarks.testtime_curve --checkpoint results/trm/sudoku/mini/seed0/final.pt
        [--model trm] [--task sudoku] [--preset mini] [--depths 1,2,4,8,16,32,64] [--breadths 1,4,16]
        [--select vote] [--out testtime] [--threads 1] [--task.num_test 200 ...]

Per breadth, one ``reasonbench eval --eval-depth D1,D2,... --breadth B`` (a subprocess): each test
batch runs once to the largest depth and is read at every listed one, so the whole curve costs what
the deepest evaluation costs. Each (depth, breadth) writes its own record, the one an evaluation at
that depth and breadth alone writes, in ``OUT/breadth<B>/depth<D>/<model>/<task>/<preset>/``; the
table printed after gives per depth and breadth the exact accuracy (with its count), the same on the
out-of-distribution split where the task has one, and the forward FLOPs per example over all
trajectories (the x axis of the curve). Further options (``--task.num_test N``, ``--breadth-noise``,
``--overwrite``, ...) go to every evaluation as they are. Torch runs ``--threads`` threads (1 by
default, so that two curves can run side by side on a small machine). Exit 2 on a bad option, or
with the evaluation's own code and message when one fails; the records of breadths already done stay.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

# options this script sets itself for every evaluation
OWN_OPTIONS = ("--eval-depth", "--max-steps", "--eval_max_steps", "--breadth", "--select", "--out", "--checkpoint")


def positive_list(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4] (ascending, distinct); argparse's error for anything else."""
    try:
        values = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a comma list of positive integers, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"want a comma list of positive integers, got {text!r}")
    return values


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.testtime_curve",
                                     description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--checkpoint", required=True, help="the weights (final.pt, final.safetensors, .ckpt)")
    parser.add_argument("--model", help="the model (default: the checkpoint's)")
    parser.add_argument("--task", help="the task (default: the checkpoint's, with its settings)")
    parser.add_argument("--preset", help="the preset (default: the checkpoint's)")
    parser.add_argument("--depths", type=positive_list, default=[1, 2, 4, 8, 16, 32, 64],
                        help="reasoning depths, read in one pass per breadth (default 1,2,4,8,16,32,64)")
    parser.add_argument("--breadths", type=positive_list, default=[1, 4, 16],
                        help="trajectories per example, one evaluation each (default 1,4,16)")
    parser.add_argument("--select", default="vote", help="the breadth's selection rule: vote, residual, convergence or halt")
    parser.add_argument("--out", type=Path, default=Path("testtime"), help="folder of the records (default testtime)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each evaluation (default 1)")
    args, rest = parser.parse_known_args(argv)
    clash = next((a for a in rest if a.partition("=")[0] in OWN_OPTIONS), None)
    if clash is not None:
        parser.error(f"{clash.partition('=')[0]} is this script's to set (see --depths, --breadths, --select, --out)")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args, rest


def evaluate(args: argparse.Namespace, rest: list[str], breadth: int) -> subprocess.CompletedProcess:
    """One multi-depth evaluation at ``breadth``, in a subprocess of the reasonbench CLI."""
    named = [arg for name in ("model", "task", "preset") if getattr(args, name)
             for arg in (f"--{name}", getattr(args, name))]
    command = [sys.executable, "-m", "reasonbench", "eval", "--checkpoint", args.checkpoint, *named,
               "--eval-depth", ",".join(map(str, args.depths)), "--breadth", str(breadth), "--select", args.select,
               "--out", str(args.out / f"breadth{breadth}"), "--trainer.enable_progress_bar", "false", *rest]
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    return subprocess.run(command, capture_output=True, text=True, env=env)


def rows_of(stdout: str) -> list[dict]:
    """The records an evaluation wrote (its lines ``... record: PATH``), read back."""
    paths = re.findall(r"record: (.+\.json)$", stdout, flags=re.MULTILINE)
    return [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]


def table(records: list[dict]) -> str:
    """depth, breadth, exact accuracy (count), OOD exact accuracy, forward FLOPs per example."""
    lines = [f"{'depth':>5} {'breadth':>7}  {'exact %':>8} {'(correct / n)':>15}  {'OOD exact %':>11}  "
             f"{'forward FLOPs / example':>23}"]
    for record in sorted(records, key=lambda r: (r["test_time_compute"]["breadth"], r["test_time_compute"]["depth"])):
        compute, metrics = record["test_time_compute"], record["metrics"] or {}
        ood = metrics.get("ood") or {}
        ood_text = f"{100 * ood['exact_accuracy']:.2f}" if ood.get("n_test_examples") else "-"
        counted = f"({metrics.get('exact_correct')} / {metrics.get('n_test_examples')})"
        lines.append(f"{compute['depth']:>5} {compute['breadth']:>7}  {100 * metrics.get('exact_accuracy', 0):>8.2f} "
                     f"{counted:>15}  {ood_text:>11}  {record['cost']['flops_per_example_forward']['mean']:>23.4g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, rest = parse(argv)
    records: list[dict] = []
    for breadth in args.breadths:
        result = evaluate(args, rest, breadth)
        if result.returncode != 0:
            if records:  # what the breadths before it measured
                print(table(records), file=sys.stderr)
            print(f"testtime_curve: breadth {breadth}: {result.stderr.strip() or result.stdout.strip()}",
                  file=sys.stderr)
            return result.returncode
        found = rows_of(result.stdout)
        seconds = found[-1]["cost"]["eval_seconds"] if found else 0.0
        print(f"breadth {breadth}: depths {','.join(map(str, args.depths))} in one pass, {seconds:.1f} s",
              file=sys.stderr)
        records += found
    print(f"selection rule: {args.select} (breadth > 1)")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
