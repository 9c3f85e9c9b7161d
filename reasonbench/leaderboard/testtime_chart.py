"""A task's test-time compute chart: accuracy (the task's headline: exact accuracy, ARC's pass@2)
against the forward FLOPs per test example that an evaluation executed over all its trajectories,
one curve per model and preset through its settings of depth (reasoning segments) x breadth
(trajectories) x selection rule, and the Pareto front over every model's points.

A point is one leaderboard row: the seeds of one model at one setting (its accuracy the row's
mean over seeds, its error bar the interval the row's rank is decided on, its FLOPs the mean of
its records' ``cost.flops_per_example_forward``). The rows drawn are those of the test-time
tracks ("<track> at K steps", "<track> at depth D x breadth B (rule)") and the plain rows
(trained depth, breadth 1) of the tracks they were made from."""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonbench.leaderboard import svg
from reasonbench.leaderboard.pages import si, slug
from reasonbench.leaderboard.plots import (BAR_KEY, FRONT_KEY, MAX_LEGEND, RADIUS, RING, Empty, LogAxes,
                                           error_bar, front_line, front_rings, headline_of, label_points,
                                           segment_boxes)
from reasonbench.leaderboard.load import error_line
from reasonbench.leaderboard.rank import pareto_front
from reasonbench.leaderboard.tracks import GENERATED_DATA, PARTIAL_MARK, REAL_DATA, test_time_base
from reasonbench.util.untrusted import printable

X_LABEL = "forward FLOPs per example (all trajectories)"
# one line style per breadth and rule (breadth 1 solid), none like the Pareto front's "4 3"
DASHES = ("", "1.5 2", "7 2 1.5 2", "8 3", "1.5 5", "12 2 1.5 2 1.5 2")
CAPTION = ("Accuracy against the forward FLOPs per test example of the evaluation, all trajectories counted "
           "(log scale): one colour per model, one marker per model and preset; a point is one setting of depth "
           "(reasoning segments) x breadth (trajectories) x selection rule, its accuracy the mean over seeds and its "
           "error bar the 95% interval its rank is decided on (none for one seed: one seed says nothing of the "
           "spread between seeds, and its interval spans every accuracy); points of one breadth and rule are joined in order "
           "of FLOPs (line style: the breadth), so each line shows what more depth buys at that breadth. The plain "
           "evaluations (the trained depth, one trajectory) are points too. The dashed staircase is the Pareto "
           "front over every model (no other point is both cheaper and more accurate), its points ringed.")


@dataclass
class Point:
    """One row drawn: a model's seeds at one test-time setting."""

    row: dict[str, Any]
    depth: int | None  # reasoning segments per trajectory; None: a model without segments
    trained_depth: int | None
    breadth: int
    rule: str | None  # how one trajectory's answer is chosen (breadth > 1), with a noise other than 1
    flops: float  # forward FLOPs per example over all trajectories, mean over the seeds' records
    accuracy: float  # the row's headline mean, in [0, 1]

    @property
    def line(self) -> tuple[int, str | None]:
        return (self.breadth, self.rule)

    def setting(self) -> str:
        depth = "-" if self.depth is None else f"{self.depth}"
        trained = " (trained)" if self.depth is not None and self.depth == self.trained_depth else ""
        return f"depth {depth}{trained} x breadth {self.breadth}" + (f" ({self.rule})" if self.rule else "")


@dataclass
class Curve:
    """One model and preset (and settings beyond it, on one base track): its points by FLOPs."""

    label: str
    model: str
    points: list[Point] = field(default_factory=list)


def base_track(name: str) -> tuple[str, bool]:
    """(the track a test-time track's checkpoints were trained on, True) for a test-time track's
    name, (``name``, False) for any other."""
    base = test_time_base(name)
    return (name, False) if base is None else (base, True)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def setting_of(done: list[dict[str, Any]]) -> tuple[int | None, int | None, int, str | None]:
    """(depth, trained depth, breadth, rule) of a row's completed records (one track: one
    setting), from ``test_time_compute``; a record made before that field: the depth its config
    evaluated at, else the model's trained ``halt_max_steps``, one trajectory."""
    first = done[0]
    config = first["provenance"]["config"]
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    compute = first.get("test_time_compute") if isinstance(first.get("test_time_compute"), dict) else {}
    trained = _int(compute.get("trained_depth")) or _int(model.get("halt_max_steps"))
    depth = _int(compute.get("depth")) or _int(config.get("eval_max_steps")) or trained
    breadth = _int(compute.get("breadth")) or 1
    rule = compute.get("select") if breadth > 1 else None
    noise = compute.get("noise")
    if rule and noise not in (None, 1.0):
        rule = f"{rule}, noise {noise:g}"
    return depth, trained, breadth, rule


def _curve_label(row: dict[str, Any], base: str, several_bases: bool) -> str:
    """The model, its preset where the base track is not named after it, its settings beyond the
    preset, and the base track where the chart has several."""
    named = base.split(PARTIAL_MARK)[0].removesuffix(GENERATED_DATA).removesuffix(REAL_DATA)
    label = row["model"] + ("" if row["preset"] == named else f" ({row['preset']})")
    label += f" [{row['settings']}]" if row.get("settings") else ""
    return label + (f", {base} track" if several_bases else "")


def curves_of(rows: list[dict[str, Any]], records: dict[str, dict[str, Any]]) -> list[Curve]:
    """The curves of one task's rows (``records``: by file name): none when no row is on a
    test-time track. Where two rows of one curve share a setting (a plain evaluation and the
    training run that made its checkpoint), the evaluation is drawn, else the row of more seeds."""
    bases = {base_track(r["track"])[0] for r in rows if base_track(r["track"])[1]}
    curves: dict[tuple, Curve] = {}
    for row in sorted(rows, key=lambda r: (r["mode"] != "eval", -len(r["seeds"]))):  # stable: the track's order
        base, _ = base_track(row["track"])
        if base not in bases or headline_of(row) is None:
            continue
        done = [records[f] for f in row["files"] if records[f]["status"] == "completed"]
        flops = statistics.fmean(r["cost"]["flops_per_example_forward"]["mean"] for r in done)
        if not flops > 0:
            continue
        point = Point(row, *setting_of(done), flops, headline_of(row))
        key = (row["model"], row["preset"], row["settings"], base)
        curve = curves.setdefault(key, Curve(_curve_label(row, base, len(bases) > 1), row["model"]))
        if all((p.depth, p.line) != (point.depth, point.line) for p in curve.points):
            curve.points.append(point)
    order = {id(r): n for n, r in enumerate(rows)}  # curves in the order of their best-placed row
    found = sorted(curves.values(), key=lambda c: min(order[id(p.row)] for p in c.points))
    for curve in found:
        curve.points.sort(key=lambda p: (p.flops, p.breadth, p.depth or 0))
    return found


def lines_of(curve: Curve) -> dict[tuple[int, str | None], list[Point]]:
    """A curve's points by (breadth, rule), each list in order of FLOPs: the points one line joins."""
    lines: dict[tuple[int, str | None], list[Point]] = {}
    for point in curve.points:
        lines.setdefault(point.line, []).append(point)
    return lines


def front_of(points: list[Point]) -> list[int]:
    """Indices of the points on the Pareto front (no other point has as few FLOPs or fewer and as
    high an accuracy or higher, one of them strictly), cheapest first."""
    return pareto_front([(p.flops, p.accuracy) for p in points])


def _dash(lines: list[tuple[int, str | None]], line: tuple[int, str | None]) -> str:
    return DASHES[lines.index(line) % len(DASHES)]


def _polylines(curves: list[Curve], styles: list[tuple[str, str]], at: dict[int, tuple[float, float]],
               lines: list[tuple[int, str | None]]) -> tuple[list[str], list[svg.Box]]:
    """Each curve's lines (one per breadth and rule, through its points by FLOPs): (SVG, the
    boxes of their segments)."""
    parts, boxes = [], []
    for curve, (colour, _) in zip(curves, styles):
        for line, points in lines_of(curve).items():
            path = [at[id(p)] for p in points]
            if len(path) < 2:
                continue
            dash = _dash(lines, line)
            what = f"breadth {line[0]}" + (f" ({line[1]})" if line[1] else "")
            depths = ", ".join("-" if p.depth is None else str(p.depth) for p in points)
            parts.append(f'<polyline class="line" data-model="{svg.esc(curve.model)}" points="'
                         + " ".join(f"{x:.2f},{y:.2f}" for x, y in path) + f'" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5"' + (f' stroke-dasharray="{dash}"' if dash else "")
                         + f"><title>{svg.esc(printable(curve.label, 120))}, {svg.esc(what)}: depth {depths}"
                         "</title></polyline>")
            boxes += segment_boxes(path)
    return parts, boxes


def bar_of(point: "Point") -> list[float] | None:
    """A point's error bar: its row's rank interval, drawn for two seeds or more."""
    return point.row.get("rank_interval") if len(point.row["seeds"]) > 1 else None


def tooltip(curve: Curve, point: Point, name: str) -> str:
    """What hovering a point says: model, setting, accuracy and interval, FLOPs, seeds."""
    bar = point.row.get("rank_interval")
    interval = f" (rank interval {100 * bar[0]:.1f}-{100 * bar[1]:.1f})" if bar else ""
    seeds = len(point.row["seeds"])
    return (f"{printable(curve.label, 120)}, {point.setting()}: {100 * point.accuracy:.1f}% {name}{interval}, "
            f"{si(point.flops)} forward FLOPs per example, {seeds} seed{'s' if seeds != 1 else ''}")


def _legend(chart: svg.Chart, curves: list[Curve], styles: list[tuple[str, str]],
            lines: list[tuple[int, str | None]]) -> None:
    chart.legend = [svg.LegendEntry(printable(c.label, 120), svg.legend_marker(shape, colour, c.model, True))
                    for c, (colour, shape) in list(zip(curves, styles))[:MAX_LEGEND]]
    if len(curves) > MAX_LEGEND:
        chart.legend.append(svg.LegendEntry(f"and {len(curves) - MAX_LEGEND:,} more (hover a point)", ""))
    for line in lines:
        dash = _dash(lines, line)
        chart.legend.append(svg.LegendEntry(
            f"breadth {line[0]}" + (f" ({line[1]})" if line[1] else ""),
            '<line x1="0" x2="12" y1="6" y2="6" stroke="#555555" stroke-width="1.5"'
            + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"))
    chart.legend += [BAR_KEY, FRONT_KEY]


def _label_curves(curves: list[Curve], at: dict[int, tuple[float, float]], on_front: set[int],
                  frame: svg.Box, taken: list[svg.Box], avoid: list[svg.Box]) -> list[str]:
    """Each curve named once, beside the first of its points where the name fits: those on the
    Pareto front first, then the costliest."""
    parts: list[str] = []
    for curve in curves:
        ordered = sorted(curve.points, key=lambda p: (id(p) not in on_front, -p.flops))
        for point in ordered:
            placed = label_points([(0, curve.label)], [at[id(point)]], frame, taken, avoid)
            if placed:
                parts += placed
                break
    return parts


def testtime_plot(rows: list[dict[str, Any]], records: dict[str, dict[str, Any]], task: str) -> str | Empty:
    """SVG text of one task's test-time compute chart (``curves_of``); ``Empty`` when no row is on
    a test-time track, or every point scores 0."""
    curves = curves_of(rows, records)
    points = [p for c in curves for p in c.points]
    name = "pass@2" if any(r.get("headline") == "pass@2" for r in rows) else "exact"
    title = f"{task}: {'pass@2' if name == 'pass@2' else 'exact accuracy'} against test-time forward FLOPs per example"
    if not points:
        return Empty(f"{title}: no row was evaluated at a test-time depth or breadth (no chart drawn).")
    bars = [bar_of(p) for p in points]
    if all(p.accuracy == 0 for p in points) and all(not b or b[1] == 0 for b in bars):
        return Empty(f"{title}: every point scores 0.0% {name} (no chart drawn).")
    chart = svg.Chart(title, X_LABEL, "pass@2 (%)" if name == "pass@2" else "exact accuracy (%)")
    axes = LogAxes.around(chart.frame, [p.flops for p in points],
                          svg.nice_top(max([100 * p.accuracy for p in points] + [100 * b[1] for b in bars if b])))
    # each point at its own FLOPs, never moved aside: the lines' slopes are the data's (bars at one
    # cost may cover each other; each point's tooltip says its interval)
    xy = [(axes.px(p.flops), axes.py(100 * p.accuracy)) for p in points]
    at = {id(p): spot for p, spot in zip(points, xy)}
    styles = svg.row_styles([c.model for c in curves])
    lines = sorted({p.line for p in points}, key=lambda line: (line[0], line[1] or ""))
    front = front_of(points)
    staircase, path = front_line(xy, front, chart.frame)
    drawn, line_boxes = _polylines(curves, styles, at, lines)
    parts = [staircase] + drawn
    parts += [error_bar(p.row["model"], at[id(p)][0], axes.py(100 * b[0]), axes.py(100 * b[1]), colour)
              for c, (colour, _) in zip(curves, styles) for p in c.points if (b := bar_of(p))]
    parts += front_rings(xy, front)
    parts += [svg.marker(shape, *at[id(p)], RADIUS, colour, c.model, tooltip(c, p, name))
              for c, (colour, shape) in zip(curves, styles) for p in c.points]
    taken = [svg.Box(x - RADIUS - RING, y - RADIUS - RING, x + RADIUS + RING, y + RADIUS + RING) for x, y in xy]
    avoid = [svg.Box(x - 1.5, axes.py(100 * b[1]), x + 1.5, axes.py(100 * b[0])) for (x, _), b in zip(xy, bars) if b]
    parts += _label_curves(curves, at, {id(points[i]) for i in front}, chart.frame, taken,
                           avoid + line_boxes + segment_boxes(path))
    chart.parts = parts
    _legend(chart, curves, styles, lines)
    return axes.render(chart)


def write_chart(task: str, rows: list[dict[str, Any]], records: dict[str, dict[str, Any]], out: Path,
                warnings: list[str]) -> tuple[str | None, str, str] | None:
    """Draw one task's chart and write it as ``plots/<task>-testtime.svg`` under ``out``: (file
    name, caption, SVG text), or (None, caption, the sentence said instead); None for a task
    without rows, or (with a warning) when the chart cannot be drawn."""
    if not rows:
        return None
    try:
        chart = testtime_plot(rows, records, task)
    except Exception as exc:  # noqa: BLE001 (the rows' values: the chart is left out, the page is built)
        warnings.append(f"{printable(task)}: test-time compute chart not drawn: {error_line(exc)}")
        return None
    if isinstance(chart, Empty):
        return None, CAPTION, chart
    name = f"plots/{slug(task)}-testtime.svg"
    if (out / name).exists():  # a track's chart of another task of the same name part
        name = f"plots/{slug(task)}-testtime-{hashlib.sha256(task.encode()).hexdigest()[:8]}.svg"
    (out / name).write_text(chart)
    return name, CAPTION, chart
