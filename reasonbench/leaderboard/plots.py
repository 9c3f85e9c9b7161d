"""Pictures of the leaderboard: accuracy against cost with the Pareto front (SVG, matplotlib on
its Agg canvas, no pyplot state) and a task's puzzle rendering of a recorded example (PNG)."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from .pages import model_label, si
from .records import one_line, pareto_front

# x axis of each plot: row field, axis label, file suffix
COST_AXES = (("params", "parameters", "params"),
             ("flops_per_example_forward", "forward FLOPs per example", "flops"),
             ("device_hours", "device-hours", "hours"))

MAX_LINES = 12  # lines on one chart: the rows ranked best first

STYLE = {"svg.fonttype": "none",  # text stays text (small files, searchable), escaped by matplotlib
         "svg.hashsalt": "reasonbench",  # stable element ids: the same rows give the same file
         "text.parse_math": False,  # "$" in a name or bucket (legends, ticks) is text, not TeX
         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def _frame(fig: Any, title: str) -> tuple[Any, str]:
    """The axes of a chart with its title wrapped to the figure's width (never cut off) and room
    below for a legend outside the data; returns (axes, the title's text)."""
    import textwrap

    text = "\n".join(textwrap.wrap(one_line(title, 120), 64)) or " "
    top = 0.90 if "\n" not in text else 0.85
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.27, top=top)  # fixed: one drawing pass
    ax = fig.add_subplot()
    ax.set_title(text, fontsize=9, parse_math=False)
    return ax, text


def _legend_below(ax: Any, columns: int) -> None:
    """The legend under the axes, outside the data ("best" scans every point, and still covers lines)."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, ncols=columns)


def accuracy_plot(rows: list[dict[str, Any]], x_key: str, x_label: str, title: str) -> str | None:
    """SVG text: each row's mean exact accuracy (95% interval as error bar) against ``x_key`` on
    a log axis, the Pareto front drawn and its models named; None when no row can be drawn."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    drawn = [r for r in rows if r["exact_accuracy_mean"] is not None and r[x_key] and r[x_key] > 0]
    if not drawn:
        return None
    x = np.array([r[x_key] for r in drawn], dtype=float)
    y = np.array([100 * r["exact_accuracy_mean"] for r in drawn])
    low = np.array([100 * r["exact_accuracy_ci95"][0] for r in drawn])
    high = np.array([100 * r["exact_accuracy_ci95"][1] for r in drawn])
    front = pareto_front(list(zip(x.tolist(), y.tolist())))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(4.6, 3.8))
        FigureCanvasAgg(fig)
        ax, _ = _frame(fig, title)
        # collections, not errorbar's artist per point: thousands of rows stay quick to draw
        ax.vlines(x, low, high, color="#9db4d6", lw=1, clip_on=False)
        ax.scatter(x, y, s=14, color="#4c72b0", zorder=2, label="measured (bar: 95% interval)", clip_on=False)
        lo, hi = x.min(), x.max()
        left, right = lo / 2, (hi if hi > lo else lo) * 2
        fx, fy = x[front], y[front]
        # a staircase: the best accuracy reached at each cost, held to the right edge
        ax.plot(np.append(fx, right), np.append(fy, fy[-1]), drawstyle="steps-post",
                color="#dd8452", lw=1.5, label="Pareto front")
        ax.scatter(fx, fy, s=36, facecolors="none", edgecolors="#dd8452", linewidths=1.5, zorder=3, clip_on=False)
        for n, i in enumerate(front):
            # labels alternate above and below the point (neighbours on the front stay legible) and
            # sit left of points in the right third; parse_math off: "$" in a name is not TeX
            right_side = math.log(x[i] / left) > 0.66 * math.log(right / left)
            ax.annotate(one_line(model_label(drawn[i]), 40), (x[i], y[i]),
                        xytext=(-4 if right_side else 4, 4 if n % 2 == 0 else -10), textcoords="offset points",
                        ha="right" if right_side else "left", fontsize=7, parse_math=False)
        ax.set_xscale("log")
        ax.set_xlim(left, right)
        # labelled 200k, 1M, ...: ticks at 1, 2 and 5 of each decade over a short span, at
        # decades over a long one
        short = math.log10(right / left) < 2
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if short else (1.0,), numticks=8))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: si(value)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        # accuracy is a share: the axis stays in [0, 100] (points at 0 sit on it, unclipped)
        ax.set_ylim(0, max(10.0, math.ceil(min(100.0, high.max()) / 10) * 10))
        ax.set_xlabel(x_label)
        ax.set_ylabel("exact accuracy (%)")
        ax.grid(alpha=0.3, which="major")
        _legend_below(ax, 2)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _line_chart(series: list[tuple[str, list[float | None]]], ticks: list[str], x_label: str, title: str) -> str:
    """SVG text: one line per (label, values in [0, 1]) over the categorical ``ticks``."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(4.6, 3.8 + 0.15 * max(0, (len(series) - 1) // 3)))
        FigureCanvasAgg(fig)
        ax, _ = _frame(fig, title)
        x = np.arange(len(ticks))
        for label, values in series:
            y = np.array([np.nan if v is None else 100 * v for v in values], dtype=float)
            ax.plot(x[:len(y)], y, marker="o", ms=3, lw=1.2, label=one_line(label, 40), clip_on=False)
        step = max(1, len(ticks) // 12)  # at most a dozen labels on the axis
        ax.set_xticks(x[::step], [one_line(t, 12) for t in ticks[::step]])
        ax.set_ylim(0, 100)
        ax.set_xlabel(x_label)
        ax.set_ylabel("exact accuracy (%)")
        ax.grid(alpha=0.3)
        _legend_below(ax, 3)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def depth_plot(rows: list[dict[str, Any]], title: str, key: str = "by_step_exact") -> str | None:
    """Exact accuracy after each reasoning step, one line per row (model) that records it;
    ``key`` "ood_by_step_exact": on the out-of-distribution split."""
    drawn = [r for r in rows if r.get(key)][:MAX_LINES]
    if not drawn or max(len(r[key]) for r in drawn) < 2:  # one step: nothing to show a curve of
        return None
    longest = max(len(r[key]) for r in drawn)
    return _line_chart([(model_label(r), r[key]) for r in drawn],
                       [str(s) for s in range(1, longest + 1)], "reasoning step (supervision segment)", title)


def ood_depth_plot(rows: list[dict[str, Any]], title: str) -> str | None:
    return depth_plot(rows, title, "ood_by_step_exact")


def difficulty_plot(rows: list[dict[str, Any]], title: str) -> str | None:
    """Exact accuracy per difficulty bucket, one line per row (model); the task's buckets."""
    drawn = [r for r in rows if r.get("by_difficulty")][:MAX_LINES]
    if not drawn:
        return None
    # only buckets that hold test examples; with fewer than two there is no difficulty to compare
    names = list(dict.fromkeys(b["name"] for r in drawn for b in r["by_difficulty"] if b.get("n_test_examples")))
    if len(names) < 2:
        return None
    series = [(model_label(r), [next((b["exact_accuracy"] for b in r["by_difficulty"] if b["name"] == n), None)
                                for n in names]) for r in drawn]
    return _line_chart(series, names, drawn[0]["difficulty_kind"] or "difficulty", title)


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

    from .. import registry

    for name in registry.entries("task"):
        try:
            registry.get_task(name)
        except Exception:  # noqa: BLE001 (a broken task plugin only loses its pictures)
            pass


def puzzle_png(task_name: str, metadata: dict[str, Any], example: dict[str, list[int]]) -> bytes:
    """PNG of puzzle | prediction (wrong cells marked) | answer, drawn by the task's own
    ``render_image``; ValueError when the record's example does not fit the task."""
    import torch

    from .. import registry
    from ..errors import UserError
    from ..tasks.base import ReasoningTask
    from ..tasks.images import png_bytes

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
