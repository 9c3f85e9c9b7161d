"""Records -> the leaderboard: ``leaderboard.json``, ``leaderboard.md`` and a static site
(``index.html``, one page per task, SVG plots, puzzle pictures, each row's config) that works
offline from file://.

Rows are per task, track, model, preset, mode and the settings a run was given beyond its preset
(from its command: ``--trainer.max_steps 6000`` makes a row of its own), seeds aggregated. Tracks:
``mini``, ``budget``, ``paper`` (presets paper and tiny); any other preset is listed as a track of
its own name, smoke runs never (see ``tracks.track``). Records are untrusted: unreadable, invalid
and inconsistent ones, and any whose row or charts cannot be drawn, are skipped with a reason and
the site is built from the rest. The papers' figures (``leaderboard/reported.yaml``) are shown
apart, marked "reported (paper)".

The site is built in a temporary folder beside ``out`` and moved into place whole at the end: a
reader sees the old site or the new one, and a failed build leaves the old one as it was. Files
are written 0644 and folders 0755 (less the umask, as ``open`` gives).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from multiprocessing.pool import Pool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reasonbench.util.atomic import current_umask
from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import printable
from reasonbench.leaderboard import pages, plots, testtime_chart
from reasonbench.leaderboard.docs import write_docs
from reasonbench.leaderboard.load import Skipped, collect, consistency_problems, error_line
from reasonbench.leaderboard.rank import accuracy, aggregate, pareto_front, rank_rows, track_verdicts
from reasonbench.leaderboard.reported import DEFAULT_REPORTED, load_reported
from reasonbench.leaderboard.tracks import by_track, track

__all__ = ["Site", "build", "collect", "aggregate", "consistency_problems", "pareto_front", "track",
           "load_reported", "DEFAULT_REPORTED"]


@dataclass
class Site:
    """What a build wrote and left out."""

    rows: list[dict[str, Any]]
    reported: list[dict[str, Any]]
    records: int  # usable records read
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # parts of pages that could not be drawn
    markdown: str = ""  # leaderboard.md's text (what `reasonbench leaderboard --readme` embeds)


def web_json(value: Any) -> str:
    """Indented JSON with <, > and & written as \\u escapes (the same data): a record's text can
    never read as markup, even to a browser that sniffs the file's type."""
    text = json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _config_name(config: dict[str, Any]) -> str:
    compact = json.dumps(config, sort_keys=True)  # C encoder: rows often share one config
    return f"configs/{hashlib.sha256(compact.encode()).hexdigest()[:16]}.json"


def _write_configs(rows: list[dict[str, Any]], configs: dict[str, str], out: Path) -> None:
    """Each row's resolved config (its first seed's) as configs/<content hash>.json; ``configs``:
    the text of each name, made by ``_check_row``."""
    (out / "configs").mkdir(exist_ok=True)
    for name in dict.fromkeys(row["config"] for row in rows):
        (out / name).write_text(configs[name])


class _Dropped(Exception):
    """Rows left out of a chart because drawing them alone fails: (row, exception) pairs."""

    def __init__(self, bad: list[tuple[dict[str, Any], Exception]]) -> None:
        super().__init__(f"{len(bad)} rows cannot be drawn")
        self.bad = bad


def _culprits(draw: Callable[[list[dict[str, Any]]], Any],
              rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Exception]]:
    """The rows that ``draw`` fails on alone, found by halving (a few draws, not one per row)."""
    try:
        draw(rows)
        return []
    except Exception as exc:  # noqa: BLE001
        if len(rows) == 1:
            return [(rows[0], exc)]
    half = len(rows) // 2
    return _culprits(draw, rows[:half]) + _culprits(draw, rows[half:])


def _chart(draw: Callable[[list[dict[str, Any]]], str | None], rows: list[dict[str, Any]],
           what: str, warnings: list[str]) -> str | None:
    """``draw(rows)``; when it fails, _Dropped with the rows it fails on alone, or (none does:
    only the rows together) None and a warning."""
    try:
        return draw(rows)
    except Exception as exc:  # noqa: BLE001 (a record's values; found below, or the chart is left out)
        bad = _culprits(draw, rows) if len(rows) > 1 else [(rows[0], exc)] if rows else []
        if bad:
            raise _Dropped(bad) from None
        warnings.append(f"{what}: chart not drawn: {error_line(exc)}")
        return None


def _draw_plots(task: str, track_name: str, rows: list[dict[str, Any]],
                warnings: list[str]) -> list[tuple[str, str, str]]:
    """(file suffix, caption, SVG text or ``plots.Empty`` sentence) of each chart of one track;
    _Dropped when rows fail."""
    title = f"{task}, {track_name} track"
    charts = []
    evaluations = all(r["mode"] == "eval" for r in rows)
    for key, label, suffix in plots.COST_AXES:
        if key == "device_hours":  # what the hours paid for
            label = f"{label} ({'test' if evaluations else 'training and test'})"
        svg = _chart(lambda rs: plots.accuracy_plot(rs, key, label, title), rows, f"{title}, {suffix}", warnings)
        if svg is not None:
            charts.append((suffix, f"{title}: exact accuracy against {label}", svg))
    # rows arrive best first: the charts keep the leading ones
    for draw, suffix, what in ((plots.depth_plot, "depth", "exact accuracy after each reasoning step"),
                               (plots.ood_depth_plot, "ood-depth", "exact accuracy per reasoning step, OOD split"),
                               (plots.difficulty_plot, "difficulty", "exact accuracy per difficulty bucket")):
        svg = _chart(lambda rs: draw(rs, f"{title}: {what}"), rows, f"{title}, {suffix}", warnings)
        if svg is not None:
            charts.append((suffix, f"{title}: {what}", svg))
    return charts


def _write_plots(task: str, rows: list[dict[str, Any]], out: Path, warnings: list[str],
                 drop: Callable[[dict[str, Any], str], None]) -> dict[str, list[tuple[str | None, str, str]]]:
    """Each track's charts as SVG files, and per track (file name, caption, SVG text) of each
    chart to inline in its page, (None, caption, sentence) of each with nothing to show; a row
    that no chart can be drawn with is dropped (and its track's charts drawn again without it,
    so no chart shows a row the tables leave out)."""
    plotted: dict[str, list[tuple[str | None, str, str]]] = {}
    for (_, track_name), track_rows in by_track(rows).items():
        while True:
            try:
                charts = _draw_plots(task, track_name, track_rows, warnings)
                break
            except _Dropped as dropped:
                for row, exc in dropped.bad:
                    drop(row, f"cannot be drawn: {error_line(exc)}")
                track_rows = [r for r in track_rows if all(r is not b for b, _ in dropped.bad)]
        for suffix, caption, svg in charts:
            if isinstance(svg, plots.Empty):
                plotted.setdefault(track_name, []).append((None, caption, svg))
                continue
            name = f"plots/{pages.slug(task)}-{pages.slug(track_name)}-{suffix}.svg"
            if (out / name).exists():  # another task and track whose names join to the same
                both = hashlib.sha256(json.dumps([task, track_name]).encode()).hexdigest()[:8]
                name = f"plots/{pages.slug(task)}-{pages.slug(track_name)}-{both}-{suffix}.svg"
            (out / name).write_text(svg)
            plotted.setdefault(track_name, []).append((name, caption, svg))
    return plotted


def _write_pictures(task: str, rows: list[dict[str, Any]], records: dict[str, dict[str, Any]], out: Path,
                    warnings: list[str], drawer: "PictureWorker | None") -> list[tuple[str, str]]:
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
                (out / name).write_bytes(drawer.draw(job) if drawer else plots.puzzle_png(*job))
            except PictureWorkerGone as exc:  # killed or hung: its pictures are skipped, the site is built
                warnings.append(f"{printable(record['_file'])}: no {kind} picture: {exc}")
                continue
            except ValueError as exc:
                warnings.append(f"{printable(record['_file'])}: no {kind} picture: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 (a picture is an extra: never worth the site)
                warnings.append(f"{printable(record['_file'])}: no {kind} picture: {error_line(exc)}")
                continue
            pictures.append((name, f"A {kind} test example of {pages.model_label(row)} ({row['track']} track, "
                                   f"seed {record['seed']}): puzzle | prediction (wrong cells outlined in red) | answer"))
        return pictures
    return []


# the longest a picture may take in the worker process, its first one included (which waits for the
# worker's import of torch and the tasks): a killed or hung worker costs the site its pictures, never the build
PICTURE_SECONDS = 300


class PictureWorkerGone(Exception):
    """The picture worker did not answer: its pictures are skipped."""


class PictureWorker:
    """The process that draws the pictures, each answer awaited at most ``timeout`` seconds;
    after one goes unanswered (a killed worker's task never is) no more are asked of it."""

    def __init__(self, pool: Pool, timeout: float = PICTURE_SECONDS) -> None:
        self.pool, self.timeout, self.gone = pool, timeout, False

    def draw(self, job: tuple) -> bytes:
        return self.call(plots.puzzle_png, *job)

    def call(self, function: Any, *args: Any) -> Any:
        """``function(*args)`` in the worker; PictureWorkerGone when no answer comes."""
        if self.gone:
            raise PictureWorkerGone("the picture worker did not answer earlier (skipped)")
        # the pool replaces a worker that dies, but the task it held is never answered: a worker
        # of this moment that is no longer alive means the answer will not come
        workers = [worker for worker in getattr(self.pool, "_pool", []) if worker.is_alive()]
        answer = self.pool.apply_async(function, args)
        deadline = time.monotonic() + self.timeout
        while not answer.ready():
            if any(not worker.is_alive() for worker in workers):
                self.gone = True
                raise PictureWorkerGone("the picture worker process died (skipped)")
            if time.monotonic() > deadline:
                self.gone = True
                raise PictureWorkerGone(f"the picture worker did not answer in {self.timeout:g} s (skipped)")
            answer.wait(0.5)
        return answer.get()


def _destination(results: Path, out: Path) -> Path:
    """The folder the site replaces: ``out`` (the folder a link there points to); a UserError
    when replacing it whole could lose anything but an earlier site."""
    if out.is_symlink():
        out = out.resolve()  # the site goes where the link points; the link stays
    resolved_out, resolved_results = out.resolve(), results.resolve()
    if resolved_results == resolved_out or resolved_out in resolved_results.parents:
        raise UserError(f"--out {out}: holds the results folder {results}; the build replaces the whole folder")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise UserError(f"--out {out}: not a folder")
        if not (out / "leaderboard.json").is_file() and any(out.iterdir()):
            raise UserError(f"--out {out}: a folder that is not a leaderboard site (no leaderboard.json) and not "
                            "empty: the build replaces the whole folder; choose a new or empty one")
    return out


def _move_into_place(staging: Path, out: Path) -> None:
    """``staging`` becomes ``out``; an old ``out`` is set aside first and removed last (put
    back if the move fails)."""
    if not (out.exists() or out.is_symlink()):
        os.rename(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
    os.rename(out, old)  # onto the empty folder mkdtemp made: a name nobody else holds
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def build(results: Path, out: Path, reported: Path | None = DEFAULT_REPORTED,
          ci_reruns: list[str] | tuple[str, ...] = (), docs: Path | None = None) -> Site:
    """Read every record under ``results`` and write the leaderboard under ``out``; ``reported``
    is the papers' figures (None, or a missing default file: none shown). ``out`` is replaced
    whole (it must be a site built before, an empty folder or a new name). ``ci_reruns``: the
    records (paths under ``results``) that the project's CI re-runs and checks, said on their
    tracks; a UserError when one is not a listed record. ``docs``: a folder of Markdown pages
    rendered into the site beside the board (``docs.write_docs``)."""
    if reported is None or (reported == DEFAULT_REPORTED and not reported.exists()):
        entries = []
    else:
        entries = load_reported(reported)  # first: a malformed file stops the build before any writing
    out = _destination(Path(results), Path(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(staging, 0o755 & ~current_umask())  # mkdtemp's is 0700: the site is for reading
        site = _build_with_drawer(Path(results), staging, entries, tuple(ci_reruns), docs)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return site


def _build_with_drawer(results: Path, out: Path, entries: list[dict[str, Any]], ci_reruns: tuple[str, ...],
                       docs: Path | None = None) -> Site:
    # the pictures are drawn by the tasks' own code, which imports torch and Lightning (seconds):
    # a second process imports them while this one reads and validates the records
    # (spawned, not forked: forking a process whose torch threads run is unsafe); where torch is
    # imported already (a Python session, the tests) they are drawn here
    if "torch" in sys.modules:
        return _build(results, out, entries, ci_reruns, None, docs)
    drawer = multiprocessing.get_context("spawn").Pool(1)
    drawer.apply_async(plots.import_tasks)  # pictures queue behind it
    try:
        return _build(results, out, entries, ci_reruns, PictureWorker(drawer), docs)
    finally:
        drawer.terminate()  # done, or still importing for a site without pictures


def _check_row(row: dict[str, Any], records: dict[str, dict[str, Any]], configs: dict[str, str]) -> None:
    """Raise what rendering ``row`` would: its config (its text kept in ``configs`` by name), its
    table row in HTML and Markdown, its JSON."""
    config = records[row["files"][0]]["provenance"]["config"]
    name = _config_name(config)
    if name not in configs:
        configs[name] = web_json(config)
    row["config"] = name
    pages.measured_table([row])
    pages.markdown_row(row)
    web_json(row)


def _mark_ci_reruns(rows: list[dict[str, Any]], records: dict[str, dict[str, Any]], ci_reruns: tuple[str, ...]) -> None:
    """``ci_reruns`` (seeds) on the rows holding the records that the project's CI re-runs."""
    for name in ci_reruns:
        wanted = Path(name).as_posix()
        row = next((r for r in rows if wanted in r["files"]), None)
        if row is None:
            raise UserError(f"--ci-rerun {printable(name)}: not a record on the board (a path under --results "
                            "of a listed record)")
        row.setdefault("ci_reruns", []).append(records[wanted]["seed"])


def _build(results: Path, out: Path, entries: list[dict[str, Any]], ci_reruns: tuple[str, ...],
           drawer: "PictureWorker | None", docs: Path | None = None) -> Site:
    records, skipped = collect(results)
    collected = len(skipped)
    rows = aggregate(records, skipped, results)
    by_file = {r["_file"]: r for r in records}
    dropped: set[int] = set()

    def drop(row: dict[str, Any], reason: str) -> None:
        """Leave ``row`` out; its records are skipped with ``reason``."""
        dropped.add(id(row))
        skipped.extend(Skipped(printable(results / f), printable(reason)) for f in row["files"])

    failures, configs = [], {}
    for row in rows:
        try:
            _check_row(row, by_file, configs)
        except Exception as exc:  # noqa: BLE001 (one row's records; every row failing is a bug, below)
            failures.append((row, exc))
    if failures and len(failures) == len(rows) > 1:
        raise RuntimeError(f"none of the {len(rows)} leaderboard rows can be rendered; "
                           f"the first: {error_line(failures[0][1])}") from failures[0][1]
    for row, exc in failures:
        drop(row, f"cannot be rendered: {error_line(exc)}")
    rows = [r for r in rows if id(r) not in dropped]

    for folder in ("plots", "pictures"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    plotted = {task: _write_plots(task, [r for r in rows if r["task"] == task], out, warnings, drop)
               for task in dict.fromkeys(r["task"] for r in rows)}
    rows = [r for r in rows if id(r) not in dropped]
    rank_rows(rows)  # again, without the rows left out: a dropped row ranks no other
    _mark_ci_reruns(rows, by_file, ci_reruns)
    _write_configs(rows, configs, out)
    tasks = sorted({r["task"] for r in rows} | {e["task"] for e in entries})
    if docs is not None:  # first: a page that cannot be read stops the build before the board is written
        write_docs(Path(docs), out, tasks)
    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        body = pages.task_body(task, task_rows, [e for e in entries if e["task"] == task], plotted.get(task, {}),
                               _write_pictures(task, task_rows, by_file, out, warnings, drawer),
                               testtime_chart.write_chart(task, task_rows, by_file, out, warnings))
        (out / pages.task_page(task)).write_text(pages.page(f"reasonbench: {task}", body, tasks, docs is not None))
    used = len(records) - (len(skipped) - collected)  # less those left out after reading
    index = pages.index_body(rows, entries, tasks, used, len(skipped))
    (out / "index.html").write_text(pages.page("reasonbench leaderboard", index, tasks, docs is not None))
    # the pairs told apart, once per track (indices into "measured"); every other pair is not
    summary = {"records": used, "skipped": [vars(s) for s in skipped], "measured": rows,
               "pairs": track_verdicts(rows), "reported": entries}
    (out / "leaderboard.json").write_text(web_json(summary))
    markdown = pages.markdown(rows, entries)
    (out / "leaderboard.md").write_text(markdown)
    return Site(rows, entries, used, skipped, warnings, markdown)
