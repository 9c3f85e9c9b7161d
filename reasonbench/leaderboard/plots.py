"""Pictures of the leaderboard: accuracy against cost with the Pareto front, and accuracy per
reasoning step and per difficulty bucket (SVG text drawn by ``svg``, one colour per model), and
a task's puzzle rendering of a recorded example (PNG)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reasonbench.util.untrusted import printable
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


@dataclass(frozen=True)
class LogAxes:
    """A chart's scales: a cost on a log axis from ``left`` to ``right``, accuracy in % from 0
    to ``top``, both in the pixels of ``frame``."""

    frame: svg.Box
    left: float
    right: float
    top: float

    @classmethod
    def around(cls, frame: svg.Box, xs: list[float], top: float) -> "LogAxes":
        """Room on both sides of the least and the most cost: a marker never sits on the frame."""
        return cls(frame, min(xs) / 1.6, max(xs) * 1.6, top)

    def px(self, value: float) -> float:
        f = self.frame
        return f.left + (f.right - f.left) * math.log(value / self.left) / math.log(self.right / self.left)

    def py(self, value: float) -> float:
        """The height of ``value`` (in %), the axis' top for any value above it."""
        return self.frame.bottom - (self.frame.bottom - self.frame.top) * min(value, self.top) / self.top

    def render(self, chart: svg.Chart) -> str:
        ticks = svg.thin_ticks([(self.px(t), si(t)) for t in _log_ticks(self.left, self.right)])
        return chart.render(ticks, [(self.py(t), svg.percent(t)) for t in svg.y_ticks(self.top)])


RADIUS, RING = 4.0, 2.5  # a scatter chart's marker; the ring around those on the Pareto front


def spread_points(points: list[tuple[float, float]], spans: list[tuple[float, float]],
            radius: float) -> tuple[list[tuple[float, float]], list[svg.Box], bool]:
    """``points`` with each whose marker or error bar (``spans``: its top and bottom in px) would
    cover another's (the same cost) moved sideways a little: (the points, their markers' boxes,
    whether any moved)."""
    marks: list[svg.Box] = []
    column = 2 * radius + 1
    reaches: dict[int, list[svg.Box]] = {}  # marker and bar together, by the pixel columns they touch
    moved, placed = False, []
    for (cx, cy), (top_y, bottom_y) in zip(points, spans):
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
        placed.append((at, cy))
    return placed, marks, moved


def front_line(points: list[tuple[float, float]], front: list[int],
               frame: svg.Box) -> tuple[str, list[tuple[float, float]]]:
    """The Pareto front (``front``: indices into ``points``, in px, cheapest first) as a dashed
    staircase to the frame's right edge: (SVG, the staircase's corners)."""
    stairs = [(points[i][0], points[i][1]) for i in front]
    path = [stairs[0]] + [p for (ax, ay), (bx, by) in zip(stairs, stairs[1:]) for p in ((bx, ay), (bx, by))]
    path.append((frame.right, stairs[-1][1]))
    return ('<polyline class="front" points="' + " ".join(f"{a:.2f},{b:.2f}" for a, b in path)
            + '" fill="none" stroke="#333333" stroke-width="1.2" stroke-dasharray="4 3"><title>Pareto front'
            "</title></polyline>"), path


def front_rings(points: list[tuple[float, float]], front: list[int], radius: float = RADIUS) -> list[str]:
    return [f'<circle cx="{points[i][0]:.2f}" cy="{points[i][1]:.2f}" r="{radius + RING}" fill="none" '
            'stroke="#333333" stroke-width="1"/>' for i in front]


FRONT_KEY = svg.LegendEntry("Pareto front", '<line x1="0" x2="12" y1="6" y2="6" stroke="#333333" '
                                            'stroke-dasharray="4 3"/>')
BAR_KEY = svg.LegendEntry(BAR_NOTE, '<line x1="6" x2="6" y1="0" y2="12" stroke="#777777" stroke-width="1.5"/>')


def error_bar(model: str, x: float, low: float, high: float, colour: str) -> str:
    """A point's interval as a vertical line from ``low`` to ``high`` (px)."""
    return (f'<line class="bar" data-model="{svg.esc(model)}" x1="{x:.2f}" x2="{x:.2f}" y1="{low:.2f}" '
            f'y2="{high:.2f}" stroke="{colour}" stroke-width="1.5" stroke-opacity="0.5"/>')


def segment_boxes(path: list[tuple[float, float]]) -> list[svg.Box]:
    """The boxes of a polyline's segments (a pixel around each), for labels to keep off."""
    return [svg.Box(min(ax, bx) - 1, min(ay, by) - 1, max(ax, bx) + 1, max(ay, by) + 1)
            for (ax, ay), (bx, by) in zip(path, path[1:])]


def label_points(names: list[tuple[int, str]], points: list[tuple[float, float]], frame: svg.Box,
                 taken: list[svg.Box], lines: list[svg.Box], radius: float = RADIUS) -> list[str]:
    """Each (point index, name) in order labelled beside its (ringed) point where a free spot is
    (``svg.place_label``); ``taken`` grows by each label placed."""
    parts = []
    for n, name in names:
        text = svg.fit(printable(name, 60), svg.POINT_LABEL_SIZE, 120)
        placed = svg.place_label(text, points[n][0], points[n][1], radius + RING, frame, taken, lines)
        if placed:
            parts.append(placed[0])
            taken.append(placed[1])
    return parts


def _scatter_legend(chart: svg.Chart, drawn: list[tuple[dict[str, Any], tuple[str, str]]], moved: bool) -> None:
    chart.legend = [svg.LegendEntry(printable(model_label(r), 120), svg.legend_marker(shape, colour, r["model"]))
                    for r, (colour, shape) in drawn[:MAX_LEGEND]]
    if len(drawn) > MAX_LEGEND:
        chart.legend.append(svg.LegendEntry(f"and {len(drawn) - MAX_LEGEND:,} more (hover a point)", ""))
    chart.legend += [BAR_KEY, FRONT_KEY]
    if moved:
        chart.notes.append("Points of about equal cost are set a few pixels apart, so that each error bar shows; "
                           "hover a point for its values.")


def accuracy_plot(rows: list[dict[str, Any]], x_key: str, x_label: str, title: str) -> str | None:
    """SVG text: each row's headline (mean exact accuracy; ARC: pass@2) against ``x_key`` on a log
    axis, the interval its rank is decided on (``rank_interval``) as its error bar, the Pareto
    front drawn; the points named where their labels fit, all in the legend and their tooltips.
    None when no row can be drawn, ``Empty`` when every row scores 0."""
    drawn = [(r, style) for r, style in zip(rows, styles(rows))
             if headline_of(r) is not None and r[x_key] and r[x_key] > 0]
    if not drawn:
        return None
    bars = [r.get("rank_interval") for r, _ in drawn]
    name = "pass@2" if any(r.get("headline") == "pass@2" for r, _ in drawn) else "exact"
    if all(headline_of(r) == 0 for r, _ in drawn) and all(not b or b[1] == 0 for b in bars):
        return Empty(f"{title}: every row scores 0.0% {name} (no chart drawn).")
    chart = svg.Chart(title, x_label, "pass@2 (%)" if name == "pass@2" else "exact accuracy (%)")
    x = [float(r[x_key]) for r, _ in drawn]
    y = [100 * headline_of(r) for r, _ in drawn]
    axes = LogAxes.around(chart.frame, x, svg.nice_top(max(y + [100 * b[1] for b in bars if b])))
    points = [(axes.px(a), axes.py(b)) for a, b in zip(x, y)]
    spans = [(min(cy, axes.py(100 * b[1])), max(cy, axes.py(100 * b[0]))) if b else (cy, cy)
             for (_, cy), b in zip(points, bars)]
    points, marks, moved = spread_points(points, spans, RADIUS)
    front = pareto_front(list(zip(x, y)))
    staircase, path = front_line(points, front, chart.frame)
    parts = [staircase]
    parts += [error_bar(row["model"], cx, axes.py(100 * bar[0]), axes.py(100 * bar[1]), colour)
              for (row, (colour, _)), (cx, _), bar in zip(drawn, points, bars) if bar]
    parts += front_rings(points, front)
    for (row, (colour, shape)), (cx, cy), value, bar in zip(drawn, points, x, bars):
        interval = f" (rank interval {100 * bar[0]:.1f}-{100 * bar[1]:.1f})" if bar else ""
        tip = (f"{printable(model_label(row), 120)}: {100 * headline_of(row):.1f}% {name}{interval}, "
               f"{x_label} {si(value)}")
        parts.append(svg.marker(shape, cx, cy, RADIUS, colour, row["model"], tip))
    taken = [svg.Box(m.left - RING, m.top - RING, m.right + RING, m.bottom + RING) for m in marks]
    # labels keep off the error bars and the front's line where they can
    lines = [svg.Box(cx - 1.5, axes.py(100 * bar[1]), cx + 1.5, axes.py(100 * bar[0]))
             for (cx, _), bar in zip(points, bars) if bar] + segment_boxes(path)
    on_front = set(front)
    order = sorted(range(len(drawn)), key=lambda i: (i not in on_front, i))[:MAX_LABELS]
    parts += label_points([(n, model_label(drawn[n][0])) for n in order], points, chart.frame, taken, lines)
    chart.parts = parts
    _scatter_legend(chart, drawn, moved)
    return axes.render(chart)


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
        label = printable(model_label(row), 120)
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
        label = printable(model_label(row), 120)
        for i, v in enumerate(values):
            if v is not None:
                parts.append(svg.marker(shape, px(i), py(v), 3.2, colour, row["model"],
                                        f"{label}, {x_label} {ticks[i]}: {100 * v:.1f}% exact"))
    chart.parts = parts
    chart.legend = [svg.LegendEntry(printable(model_label(r), 120), svg.legend_marker(shape, colour, r["model"], True))
                    for r, (colour, shape), _ in series]
    chart.notes = notes
    labels = svg.thin_ticks([(px(i), printable(t, 12)) for i, t in enumerate(ticks)])
    return chart.render(labels, [(py(t / 100), svg.percent(t)) for t in svg.y_ticks(top)])


def _same_lines_note(series: list[tuple[dict[str, Any], tuple[str, str], list[float | None]]]) -> list[str]:
    """A note for each line drawn exactly under an earlier one (the same values)."""
    notes = []
    for n, (row, _, values) in enumerate(series):
        under = [model_label(r) for r, _, v in series[n + 1:] if v == values]
        if under:
            notes.append(f"{printable(model_label(row), 60)} and {', '.join(printable(u, 60) for u in under)} have the "
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
            notes.append(f"{printable(model_label(row), 60)}: the table's {column} ({100 * figure:.1f}) is not this "
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
        raise ValueError(f"cannot draw the example: {printable(exc, 120)}") from None
    return png_bytes(image)
