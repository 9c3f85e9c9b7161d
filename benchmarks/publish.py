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
changes. Each record is read as the leaderboard reads one (a regular file, size and depth capped,
strict JSON, the record schema, consistent counts) and must say what its place says (model, task,
preset, seed and mode): publish refuses what the leaderboard would skip. The machine's output
folder the runs wrote to (``provenance.config.out``, when absolute) is written as ``results``
wherever the record names it (its command, config, checkpoint), so a published record says where
its files lie in the standard layout, not on the machine that made it."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from reasonbench.util.atomic import MACHINE_ERRNOS, write_atomic
from reasonbench.util.errors import MachineError, UserError
from reasonbench.leaderboard.load import parse_untrusted, read_untrusted
from reasonbench.leaderboard.tracks import settings_text
from reasonbench.record.schema import record_path
from reasonbench.util.untrusted import InvalidJSON, printable

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


def read_checked(path: Path, source: Path) -> tuple[dict, str]:
    """(record, its text) of the file at ``path`` under ``source``, as the leaderboard would take
    it, its content agreeing with its place; a one-line UserError (MachineError for a fault of
    the disk) naming the file otherwise."""
    where = printable(path)
    try:
        data = read_untrusted(path)
        record = parse_untrusted(data, str(path))
    except UserError as exc:  # the schema's message names the file already
        raise UserError(printable(exc, 500)) from None
    except InvalidJSON as exc:
        raise UserError(f"{where}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise UserError(f"{where}: {printable(exc)}") from None
    except OSError as exc:
        kind = MachineError if exc.errno in MACHINE_ERRNOS else UserError
        raise kind(f"{where}: cannot read: {exc.strerror or printable(exc)}") from None
    place = record_path(source, record["model"], record["task"], record["preset"], record["seed"], record["mode"])
    if place != path:
        raise UserError(f"{where}: holds {printable(record['model'], 60)}/{printable(record['task'], 60)}/"
                        f"{printable(record['preset'], 60)} seed {record['seed']} ({printable(record['mode'], 20)}), "
                        f"which belongs at {printable(place.relative_to(source))}")
    return record, data.decode("utf-8")


def portable(record: dict, text: str) -> str:
    """``text`` (the record's JSON) with its absolute output folder written as ``results``."""
    out = (record["provenance"].get("config") or {}).get("out")
    if not isinstance(out, str) or not out.startswith("/") or out.rstrip("/") in ("", "results"):
        return text
    return text.replace(json.dumps(out.rstrip("/"))[1:-1], "results")


def _origin(record: dict, path: Path, commit: str | None) -> tuple[str, str, str]:
    """(commit, CPU model, settings given beyond the preset): a row's records share all three."""
    provenance = record["provenance"]
    made_at = provenance.get("git_commit")
    if not made_at or provenance.get("git_dirty") is not False:
        raise UserError(f"{printable(path)}: not made from a clean commit (git_commit {printable(made_at)}, "
                        f"git_dirty {provenance.get('git_dirty')})")
    if commit and not made_at.startswith(commit):
        raise UserError(f"{printable(path)}: made at {printable(made_at[:10])}, not at --commit {printable(commit)}")
    return made_at, (provenance.get("cpu") or {}).get("model") or "?", settings_text(record)


def checked_rows(source: Path, commit: str | None = None) -> dict[Row, list[tuple[Path, str]]]:
    """Every row of ``source`` with its files and their text, checked: valid records, one clean
    commit and one CPU model per row. Raises UserError naming the first file that breaks a rule."""
    rows = _rows(source)
    if not rows:
        raise UserError(f"{source}: no records (<model>/<task>/<preset>/{RECORD_GLOB})")
    checked: dict[Row, list[tuple[Path, str]]] = {}
    for row, paths in rows.items():
        origins, texts = {}, {}
        for path in paths:
            record, text = read_checked(path, source)
            texts[path] = portable(record, text)
            parse_untrusted(texts[path].encode(), str(path))  # still a valid record
            origins[path] = _origin(record, path, commit)
        first = paths[0]
        for path, origin in origins.items():
            if origin[:2] != origins[first][:2]:
                raise UserError(printable(
                    f"{path}: made at {origin[0][:10]} on {origin[1]}, but {first.name} of the same row "
                    f"at {origins[first][0][:10]} on {origins[first][1]}: a row is one commit on one machine", 500))
            if origin[2] != origins[first][2]:
                raise UserError(printable(
                    f"{path}: run with settings '{origin[2]}', but {first.name} of the same row with "
                    f"'{origins[first][2]}': a row is one set of settings (beyond the preset)", 500))
        checked[row] = [(path, texts[path]) for path in paths]
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
        commit_made = json.loads(files[0][1])["provenance"]["git_commit"][:10]
        lines.append(printable(f"{row} ({mode}): {len(files)} records from {commit_made} (replacing {len(old)})", 500))
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
        print(f"publish: {printable(exc, 500)}", file=sys.stderr)
        return 2
    except MachineError as exc:
        print(f"publish: {printable(exc, 500)}", file=sys.stderr)
        return 1
    except OSError as exc:  # writing into --into
        kind = 1 if exc.errno in MACHINE_ERRNOS else 2
        print(f"publish: --into {printable(args.into)}: cannot write: {exc.strerror or printable(exc)}", file=sys.stderr)
        return kind
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
