"""Charts as SVG text written directly (no plotting library): a fixed size in CSS pixels, so a
page can inline them unscaled, every text measured before it is placed (DejaVu Sans' advance
widths, the font the charts ask for first), and each model drawn in one colour everywhere.

What a reader can rely on: every point and line carries a ``<title>`` (its row and value on
hover) and a ``data-model`` attribute; point labels are placed where they meet no other text,
no marker and not the plot frame, or left out (the legend and the tooltip still name the
point); tick labels are thinned until they stand apart."""

from __future__ import annotations

import hashlib
import html
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

FONT_FAMILY = "DejaVu Sans, Verdana, sans-serif"  # the first is the one measured; the second is as wide

# colours of the known models (Tableau 10), fixed so a model keeps its colour on every page
MODEL_COLOURS = {"trm": "#1f77b4", "hrm": "#d62728", "cgar": "#2ca02c", "cmm": "#9467bd", "attractor": "#ff7f0e",
                 "aug-hrm": "#8c564b", "transformer": "#7f7f7f", "loopnet": "#e377c2"}
# any other model: one of these, picked by a hash of its name (the same on every build)
OTHER_COLOURS = ("#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                 "#e6550d", "#31a354", "#756bb1", "#636363", "#ce6dbd", "#9c9ede")
MARKERS = ("circle", "square", "triangle", "diamond", "down", "pentagon", "cross", "plus")


def model_colour(model: str) -> str:
    """The colour of ``model`` on every chart, legend and table swatch of the site."""
    known = MODEL_COLOURS.get(model)
    if known:
        return known
    return OTHER_COLOURS[int(hashlib.sha256(model.encode()).hexdigest()[:8], 16) % len(OTHER_COLOURS)]


def row_styles(models: list[str]) -> list[tuple[str, str]]:
    """(colour, marker) of each row of one track, given its model names in the track's order:
    the colour is the model's; rows that share a colour (several settings of one model, or two
    models whose hashed colours meet) get different markers, in order."""
    used: dict[str, int] = {}
    styles = []
    for model in models:
        colour = model_colour(model)
        styles.append((colour, MARKERS[used.get(colour, 0) % len(MARKERS)]))
        used[colour] = used.get(colour, 0) + 1
    return styles


# --- text measurement -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _font():
    from matplotlib import font_manager, ft2font

    font = ft2font.FT2Font(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"),
                                                 fallback_to_default=True))
    font.set_size(100, 72)  # 100 px per em: advances in hundredths of an em
    return font


@lru_cache(maxsize=4096)
def _advance(char: str) -> float:
    """Width of ``char`` in em."""
    from matplotlib import ft2font

    font = _font()
    if not font.get_char_index(ord(char)):
        return 1.0  # not in the font: the browser's fallback (CJK and the like are an em wide)
    flags = getattr(ft2font, "LoadFlags", None)
    glyph = font.load_char(ord(char), flags=flags.NO_HINTING if flags else ft2font.LOAD_NO_HINTING)
    return glyph.linearHoriAdvance / 65536 / 100


def text_width(text: str, size: float) -> float:
    """Width in px of ``text`` at ``size`` px, a little over (no kerning, a 4% margin)."""
    return 1.04 * size * sum(_advance(c) for c in text) + 1


def fit(text: str, size: float, width: float) -> str:
    """``text``, cut with an ellipsis where it is wider than ``width`` px."""
    if text_width(text, size) <= width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis
    while low < high:
        mid = (low + high + 1) // 2
        if text_width(text[:mid] + "…", size) <= width:
            low = mid
        else:
            high = mid - 1
    return text[:low] + "…"


def wrap(text: str, size: float, width: float, max_lines: int = 6) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` px (a word wider than a
    line is cut with an ellipsis), at most ``max_lines`` (the last one cut)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(lines[-1] + " " + word, size) <= width:
            lines[-1] += " " + word
        else:
            lines.append(fit(word, size, width))
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [fit(" ".join(lines[max_lines - 1:]), size, width)]
    return lines


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- boxes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    left: float
    top: float
    right: float
    bottom: float

    def meets(self, other: "Box", gap: float = 0.0) -> bool:
        return (self.left < other.right + gap and other.left < self.right + gap
                and self.top < other.bottom + gap and other.top < self.bottom + gap)

    def inside(self, other: "Box") -> bool:
        return (self.left >= other.left and self.right <= other.right
                and self.top >= other.top and self.bottom <= other.bottom)


def text_box(x: float, y: float, text: str, size: float, anchor: str = "start") -> Box:
    """The box of ``text`` drawn at (x, y) (its baseline) with ``text-anchor`` ``anchor``."""
    width = text_width(text, size)
    left = x if anchor == "start" else x - width if anchor == "end" else x - width / 2
    return Box(left, y - 0.93 * size, left + width, y + 0.24 * size)  # DejaVu's ascent and descent


# --- markers ----------------------------------------------------------------------------------
def marker_path(shape: str, x: float, y: float, r: float) -> str:
    """SVG path data of a marker of radius about ``r`` centred on (x, y)."""
    def poly(points: Iterable[tuple[float, float]]) -> str:
        return "M" + "L".join(f"{x + dx:.2f},{y + dy:.2f}" for dx, dy in points) + "Z"

    if shape == "square":
        s = 0.88 * r
        return poly([(-s, -s), (s, -s), (s, s), (-s, s)])
    if shape == "triangle":
        return poly([(0, -1.15 * r), (1.05 * r, 0.75 * r), (-1.05 * r, 0.75 * r)])
    if shape == "down":
        return poly([(0, 1.15 * r), (1.05 * r, -0.75 * r), (-1.05 * r, -0.75 * r)])
    if shape == "diamond":
        return poly([(0, -1.2 * r), (1.2 * r, 0), (0, 1.2 * r), (-1.2 * r, 0)])
    if shape == "pentagon":
        return poly([(1.1 * r * math.sin(2 * math.pi * k / 5), -1.1 * r * math.cos(2 * math.pi * k / 5))
                     for k in range(5)])
    if shape in ("cross", "plus"):
        a, b = 0.35 * r, 1.1 * r
        arm = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
               (-a, -a)]
        if shape == "cross":
            c = math.sqrt(0.5)
            arm = [(c * (px - py), c * (px + py)) for px, py in arm]
        return poly(arm)
    return (f"M{x - r:.2f},{y:.2f}a{r:.2f},{r:.2f} 0 1,0 {2 * r:.2f},0"
            f"a{r:.2f},{r:.2f} 0 1,0 {-2 * r:.2f},0Z")


def marker(shape: str, x: float, y: float, r: float, colour: str, model: str, title: str = "",
           cls: str = "mark") -> str:
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (f'<path class="{cls}" data-model="{esc(model)}" d="{marker_path(shape, x, y, r)}" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="0.8">{tip}</path>')


def swatch(model: str, colour: str, shape: str, size: int = 12) -> str:
    """A table's marker for a row: the chart's colour and marker, as a small inline SVG."""
    half = size / 2
    return (f'<svg class="swatch" width="{size}" height="{size}" viewBox="0 0 {size} {size}" aria-hidden="true">'
            f'{marker(shape, half, half, half - 1.5, colour, model)}</svg>')


# --- a chart ----------------------------------------------------------------------------------
WIDTH = 390  # three charts side by side in a 1280 px window, its scroll bar included
TITLE_SIZE, TICK_SIZE, LABEL_SIZE, POINT_LABEL_SIZE, LEGEND_SIZE, NOTE_SIZE = 12, 10, 10.5, 9.5, 9.5, 9
PLOT_HEIGHT = 210
LEFT, RIGHT = 50, 14  # room for the y tick labels and the axis label; the right edge


@dataclass
class LegendEntry:
    label: str
    glyph: str  # SVG drawn in a 12 x 12 box at the origin
    title: str = ""


@dataclass
class Chart:
    """A chart assembled top to bottom: the title, the plot frame (data drawn by the caller in
    its pixel coordinates), the x axis, the legend, notes."""

    title: str
    x_label: str
    y_label: str
    parts: list[str] = field(default_factory=list)  # data, drawn inside the frame
    legend: list[LegendEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.title_lines = wrap(self.title, TITLE_SIZE, WIDTH - 16, max_lines=3)
        self.top = 8 + len(self.title_lines) * (TITLE_SIZE + 3) + 8
        self.frame = Box(LEFT, self.top, WIDTH - RIGHT, self.top + PLOT_HEIGHT)

    def render(self, x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]]) -> str:
        f = self.frame
        out = []
        for n, line in enumerate(self.title_lines):
            out.append(f'<text class="title" x="{WIDTH / 2}" y="{8 + TITLE_SIZE + n * (TITLE_SIZE + 3):.1f}" '
                       f'text-anchor="middle" font-size="{TITLE_SIZE}">{esc(line)}</text>')
        for y, text in y_ticks:
            out.append(f'<line x1="{f.left}" x2="{f.right}" y1="{y:.2f}" y2="{y:.2f}" stroke="#e5e5e5"/>')
            out.append(f'<text class="tick" x="{f.left - 5}" y="{y + TICK_SIZE * 0.35:.2f}" text-anchor="end" '
                       f'font-size="{TICK_SIZE}">{esc(text)}</text>')
        for x, text in x_ticks:
            out.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{f.top}" y2="{f.bottom}" stroke="#eeeeee"/>')
            out.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{f.bottom}" y2="{f.bottom + 4}" stroke="#555555"/>')
            out.append(f'<text class="tick" x="{x:.2f}" y="{f.bottom + 6 + TICK_SIZE:.2f}" text-anchor="middle" '
                       f'font-size="{TICK_SIZE}">{esc(text)}</text>')
        out.append(f'<rect class="frame" x="{f.left}" y="{f.top}" width="{f.right - f.left}" '
                   f'height="{f.bottom - f.top}" fill="none" stroke="#888888"/>')
        middle = (f.top + f.bottom) / 2
        out.append(f'<text class="axis" x="{14}" y="{middle:.1f}" transform="rotate(-90 14 {middle:.1f})" '
                   f'text-anchor="middle" font-size="{LABEL_SIZE}">{esc(fit(self.y_label, LABEL_SIZE, PLOT_HEIGHT))}'
                   "</text>")
        y = f.bottom + 6 + TICK_SIZE + 8 + LABEL_SIZE
        out.append(f'<text class="axis" x="{(f.left + f.right) / 2:.1f}" y="{y:.1f}" text-anchor="middle" '
                   f'font-size="{LABEL_SIZE}">{esc(fit(self.x_label, LABEL_SIZE, WIDTH - 16))}</text>')
        out += self.parts
        y += 10
        legend, y = self._legend(y)
        out += legend
        for note in self.notes:
            for line in wrap(note, NOTE_SIZE, WIDTH - 16, max_lines=8):
                y += NOTE_SIZE + 3
                out.append(f'<text class="chart-note" x="8" y="{y:.1f}" font-size="{NOTE_SIZE}" fill="#555555">'
                           f"{esc(line)}</text>")
        height = math.ceil(y + 8)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" '
                f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT_FAMILY}" fill="#1d1d1f" role="img">'
                f"<title>{esc(self.title)}</title>" + "".join(out) + "</svg>\n")

    def _legend(self, y: float) -> tuple[list[str], float]:
        """The legend's entries in reading order, a new line where the next would not fit
        (an entry wider than a line is cut); returns (SVG parts, its bottom)."""
        if not self.legend:
            return [], y
        usable, gap, line = WIDTH - 16, 12, LEGEND_SIZE + 6
        out, x, top = ['<g class="legend">'], 0.0, y
        for entry in self.legend:
            label = fit(entry.label, LEGEND_SIZE, usable - 16)
            width = 16 + text_width(label, LEGEND_SIZE)
            if x and x + width > usable:
                x, top = 0.0, top + line
            tip = f"<title>{esc(entry.title or entry.label)}</title>"
            out.append(f'<g class="entry" transform="translate({8 + x:.1f} {top:.1f})">{tip}{entry.glyph}'
                       f'<text x="16" y="{LEGEND_SIZE - 0.5:.1f}" font-size="{LEGEND_SIZE}">{esc(label)}</text></g>')
            x += width + gap
        out.append("</g>")
        return out, top + line


def legend_marker(shape: str, colour: str, model: str, line: bool = False) -> str:
    """A legend's glyph: the marker (on a short line for a line chart)."""
    stroke = (f'<line data-model="{esc(model)}" x1="0" x2="12" y1="6" y2="6" stroke="{colour}" '
              f'stroke-width="1.5"/>') if line else ""
    return stroke + marker(shape, 6, 6, 4, colour, model, cls="key")


def place_label(text: str, x: float, y: float, r: float, frame: Box, taken: list[Box],
                avoid: list[Box] = ()) -> tuple[str, Box] | None:
    """A label for the point at (x, y): the first spot around it (right, left, above, below,
    then the corners, then twice as far) whose box stays inside ``frame`` and meets none of
    ``taken`` (text, markers) and, if any spot allows, none of ``avoid`` (lines); (SVG text,
    its box), or None when no spot is free."""
    size = POINT_LABEL_SIZE
    d = r + 3
    fallback = None  # the first spot that only crosses a line
    for far in (1, 2.2):
        for dx, dy, anchor in ((d, 0.35 * size, "start"), (-d, 0.35 * size, "end"), (0, -d, "middle"),
                               (0, d + 0.9 * size, "middle"), (d, -d, "start"), (d, d + 0.8 * size, "start"),
                               (-d, -d, "end"), (-d, d + 0.8 * size, "end")):
            lx, ly = x + far * dx, y + (far * dy if dy < 0 else dy + (far - 1) * d)
            box = text_box(lx, ly, text, size, anchor)
            if not box.inside(frame) or any(box.meets(t, 1.0) for t in taken):
                continue
            spot = (f'<text class="label" x="{lx:.2f}" y="{ly:.2f}" text-anchor="{anchor}" '
                    f'font-size="{size}">{esc(text)}</text>'), box
            if not any(box.meets(a) for a in avoid):
                return spot
            fallback = fallback or spot
    return fallback


def thin_ticks(ticks: list[tuple[float, str]], size: float = TICK_SIZE, gap: float = 8) -> list[tuple[float, str]]:
    """Every k-th tick, the smallest k at which no two labels come closer than ``gap`` px; a
    tick whose label would cross the picture's edge is left out first."""
    ticks = [(x, text) for x, text in ticks if 2 <= text_box(x, 0, text, size, "middle").left
             and text_box(x, 0, text, size, "middle").right <= WIDTH - 2]
    for step in range(1, max(2, len(ticks) + 1)):
        kept = ticks[::step]
        boxes = [text_box(x, 0, text, size, "middle") for x, text in kept]
        if all(a.right + gap <= b.left for a, b in zip(boxes, boxes[1:])):
            return kept
    return ticks[:1]


def nice_top(value: float) -> float:
    """The accuracy axis' top in %: the smallest of 1, 2, 5, 10, 20, 30, ..., 100 at or above
    ``value`` (a chart of values near 1% still shows them apart)."""
    for top in (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100):
        if value <= top + 1e-9:
            return float(top)
    return 100.0


def y_ticks(top: float) -> list[float]:
    """The accuracy axis' ticks in % from 0 to ``top`` (a ``nice_top``): five to ten of them."""
    step = {1: 0.2, 2: 0.5, 5: 1, 10: 2}.get(int(top), 10 if top <= 60 else 20)
    count = int(round(top / step))
    return [round(k * step, 6) for k in range(count + 1)]


def percent(value: float) -> str:
    """A tick's label: 20, 0.5."""
    return f"{value:g}" if value >= 1 or value == 0 else f"{value:.1g}"
