"""The README's two generated tables, computed from the committed result records: the mini
track's ranking per task (as the leaderboard ranks it) and each model's measured training time
on the mini preset.

    python -m reasonbench_benchmarks.readme_summary [leaderboard/results] [--readme README.md]

The ranking rows are the leaderboard's own (``reasonbench.leaderboard.rank.aggregate``): rank
range, headline figure (exact accuracy; ARC: pass@2) as mean +- std over seeds, the 95% interval
the rank is decided on, seeds and parameters. The times are the mean training seconds over each
row's seeds (``cost.train_seconds``, validation included, data build and test pass not), with the
CPU models and torch thread counts the records name. ``--readme FILE`` writes both between FILE's
lines ``<!-- begin generated summary ...`` and ``<!-- end of generated summary -->`` instead of
printing them. Exit 2 with the file named when a record is invalid or there is none, or the README
lacks its markers (nothing written)."""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from reasonbench.util.atomic import atomic_writer
from reasonbench.util.errors import UserError
from reasonbench.leaderboard.load import collect
from reasonbench.leaderboard.rank import aggregate
from reasonbench.leaderboard.tracks import command_settings
from reasonbench.leaderboard.pages import embed_in_readme

README_BEGIN = "<!-- begin generated summary"
README_END = "<!-- end of generated summary -->"
TRACK = "mini"
TASKS = ("sudoku", "maze", "arc")


def _rank(row: dict[str, Any]) -> str:
    if not row.get("rank"):
        return "-"
    best, worst = row["rank"]
    return str(best) if best == worst else f"{best}-{worst}"


def _headline(row: dict[str, Any], by_file: dict[str, dict[str, Any]]) -> str:
    """The row's headline as mean +- std over its seeds, in percent."""
    key = row.get("headline") or "exact_accuracy"
    values = [by_file[f]["metrics"][key] for f in row["files"] if by_file[f]["status"] == "completed"]
    if not values:
        return "-"
    std = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{100 * statistics.fmean(values):.1f}{std}"


def _commit(row: dict[str, Any]) -> str:
    commits = row.get("git_commits") or []
    return f"`{commits[0][:7]}`" if len(commits) == 1 else f"{len(commits)} commits"


def _interval(row: dict[str, Any]) -> str:
    interval = row.get("rank_interval")
    return "-" if not interval else f"{100 * interval[0]:.1f}-{100 * interval[1]:.1f}"


def ranking(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    """Per task, the mini track's rows in rank order, one table."""
    by_file = {r["_file"]: r for r in records}
    lines = ["| task | rank | model | % (mean ± std over seeds) | 95% interval | seeds | parameters | commit |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for task in TASKS:
        track = [r for r in rows if r["task"] == task and r["track"].split(" (")[0] == TRACK
                 and " at " not in r["track"] and "partial" not in r["track"] and r["mode"] == "train"
                 and not r.get("settings")]
        for row in sorted(track, key=lambda r: (r["rank"][0] if r.get("rank") else 10**9,
                                                -(r.get("headline_mean") or 0), r["model"])):
            what = "pass@2" if row.get("headline") == "pass@2" else "exact"
            lines.append(f"| {task} ({what}) | {_rank(row)} | `{row['model']}` | {_headline(row, by_file)} | {_interval(row)} | "
                         f"{len(row['seeds'])} | {row['params']:,} | {_commit(row)} |")
    return "\n".join(lines)


def training_times(records: list[dict[str, Any]]) -> str:
    """Mean training seconds per model (rows) and task (columns) on the mini preset, and the
    machines they were measured on."""
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    machines: set[str] = set()
    for record in records:
        if record["preset"] != TRACK or record["mode"] != "train" or record["status"] != "completed":
            continue
        if command_settings(record):
            continue
        seconds[(record["model"], record["task"])].append(record["cost"]["train_seconds"])
        cpu = record["provenance"].get("cpu") or {}
        machines.add(f"{cpu.get('model', record['cost']['device'])}, {cpu.get('threads', '?')} torch thread(s)")
    models = sorted({model for model, _ in seconds})
    lines = ["| model | " + " | ".join(TASKS) + " |", "|---|" + "---:|" * len(TASKS)]
    for model in models:
        cells = []
        for task in TASKS:
            values = seconds.get((model, task))
            cells.append(f"{statistics.fmean(values) / 60:.0f} min" if values else "-")
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Measured on: {'; '.join(sorted(machines))}.")
    return "\n".join(lines)


def summary(results: Path) -> str:
    records, skipped = collect(results)
    if skipped:
        first = skipped[0]
        raise UserError(f"{results / first.file}: {first.reason}")
    if not records:
        raise UserError(f"{results}: no result records")
    rows = aggregate(records)
    return (ranking(rows, records) + "\n\nTraining time per run on the mini preset (mean over seeds; two runs shared the "
            "machine's two cores, one torch thread each, often beside other work):\n\n" + training_times(records))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.readme_summary",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path("leaderboard/results"))
    parser.add_argument("--readme", type=Path, help="write the tables into this file between its markers")
    args = parser.parse_args(argv)
    try:
        text = summary(args.results)
        if args.readme is None:
            print(text)
            return 0
        try:
            current = args.readme.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--readme {args.readme}: cannot read it ({exc.strerror or exc})") from None
        updated = embed_in_readme(current, text + "\n", str(args.readme), README_BEGIN, README_END)
        with atomic_writer(args.readme) as handle:
            handle.write(updated.encode())
    except UserError as exc:
        print(f"readme_summary: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the summary into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
