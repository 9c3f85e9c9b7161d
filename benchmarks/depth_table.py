"""The README's reasoning-depth table, computed from evaluation records beyond the trained depth.

    python -m reasonbench_benchmarks.depth_table [leaderboard/results] [--preset mini] [--steps 1,2,4,8]
        [--readme README.md]

One line per model x task over its ``seed<N>.eval.json`` records (``make depth``): exact accuracy
after each listed step (``metrics.by_step.exact``), the last one as mean +- std over seeds; the state's
relative change at the trained depth and the last step (``by_step.residual``); the same exact accuracy
on the out-of-distribution split; the accuracy where the halting head stops ("halted right"); the
evaluation's seconds; the seeds and the commits they were made at. Every figure is a mean over the
row's seeds, in percent where it is an accuracy. ``--readme FILE`` writes the table into FILE between
its lines ``<!-- begin generated depth table ...`` and ``<!-- end of generated depth table -->``
instead of printing it. Exit 2 with the file named when a record is invalid or there is none, or
the README lacks its markers (nothing written)."""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from reasonbench.util.atomic import atomic_writer
from reasonbench.util.errors import UserError
from reasonbench.leaderboard.pages import embed_in_readme
from reasonbench.record.schema import read_record

README_BEGIN = "<!-- begin generated depth table"
README_END = "<!-- end of generated depth table -->"


def _mean(values: list[float | None]) -> float | None:
    """The mean over seeds; None unless every seed has the figure."""
    return statistics.fmean(values) if values and None not in values else None


def _at(curve: list[float] | None, step: int | None) -> float | None:
    """A per-step curve's value after ``step`` (1-based); None past its end or without a step."""
    return curve[step - 1] if curve and step is not None and step <= len(curve) else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _residual(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def depth_rows(results: Path, preset: str = "mini") -> dict[tuple[str, str], list[dict]]:
    """The evaluation records under ``results`` by (model, task), each list in seed order."""
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(results.glob(f"*/*/{preset}/seed*.eval.json")):
        record = read_record(path)
        rows[(record["model"], record["task"])].append(record)
    if not rows:
        raise UserError(f"{results}: no evaluation records (<model>/<task>/{preset}/seed<N>.eval.json)")
    return {key: sorted(records, key=lambda r: r["seed"]) for key, records in sorted(rows.items())}


def table(rows: dict[tuple[str, str], list[dict]], steps: list[int]) -> str:
    """The Markdown table: a header and one line per (model, task)."""
    last = steps[-1]
    header = (["model / task", "seeds"] + [f"step {s}" if i == 0 else str(s) for i, s in enumerate(steps[:-1])]
              + [f"{last} (mean ± std)", "residual trained / last"] + [f"OOD step {s}" if i == 0 else f"OOD {s}"
                                                                        for i, s in enumerate(steps)]
              + ["halted right", "eval s (test + OOD)", "commit"])
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(steps) + "---|" + "---:|" * len(steps)
             + "---:|---:|---|"]
    for (model, task), records in rows.items():
        metrics = [r["metrics"] for r in records]
        finals = [_at(m["by_step"]["exact"], last) for m in metrics]
        exact = [_mean([_at(m["by_step"]["exact"], s) for m in metrics]) for s in steps[:-1]] + [_mean(finals)]
        final = _percent(exact[-1])
        if exact[-1] is not None and len(finals) > 1:
            final += f" ± {100 * statistics.stdev(finals):.1f}"
        trained = records[0]["provenance"]["config"]["model"].get("halt_max_steps")
        residual = [_mean([_at(m["by_step"].get("residual"), s) for m in metrics]) for s in (trained, last)]
        ood = [_mean([_at((m.get("ood") or {}).get("by_step", {}).get("exact"), s) for m in metrics]) for s in steps]
        commits = sorted({r["provenance"]["git_commit"][:7] for r in records})
        cells = ([f"{model} / {task}", str(len(records))] + [_percent(v) for v in exact[:-1]] + [final]
                 + [" / ".join(_residual(v) for v in residual)] + [_percent(v) for v in ood]
                 + [_percent(_mean([m.get("halted_exact_accuracy") for m in metrics])),
                    f"{_mean([r['cost']['eval_seconds'] for r in records]):.0f}", ", ".join(commits)])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.depth_table",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path("leaderboard/results"),
                        help="a folder of <model>/<task>/<preset>/seed<N>.eval.json records")
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--steps", default="1,2,4,8", help="the steps to show, comma-separated, ascending")
    parser.add_argument("--readme", type=Path, help="write the table into this Markdown file between its markers")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        steps = []
    if not steps or steps != sorted(set(steps)) or steps[0] < 1:
        print(f"depth_table: --steps {args.steps!r}: want ascending positive integers, e.g. 1,2,4,8",
              file=sys.stderr)
        return 2
    try:
        text = table(depth_rows(args.results, args.preset), steps) + "\n"
        if args.readme is None:
            print(text, end="")
            return 0
        try:
            readme = args.readme.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--readme {args.readme}: cannot read: {exc.strerror}") from None
        embedded = embed_in_readme(readme, text, str(args.readme), README_BEGIN, README_END)
        with atomic_writer(args.readme) as handle:
            handle.write(embedded.encode())
    except UserError as exc:
        print(f"depth_table: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
