"""Records -> the leaderboard: ``leaderboard.json``, ``leaderboard.md`` and a static site
(``index.html``, one page per task, SVG plots, puzzle pictures, each row's config) that works
offline from file://.

Rows are per task, track, model, preset and mode, seeds aggregated. Tracks: ``mini``, ``budget``,
``paper`` (presets paper and tiny); any other preset is listed as a track of its own name, smoke
runs never (see ``records.track``). Records are untrusted: invalid ones are skipped with a reason
and the site is built from the rest. The papers' figures (``leaderboard/reported.yaml``) are
shown apart, marked "reported (paper)".
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sys
from multiprocessing.pool import Pool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..record import write_atomic
from . import pages, plots
from .records import Skipped, accuracy, aggregate, collect, pareto_front, track  # noqa: F401
from .reported import DEFAULT_REPORTED, load_reported

__all__ = ["Site", "build", "collect", "aggregate", "pareto_front", "track", "load_reported", "DEFAULT_REPORTED"]


@dataclass
class Site:
    """What a build wrote and left out."""

    rows: list[dict[str, Any]]
    reported: list[dict[str, Any]]
    records: int  # usable records read
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # parts of pages that could not be drawn


def web_json(value: Any) -> str:
    """Indented JSON with <, > and & written as \\u escapes (the same data): a record's text can
    never read as markup, even to a browser that sniffs the file's type."""
    text = json.dumps(value, indent=2, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _write_configs(rows: list[dict[str, Any]], records: dict[str, dict[str, Any]], out: Path) -> None:
    """Each row's resolved config (its first seed's) as configs/<content hash>.json."""
    (out / "configs").mkdir(exist_ok=True)
    written: set[str] = set()
    for row in rows:
        config = records[row["files"][0]]["provenance"]["config"]
        compact = json.dumps(config, sort_keys=True)  # C encoder: rows often share one config
        name = f"configs/{hashlib.sha256(compact.encode()).hexdigest()[:16]}.json"
        if name not in written:
            (out / name).write_text(web_json(config))
            written.add(name)
        row["config"] = name


def _write_plots(task: str, rows: list[dict[str, Any]], out: Path) -> dict[str, list[tuple[str, str]]]:
    plotted: dict[str, list[tuple[str, str]]] = {}
    for track_name in dict.fromkeys(r["track"] for r in rows):
        track_rows = [r for r in rows if r["track"] == track_name]
        for key, label, suffix in plots.COST_AXES:
            svg = plots.accuracy_plot(track_rows, key, label, f"{task}, {track_name} track")
            if svg is None:
                continue
            name = f"plots/{pages.slug(task)}-{pages.slug(track_name)}-{suffix}.svg"
            (out / name).write_text(svg)
            plotted.setdefault(track_name, []).append((name, f"{task}, {track_name} track: exact accuracy against {label}"))
        # rows arrive best first: the charts keep the leading ones
        for draw, suffix, what in ((plots.depth_plot, "depth", "exact accuracy after each reasoning step"),
                                   (plots.ood_depth_plot, "ood-depth",
                                    "exact accuracy per reasoning step, OOD split"),
                                   (plots.difficulty_plot, "difficulty", "exact accuracy per difficulty bucket")):
            svg = draw(track_rows, f"{task}, {track_name} track: {what}")
            if svg is not None:
                name = f"plots/{pages.slug(task)}-{pages.slug(track_name)}-{suffix}.svg"
                (out / name).write_text(svg)
                plotted.setdefault(track_name, []).append((name, f"{task}, {track_name} track: {what}"))
    return plotted


def _write_pictures(task: str, rows: list[dict[str, Any]], records: dict[str, dict[str, Any]], out: Path,
                    warnings: list[str], drawer: Pool | None) -> list[tuple[str, str]]:
    """A solved and a failed example from the best row's best record that carries examples."""
    for row in sorted(rows, key=lambda r: -accuracy(r)):
        with_examples = [records[f] for f in row["files"] if records[f].get("examples")]
        if not with_examples:
            continue
        record = max(with_examples, key=lambda r: r["metrics"]["exact_accuracy"] if r["metrics"] else -1)
        pictures = []
        for kind, example in sorted(record["examples"].items(), key=lambda kv: kv[0] != "solved"):
            name = f"pictures/{pages.slug(task)}-{kind}.png"
            try:
                job = (task, record.get("task_metadata") or {}, example)
                (out / name).write_bytes(drawer.apply(plots.puzzle_png, job) if drawer else plots.puzzle_png(*job))
            except ValueError as exc:
                warnings.append(f"{record['_file']}: no {kind} picture: {exc}")
                continue
            pictures.append((name, f"A {kind} test example of {pages.model_label(row)} ({row['track']} track, "
                                   f"seed {record['seed']}): puzzle | prediction (wrong cells marked in red) | answer"))
        return pictures
    return []


def build(results: Path, out: Path, reported: Path | None = DEFAULT_REPORTED) -> Site:
    """Read every record under ``results`` and write the leaderboard under ``out``; ``reported``
    is the papers' figures (None, or a missing default file: none shown)."""
    if reported is None or (reported == DEFAULT_REPORTED and not reported.exists()):
        entries = []
    else:
        entries = load_reported(reported)  # first: a malformed file stops the build before any writing
    # the pictures are drawn by the tasks' own code, which imports torch and Lightning (seconds):
    # a second process imports them while this one reads and validates the records
    # (spawned, not forked: forking a process whose torch threads run is unsafe); where torch is
    # imported already (a Python session, the tests) they are drawn here
    if "torch" in sys.modules:
        return _build(results, out, entries, None)
    drawer = multiprocessing.get_context("spawn").Pool(1)
    drawer.apply_async(plots.import_tasks)  # pictures queue behind it
    try:
        return _build(results, out, entries, drawer)
    finally:
        drawer.terminate()  # done, or still importing for a site without pictures


def _build(results: Path, out: Path, entries: list[dict[str, Any]], drawer: Pool | None) -> Site:
    records, skipped = collect(results)
    rows = aggregate(records)
    by_file = {r["_file"]: r for r in records}
    site = Site(rows, entries, len(records), skipped)
    for folder in ("plots", "pictures"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    _write_configs(rows, by_file, out)
    tasks = sorted({r["task"] for r in rows} | {e["task"] for e in entries})
    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        body = pages.task_body(task, task_rows, [e for e in entries if e["task"] == task],
                               _write_plots(task, task_rows, out),
                               _write_pictures(task, task_rows, by_file, out, site.warnings, drawer))
        (out / pages.task_page(task)).write_text(pages.page(f"reasonbench: {task}", body, tasks))
    index = pages.index_body(rows, entries, tasks, len(records), len(skipped))
    (out / "index.html").write_text(pages.page("reasonbench leaderboard", index, tasks))
    summary = {"records": len(records), "skipped": [vars(s) for s in skipped], "measured": rows, "reported": entries}
    write_atomic(out / "leaderboard.json", web_json(summary))
    write_atomic(out / "leaderboard.md", pages.markdown(rows, entries))
    return site
