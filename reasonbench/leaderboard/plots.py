"""Pictures of the leaderboard: accuracy against cost with the Pareto front, and accuracy per
reasoning step and per difficulty bucket (SVG text drawn by ``svg``, one colour per model), and
a task's puzzle rendering of a recorded example (PNG)."""

from __future__ import annotations

import math
from typing import Any

from reasonbench.util.untrusted import printable as one_line
from reasonbench.leaderboard import svg
from reasonbench.leaderboard.pages import model_label, si
from reasonbench.leaderboard.rank import pareto_front

# x axis of each plot: row field, axis label, file suffix
COST_AXES = (("params", "parameters", "params"),
             ("flops_per_example_forward", "forward FLOPs per example", "flops"),
             ("device_hours", "device-hours", "hours"))

MAX_LINES = 12  # lines on one chart: the rows ranked best first
MAX_LEGEND = 24  # rows named in a scatter chart's legend (every point keeps its tooltip)
MAX_LABELS = 40  # points a scatter chart tries to label: the Pareto front's, then the best ranked
BAR_NOTE = "bar: the interval the rank is decided on"


class Empty(str):
    """What a chart with nothing to show says instead, in one sentence."""


def styles(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(colour, marker) of each of one track's rows (in the track's order): the same in its
    table and in each of its charts."""
    return svg.row_styles([r["model"] for r in rows])


def _log_ticks(left: float, right: float) -> list[float]:
    """Tick values between ``left`` and ``right``: decades over a long span, 1, 2 and 5 of each
    decade over a short one, every multiple of the decade over a span too short for two of those."""
    decades = range(math.floor(math.log10(left)), math.ceil(math.log10(right)) + 1)
    for subs in ((1.0, 2.0, 5.0) if math.log10(right / left) < 2 else (1.0,), (1.0, 2.0, 5.0), tuple(range(1, 10))):
        ticks = [m * 10.0 ** e for e in decades for m in subs if left <= m * 10.0 ** e <= right]
        if len(ticks) >= 2:
            return ticks
    return ticks


def headline_of(row: dict[str, Any]) -> float | None:
    """The figure a row is ranked on (its ``rank_interval`` is on this scale): mean exact
    accuracy, or ARC's pass@2."""
    return row.get("headline_mean", row["exact_accuracy_mean"])


def accuracy_plot(rows: list[dict[str, Any]], x_key: str, x_label: str, title: str) -> str | None:
    """SVG text: each row's headline (mean exact accuracy; ARC: pass@2) against ``x_key`` on a log axis, the interval
    its rank is decided on (``rank_interval``) as its error bar, the Pareto front drawn; the
    points named where their labels fit, all in the legend and their tooltips. None when no row
    can be drawn, ``Empty`` when every row scores 0."""
    drawn = [(r, style) for r, style in zip(rows, styles(rows))
             if headline_of(r) is not None and r[x_key] and r[x_key] > 0]
    if not drawn:
        return None
    bars = [r.get("rank_interval") for r, _ in drawn]
    name = "pass@2" if any(r.get("headline") == "pass@2" for r, _ in drawn) else "exact"
    if all(headline_of(r) == 0 for r, _ in drawn) and all(not b or b[1] == 0 for b in bars):
        return Empty(f"{title}: every row scores 0.0% {name} (no chart drawn).")
    chart = svg.Chart(title, x_label, "pass@2 (%)" if name == "pass@2" else "exact accuracy (%)")
    frame = chart.frame
    x = [float(r[x_key]) for r, _ in drawn]
    y = [100 * headline_of(r) for r, _ in drawn]
    top = svg.nice_top(max(y + [100 * b[1] for b in bars if b]))
    lo, hi = min(x), max(x)
    left, right = lo / 1.6, hi * 1.6
    span = math.log(right / left)

    def px(value: float) -> float:
        return frame.left + (frame.right - frame.left) * math.log(value / left) / span

    def py(value: float) -> float:
        return frame.bottom - (frame.bottom - frame.top) * min(value, top) / top

    radius, ring = 4.0, 2.5  # a marker; the ring around those on the Pareto front
    points = [(px(a), py(b)) for a, b in zip(x, y)]
    # a point whose marker or error bar would cover another's (the same cost) moves sideways a little
    marks: list[svg.Box] = []
    column = 2 * radius + 1
    reaches: dict[int, list[svg.Box]] = {}  # marker and bar together, by the pixel columns they touch
    moved = False
    for n, ((cx, cy), bar) in enumerate(zip(points, bars)):
        top_y, bottom_y = (min(cy, py(100 * bar[1])), max(cy, py(100 * bar[0]))) if bar else (cy, cy)
        for shift in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6):
            at = cx + shift * column
            reach = svg.Box(at - radius, top_y - radius, at + radius, bottom_y + radius)
            near = range(math.floor(reach.left / column), math.floor(reach.right / column) + 1)
            if not any(reach.meets(m) for c in near for m in reaches.get(c, ())):
                break
        moved = moved or shift != 0
        for c in near:
            reaches.setdefault(c, []).append(reach)
        marks.append(svg.Box(at - radius, cy - radius, at + radius, cy + radius))
        points[n] = (at, cy)
    front = pareto_front(list(zip(x, y)))
    parts = []
    stairs = [(points[i][0], points[i][1]) for i in front]
    path = [stairs[0]] + [p for (ax, ay), (bx, by) in zip(stairs, stairs[1:]) for p in ((bx, ay), (bx, by))]
    path.append((frame.right, stairs[-1][1]))
    parts.append('<polyline class="front" points="' + " ".join(f"{a:.2f},{b:.2f}" for a, b in path)
                 + '" fill="none" stroke="#333333" stroke-width="1.2" stroke-dasharray="4 3"><title>Pareto front'
                 "</title></polyline>")
    for (row, (colour, _)), (cx, _), bar in zip(drawn, points, bars):
        if bar:
            parts.append(f'<line class="bar" data-model="{svg.esc(row["model"])}" x1="{cx:.2f}" x2="{cx:.2f}" '
                         f'y1="{py(100 * bar[0]):.2f}" y2="{py(100 * bar[1]):.2f}" stroke="{colour}" '
                         f'stroke-width="1.5" stroke-opacity="0.5"/>')
    for i in front:
        parts.append(f'<circle cx="{points[i][0]:.2f}" cy="{points[i][1]:.2f}" r="{radius + ring}" fill="none" '
                     'stroke="#333333" stroke-width="1"/>')
    for (row, (colour, shape)), (cx, cy), value, bar in zip(drawn, points, x, bars):
        interval = f" (rank interval {100 * bar[0]:.1f}-{100 * bar[1]:.1f})" if bar else ""
        tip = (f"{one_line(model_label(row), 120)}: {100 * headline_of(row):.1f}% {name}{interval}, "
               f"{x_label} {si(value)}")
        parts.append(svg.marker(shape, cx, cy, radius, colour, row["model"], tip))
    taken = [svg.Box(m.left - ring, m.top - ring, m.right + ring, m.bottom + ring) for m in marks]
    # labels keep off the error bars and the front's line where they can
    lines = [svg.Box(cx - 1.5, py(100 * bar[1]), cx + 1.5, py(100 * bar[0]))
             for (cx, _), bar in zip(points, bars) if bar]
    lines += [svg.Box(min(ax, bx) - 1, min(ay, by) - 1, max(ax, bx) + 1, max(ay, by) + 1)
              for (ax, ay), (bx, by) in zip(path, path[1:])]
    on_front = set(front)
    for n in sorted(range(len(drawn)), key=lambda i: (i not in on_front, i))[:MAX_LABELS]:
        text = svg.fit(one_line(model_label(drawn[n][0]), 60), svg.POINT_LABEL_SIZE, 120)
        placed = svg.place_label(text, points[n][0], points[n][1], radius + ring, frame, taken, lines)
        if placed:
            parts.append(placed[0])
            taken.append(placed[1])
    chart.parts = parts
    chart.legend = [svg.LegendEntry(one_line(model_label(r), 120), svg.legend_marker(shape, colour, r["model"]))
                    for r, (colour, shape) in drawn[:MAX_LEGEND]]
    if len(drawn) > MAX_LEGEND:
        chart.legend.append(svg.LegendEntry(f"and {len(drawn) - MAX_LEGEND:,} more (hover a point)", ""))
    chart.legend.append(svg.LegendEntry(BAR_NOTE, '<line x1="6" x2="6" y1="0" y2="12" stroke="#777777" '
                                        'stroke-width="1.5"/>'))
    chart.legend.append(svg.LegendEntry("Pareto front", '<line x1="0" x2="12" y1="6" y2="6" stroke="#333333" '
                                        'stroke-dasharray="4 3"/>'))
    if moved:
        chart.notes.append("Points of about equal cost are set a few pixels apart, so that each error bar shows; "
                           "hover a point for its values.")
    ticks = svg.thin_ticks([(px(t), si(t)) for t in _log_ticks(left, right)])
    return chart.render(ticks, [(py(t), svg.percent(t)) for t in svg.y_ticks(top)])


def _line_chart(series: list[tuple[dict[str, Any], tuple[str, str], list[float | None]]], ticks: list[str],
                x_label: str, title: str, notes: list[str]) -> str:
    """SVG text: one line per (row, style, values in [0, 1]) over the categorical ``ticks``."""
    chart = svg.Chart(title, x_label, "exact accuracy (%)")
    frame = chart.frame
    top = svg.nice_top(max(100 * v for _, _, values in series for v in values if v is not None))
    step = (frame.right - frame.left) / len(ticks)

    def px(i: int) -> float:
        return frame.left + (i + 0.5) * step

    def py(value: float) -> float:
        return frame.bottom - (frame.bottom - frame.top) * min(100 * value, top) / top

    parts = []
    for row, (colour, shape), values in series:
        label = one_line(model_label(row), 120)
        segment: list[str] = []
        for i, v in enumerate(values + [None]):
            if v is None:
                if len(segment) > 1:
                    parts.append(f'<polyline class="line" data-model="{svg.esc(row["model"])}" points="'
                                 f'{" ".join(segment)}" fill="none" stroke="{colour}" stroke-width="1.5">'
                                 f"<title>{svg.esc(label)}</title></polyline>")
                segment = []
            else:
                segment.append(f"{px(i):.2f},{py(v):.2f}")
    for row, (colour, shape), values in series:
        label = one_line(model_label(row), 120)
        for i, v in enumerate(values):
            if v is not None:
                parts.append(svg.marker(shape, px(i), py(v), 3.2, colour, row["model"],
                                        f"{label}, {x_label} {ticks[i]}: {100 * v:.1f}% exact"))
    chart.parts = parts
    chart.legend = [svg.LegendEntry(one_line(model_label(r), 120), svg.legend_marker(shape, colour, r["model"], True))
                    for r, (colour, shape), _ in series]
    chart.notes = notes
    labels = svg.thin_ticks([(px(i), one_line(t, 12)) for i, t in enumerate(ticks)])
    return chart.render(labels, [(py(t / 100), svg.percent(t)) for t in svg.y_ticks(top)])


def _same_lines_note(series: list[tuple[dict[str, Any], tuple[str, str], list[float | None]]]) -> list[str]:
    """A note for each line drawn exactly under an earlier one (the same values)."""
    notes = []
    for n, (row, _, values) in enumerate(series):
        under = [model_label(r) for r, _, v in series[n + 1:] if v == values]
        if under:
            notes.append(f"{one_line(model_label(row), 60)} and {', '.join(one_line(u, 60) for u in under)} have the "
                         "same values: one line hides the other.")
    return notes


def _left_out_note(recorded: list) -> list[str]:
    """A note when a line chart keeps only the best-ranked rows of those that record its values."""
    if len(recorded) <= MAX_LINES:
        return []
    return [f"The {MAX_LINES} best-ranked of the {len(recorded):,} rows that record these values."]


def _nothing_to_show(series: list[tuple[dict[str, Any], tuple[str, str], list[float | None]]],
                     title: str) -> Empty | None:
    if all(not v for _, _, values in series for v in values):
        return Empty(f"{title}: every row scores 0.0% exact at every point (no chart drawn).")
    return None


HEADLINES = {"by_step_exact": ("exact_accuracy_mean", "exact %"), "ood_by_step_exact": ("ood_accuracy", "OOD exact %")}


def depth_plot(rows: list[dict[str, Any]], title: str, key: str = "by_step_exact") -> str | None:
    """Exact accuracy after each reasoning step, one line per row (model) that records it;
    ``key`` "ood_by_step_exact": on the out-of-distribution split. A row whose table figure is
    not its curve's last point (it comes from another procedure, e.g. a vote over passes) is
    named in a note."""
    recorded = [(r, style, r[key]) for r, style in zip(rows, styles(rows)) if r.get(key)]
    series = recorded[:MAX_LINES]
    if not series or max(len(values) for _, _, values in series) < 2:  # one step: nothing to show a curve of
        return None
    empty = _nothing_to_show(series, title)
    if empty:
        return empty
    headline, column = HEADLINES[key]
    notes = _left_out_note(recorded) + _same_lines_note(series)
    for row, _, values in series:
        figure = row.get(headline)
        if figure is not None and values[-1] is not None and abs(figure - values[-1]) >= 0.0005:
            notes.append(f"{one_line(model_label(row), 60)}: the table's {column} ({100 * figure:.1f}) is not this "
                         f"curve's last step ({100 * values[-1]:.1f}): it comes from a procedure the curve (one pass, "
                         "scored after each step) does not show.")
    longest = max(len(values) for _, _, values in series)
    return _line_chart(series, [str(s) for s in range(1, longest + 1)], "reasoning step (supervision segment)",
                       title, notes)


def ood_depth_plot(rows: list[dict[str, Any]], title: str) -> str | None:
    return depth_plot(rows, title, "ood_by_step_exact")


def difficulty_plot(rows: list[dict[str, Any]], title: str) -> str | None:
    """Exact accuracy per difficulty bucket, one line per row (model); the task's buckets."""
    recorded = [(r, style) for r, style in zip(rows, styles(rows)) if r.get("by_difficulty")]
    with_buckets = recorded[:MAX_LINES]
    if not with_buckets:
        return None
    # only buckets that hold test examples; with fewer than two there is no difficulty to compare
    names = list(dict.fromkeys(b["name"] for r, _ in with_buckets for b in r["by_difficulty"]
                               if b.get("n_test_examples")))
    if len(names) < 2:
        return None
    series = [(r, style, [next((b["exact_accuracy"] for b in r["by_difficulty"] if b["name"] == n), None)
                          for n in names]) for r, style in with_buckets]
    empty = _nothing_to_show(series, title)
    if empty:
        return empty
    return _line_chart(series, names, with_buckets[0][0]["difficulty_kind"] or "difficulty", title,
                       _left_out_note(recorded) + _same_lines_note(series))


class _RecordedTask:
    """What a task's ``render_image`` reads (its metadata's grid shape and its palette), taken
    from the record: no task is built from a record's configuration."""

    def __init__(self, task_cls: type, metadata: dict[str, Any]) -> None:
        from types import SimpleNamespace

        shape = metadata.get("grid_shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(type(s) is int and 0 < s <= 64 for s in shape)):
            raise ValueError("task_metadata/grid_shape is not two sizes in [1, 64]")
        self.metadata = SimpleNamespace(**{**metadata, "grid_shape": tuple(shape)})
        self.palette = task_cls.palette


def import_tasks() -> None:
    """What ``puzzle_png`` needs imported (torch, the registered tasks), done ahead of time."""
    import torch  # noqa: F401

    from reasonbench.config import registry

    for name in registry.entries("task"):
        try:
            registry.get_task(name)
        except Exception:  # noqa: BLE001 (a broken task plugin only loses its pictures)
            pass


def puzzle_png(task_name: str, metadata: dict[str, Any], example: dict[str, list[int]]) -> bytes:
    """PNG of puzzle | prediction (wrong cells marked) | answer, drawn by the task's own
    ``render_image``; ValueError when the record's example does not fit the task."""
    import torch

    from reasonbench.config import registry
    from reasonbench.util.errors import UserError
    from reasonbench.tasks.base import ReasoningTask
    from reasonbench.tasks.images import png_bytes

    try:
        task_cls = registry.get_task(task_name)
    except UserError:
        task_cls = ReasoningTask  # an unknown task: token ids as colours
    view = _RecordedTask(task_cls, metadata)
    cells = view.metadata.grid_shape[0] * view.metadata.grid_shape[1]
    tensors = [torch.tensor(example[k], dtype=torch.long) for k in ("inputs", "prediction", "labels")]
    if any(len(t) < cells for t in tensors) or len({len(t) for t in tensors}) != 1:
        raise ValueError("example tokens do not fill the task's grid")
    try:
        image = task_cls.render_image(view, *tensors)
    except Exception as exc:  # a record's tokens may not decode (e.g. ids outside the vocabulary)
        raise ValueError(f"cannot draw the example: {one_line(exc, 120)}") from None
    return png_bytes(image)
