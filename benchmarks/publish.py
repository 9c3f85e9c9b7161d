"""Publish a sweep's rows into the committed leaderboard records, a row from one commit only.

    python -m reasonbench_benchmarks.publish SWEEP_OUT [--into leaderboard/results] [--commit f95ce76]

A row is what the leaderboard shows as one: a model x task x preset folder's records of one mode
(training runs ``seed<N>.json``; evaluations such as ``seed<N>.eval.json``, the "at 8 steps" track).
Every row under SWEEP_OUT must come from one clean commit (``provenance.git_commit``, ``git_dirty``
false), one CPU model and one set of settings beyond the preset (read from the records' commands, as
the leaderboard keeps such runs apart), or nothing is published (exit 2, the first offending file
named). A published row replaces the row in --into whole: its old records go, so a row never mixes
commits, data, machines or settings. Rows of --into that SWEEP_OUT lacks (another mode of the same
folder included) stay as they are. All records are read and checked before anything in --into
changes."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from reasonbench.atomic import write_atomic
from reasonbench.errors import UserError
from reasonbench.leaderboard.records import settings_text
from reasonbench.record import read_record

RECORD_GLOB = "seed*.json"
Row = tuple[Path, str]  # (model/task/preset folder, relative; mode)


def _mode(path: Path) -> str:
    """``seed0.json`` -> train, ``seed0.eval.json`` -> eval."""
    parts = path.name.split(".")
    return parts[1] if len(parts) == 3 else "train"


def _rows(source: Path) -> dict[Row, list[Path]]:
    rows: dict[Row, list[Path]] = defaultdict(list)
    for path in sorted(source.glob(f"*/*/*/{RECORD_GLOB}")):
        rows[(path.parent.relative_to(source), _mode(path))].append(path)
    return dict(rows)


def _origin(record: dict, path: Path, commit: str | None) -> tuple[str, str, str]:
    """(commit, CPU model, settings given beyond the preset): a row's records share all three."""
    provenance = record["provenance"]
    made_at = provenance.get("git_commit")
    if not made_at or provenance.get("git_dirty") is not False:
        raise UserError(f"{path}: not made from a clean commit (git_commit {made_at}, git_dirty {provenance.get('git_dirty')})")
    if commit and not made_at.startswith(commit):
        raise UserError(f"{path}: made at {made_at[:10]}, not at --commit {commit}")
    return made_at, (provenance.get("cpu") or {}).get("model") or "?", settings_text(record)


def checked_rows(source: Path, commit: str | None = None) -> dict[Row, list[tuple[Path, str]]]:
    """Every row of ``source`` with its files and their text, checked: valid records, one clean
    commit and one CPU model per row. Raises UserError naming the first file that breaks a rule."""
    rows = _rows(source)
    if not rows:
        raise UserError(f"{source}: no records (<model>/<task>/<preset>/{RECORD_GLOB})")
    checked: dict[Row, list[tuple[Path, str]]] = {}
    for row, paths in rows.items():
        origins = {}
        for path in paths:
            origins[path] = _origin(read_record(path), path, commit)
        first = paths[0]
        for path, origin in origins.items():
            if origin[:2] != origins[first][:2]:
                raise UserError(f"{path}: made at {origin[0][:10]} on {origin[1]}, but {first.name} of the same row "
                                f"at {origins[first][0][:10]} on {origins[first][1]}: a row is one commit on one machine")
            if origin[2] != origins[first][2]:
                raise UserError(f"{path}: run with settings '{origin[2]}', but {first.name} of the same row with "
                                f"'{origins[first][2]}': a row is one set of settings (beyond the preset)")
        checked[row] = [(path, path.read_text()) for path in paths]
    return checked


def publish(source: Path, into: Path, commit: str | None = None) -> list[str]:
    """Replace each of ``source``'s rows in ``into``; one line per row saying what changed."""
    rows = checked_rows(source, commit)
    lines = []
    for (row, mode), files in rows.items():
        folder = into / row
        old = [p for p in sorted(folder.glob(RECORD_GLOB)) if _mode(p) == mode] if folder.is_dir() else []
        new_names = {path.name for path, _ in files}
        for path, text in files:
            write_atomic(folder / path.name, text)
        for path in old:
            if path.name not in new_names:
                path.unlink()
        commit_made = read_record(folder / files[0][0].name)["provenance"]["git_commit"][:10]
        lines.append(f"{row} ({mode}): {len(files)} records from {commit_made} (replacing {len(old)})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.publish", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a sweep's --out folder")
    parser.add_argument("--into", type=Path, default=Path("leaderboard/results"), help="the published records")
    parser.add_argument("--commit", help="require every record to be made at this commit (a prefix)")
    args = parser.parse_args(argv)
    try:
        lines = publish(args.source, args.into, args.commit)
    except UserError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
