"""The built site's layout, read in a real headless Chromium at 1280 px: nothing wider than the
window, no text over other text, chart text clear of the plot frame and inside its picture,
every chart inline with a tooltip on each point and line, and one colour per model across every
page. Checked on the site of the committed records and on a hostile one (long names, many rows)."""

import json
import shutil
from pathlib import Path

import pytest

from reasonbench import leaderboard

from .test_leaderboard import FIXTURES, Chromium, make_record, put
from .test_leaderboard_testtime import SETTINGS, ttc_record

REPO = Path(__file__).resolve().parent.parent

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="chromium is not installed (Debian package `chromium`; .ci/run installs it)")

# Run in each page: every <details> opened (what a reader can unfold is checked too), then the
# boxes the browser laid out. Text boxes: each line of each HTML text node (a Range's client
# rects) and each SVG <text>; two that intersect by more than half a pixel overlap.
LAYOUT = r"""(() => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const root = document.body || document.documentElement;  // a page, or a chart's own SVG file
  const width = document.documentElement.clientWidth;
  const name = el => {
    const text = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
    return `${el.tagName.toLowerCase()}${el.className && typeof el.className === "string" ? "." + el.className : ""}` +
           (text ? ` "${text}"` : "");
  };
  const meets = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const inside = (a, b) => a.left >= b.left - 0.5 && a.right <= b.right + 0.5 && a.top >= b.top - 0.5 && a.bottom <= b.bottom + 0.5;
  const found = {overflow: [], scrolls: [], overlaps: [], frame: [], clipped: [], untitled: [], images: [],
                 colours: {}, charts: document.body ? document.querySelectorAll("svg.chart").length : 0,
                 pageWidth: document.documentElement.scrollWidth, width};
  for (const el of root.querySelectorAll("*")) {
    if (el.closest("svg") && !(el instanceof SVGSVGElement)) continue;  // inside a picture: its text is checked below
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > width + 0.5 || r.left < -0.5) found.overflow.push(name(el));
    const style = getComputedStyle(el);
    if (style.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) found.scrolls.push(name(el));
  }
  const boxes = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!node.textContent.trim() || parent.closest("svg, script, style")) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) if (r.width > 0 && r.height > 0) boxes.push([r, node.textContent.trim().slice(0, 40)]);
  }
  for (const svg of [...(root instanceof SVGSVGElement ? [root] : []), ...root.querySelectorAll("svg")]) {
    const picture = svg.getBoundingClientRect();
    const frame = svg.querySelector(".frame");
    const area = frame && frame.getBoundingClientRect();
    for (const t of svg.querySelectorAll("text")) {
      if (!t.textContent.trim()) continue;
      const r = t.getBoundingClientRect();
      boxes.push([r, t.textContent.trim().slice(0, 40)]);
      if (!inside(r, picture)) found.clipped.push(t.textContent);
      if (area && meets(r, area) && !inside(r, area)) found.frame.push(t.textContent);
    }
    if (svg.classList.contains("chart")) {
      for (const el of svg.querySelectorAll(".mark, .line"))
        if (!el.querySelector("title")) found.untitled.push(el.getAttribute("data-model"));
    }
  }
  boxes.sort((a, b) => a[0].top - b[0].top);
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length && boxes[j][0].top < boxes[i][0].bottom - 0.5; j++)
      if (meets(boxes[i][0], boxes[j][0])) found.overlaps.push([boxes[i][1], boxes[j][1]]);
  for (const el of document.querySelectorAll("[data-model]")) {
    const style = getComputedStyle(el);
    const paint = el instanceof SVGLineElement || el instanceof SVGPolylineElement ? style.stroke : style.fill;
    (found.colours[el.getAttribute("data-model")] ||= []).push(paint);
  }
  for (const img of document.images)
    if (/\.svg$/.test(img.getAttribute("src") || "")) found.images.push(img.getAttribute("src"));
  return found;
})()"""


def layout_problems(site: Path, profile: Path) -> tuple[dict[str, dict], dict[str, set[str]], int]:
    """Each page's and chart file's broken rules ({file: {rule: what}}), each model's colours over
    the whole site, and how many charts the pages hold inline; one browser for the whole site."""
    browser = Chromium(profile)
    broken, colours, charts = {}, {}, 0
    try:
        for page in sorted(site.glob("*.html")) + sorted(site.glob("plots/*.svg")):
            browser.open(page)
            found = browser.js(LAYOUT)
            charts += found["charts"]
            for model, paints in found["colours"].items():
                colours.setdefault(model, set()).update(paints)
            rules = {"wider than the window": found["overflow"] + (
                         [f"page {found['pageWidth']} px"] if found["pageWidth"] > found["width"] else []),
                     "scrolls sideways or cut": found["scrolls"], "text over text": found["overlaps"],
                     "text across the plot frame": found["frame"], "text outside its picture": found["clipped"],
                     "point or line without a tooltip": found["untitled"], "chart not inline": found["images"]}
            rules = {rule: what[:10] for rule, what in rules.items() if what}
            if rules:
                broken[str(page.relative_to(site))] = rules
            assert browser.problems() == []
    finally:
        browser.close()
    return broken, colours, charts


def assert_site_reads_well(site: Path, profile: Path, min_charts: int, models: set[str]) -> None:
    broken, colours, charts = layout_problems(site, profile)
    assert not broken, json.dumps(broken, indent=1, ensure_ascii=False)
    assert charts >= min_charts
    assert set(colours) >= models, set(colours) ^ models  # every model is drawn or marked somewhere
    several = {model: paints for model, paints in colours.items() if len(paints) != 1}
    assert not several, several


@needs_chromium
def test_the_committed_leaderboard_reads_well_at_1280_px(tmp_path):
    site = leaderboard.build(REPO / "leaderboard" / "results", tmp_path / "site", docs=REPO / "docs")
    assert_site_reads_well(tmp_path / "site", tmp_path / "profile", 25, {r["model"] for r in site.rows})


LONG = "recursive-reasoning-model-with-an-uncommonly-long-name-that-goes-on-and-on-and-on-without-a-single-space"


def hostile_results(results: Path) -> None:
    """The fixture records, and a Sudoku mini track of 30 models: long names with and without
    spaces, markup, wide characters, each with curves, difficulty buckets and an OOD split; six
    of them evaluated at other depths and breadths too."""
    shutil.copytree(FIXTURES, results)
    names = [LONG, LONG + "-2", "a model name with many words that wraps over several lines of its cell " * 2,
             "<b>bold</b> & 'quoted'", "模型名称很长的模型名称很长的模型名称很长的模型名称", "trm", "hrm", "cmm"]
    names += [f"model-{i:02d}" for i in range(30 - len(names))]
    for i, name in enumerate(names):
        for seed in (0, 1):
            correct = (7 * i + 3 * seed) % 60
            record = make_record(model=name, seed=seed, correct=correct, n=60)
            curve = [correct / 60 * f for f in (0.3, 0.6, 0.9, 1.0)]
            record["metrics"]["by_step"] = {"exact": curve, "token": curve, "halted": None, "residual": None}
            buckets = [("easy", 20, min(20, correct)), ("medium", 20, max(0, correct - 20) // 2),
                       ("a-very-hard-bucket-name", 20, max(0, correct - 40) // 3)]
            record["metrics"]["by_difficulty"] = {"kind": "rating", "buckets": [
                {"name": b, "n_test_examples": n, "exact_correct": k, "exact_accuracy": k / n} for b, n, k in buckets]}
            record["metrics"]["ood"] = {"n_test_examples": 10, "exact_correct": seed, "exact_accuracy": seed / 10}
            record["device"] = "cpu " + "x" * (i % 3) * 40
            put(results, record, f"hostile/{i}-{seed}.json")
    # some of them evaluated deeper and wider: the task's test-time compute chart, 30 curves
    for i, name in enumerate(names[:6]):
        for seed in (0, 1):
            for depth, breadth, rule in SETTINGS:
                record = ttc_record(name, seed, depth, breadth, rule, 1e8 * (1 + i), 0.2 + 0.13 * i)
                put(results, record, f"hostile/{i}-{seed}-d{depth}b{breadth}{rule or ''}.json")


@needs_chromium
def test_a_hostile_leaderboard_reads_well_at_1280_px(tmp_path):
    hostile_results(tmp_path / "res")
    site = leaderboard.build(tmp_path / "res", tmp_path / "site")
    sudoku = [r for r in site.rows if r["task"] == "sudoku" and r["track"] == "mini"]
    assert len(sudoku) >= 30 and not site.skipped
    assert_site_reads_well(tmp_path / "site", tmp_path / "profile", 10, {r["model"] for r in site.rows})
    page = (tmp_path / "site" / "task-sudoku.html").read_text()
    curves = sum(1 for r in sudoku if r.get("by_step_exact"))  # each line chart keeps the 12 best-ranked
    assert page.count(f"best-ranked of the {curves} rows that record these values.") == 2  # steps, buckets
    assert f"and {len(sudoku) - 24} more (hover a point)" in page  # the legend names 24; tooltips name all
    assert "sudoku-testtime.svg" in page and not site.warnings


# --- the charts' own geometry (no browser) ------------------------------------------------------
def _row(model: str, accuracy: float, interval: tuple[float, float], params: int = 131_970, **extra) -> dict:
    return {"task": "maze", "track": "mini", "model": model, "preset": "mini", "mode": "train", "settings": "",
            "exact_accuracy_mean": accuracy, "rank_interval": list(interval), "params": params,
            "flops_per_example_forward": 4.2e8 + 1e6 * len(model), "device_hours": 0.1, **extra}


def _parse(text: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(text)


def _texts(root) -> list[tuple[str, object]]:
    """(text, box) of each <text> outside a rotated one, as the chart placed it."""
    from reasonbench.leaderboard import svg

    ns = "{http://www.w3.org/2000/svg}"
    found = []
    for group in root.iter():
        shift = (0.0, 0.0)
        transform = group.get("transform", "")
        if transform.startswith("translate("):
            shift = tuple(float(v) for v in transform[len("translate("):-1].split())
        for t in group.findall(f"{ns}text"):
            if t.get("transform"):
                continue
            box = svg.text_box(float(t.get("x")) + shift[0], float(t.get("y")) + shift[1], t.text,
                               float(t.get("font-size")), t.get("text-anchor", "start"))
            found.append((t.text, box))
    return found


def test_a_model_keeps_its_colour_and_rows_of_one_colour_differ_by_marker():
    from reasonbench.leaderboard import svg

    assert svg.model_colour("trm") == "#1f77b4" and svg.model_colour("hrm") == "#d62728"
    assert svg.model_colour("someone-elses-model") == svg.model_colour("someone-elses-model")
    assert svg.model_colour("someone-elses-model") in svg.OTHER_COLOURS
    assert svg.row_styles(["trm", "hrm", "trm", "trm"]) == [
        ("#1f77b4", "circle"), ("#d62728", "circle"), ("#1f77b4", "square"), ("#1f77b4", "triangle")]


def test_the_error_bars_are_the_rank_intervals_and_every_point_is_named():
    from reasonbench.leaderboard import plots

    rows = [_row("cmm", 0.687, (0.674, 0.70)), _row("trm", 0.543, (0.334, 0.752)), _row("hrm", 0.379, (0.303, 0.455)),
            _row("cgar", 0.47, (0.378, 0.562)), _row("attractor", 0.438, (0.228, 0.647))]  # one cost: four share it
    root = _parse(plots.accuracy_plot(rows, "params", "parameters", "maze, mini track"))
    ns = "{http://www.w3.org/2000/svg}"
    frame = root.find(f".//{ns}rect[@class='frame']")
    top, height = float(frame.get("y")), float(frame.get("height"))
    y_top = max(float(t.text) for t in root.iter(f"{ns}text") if t.get("class") == "tick" and t.get("text-anchor") == "end")
    assert y_top == 80  # the axis ends at the next round number above the highest bar
    bars = {b.get("data-model"): b for b in root.iter(f"{ns}line") if b.get("class") == "bar"}
    for row in rows:
        low, high = row["rank_interval"]
        assert float(bars[row["model"]].get("y1")) == pytest.approx(top + height * (1 - 100 * low / y_top), abs=0.01)
        assert float(bars[row["model"]].get("y2")) == pytest.approx(top + height * (1 - 100 * high / y_top), abs=0.01)
        assert bars[row["model"]].get("stroke") == plots.svg.model_colour(row["model"])
    marks = [m for m in root.iter(f"{ns}path") if m.get("class") == "mark"]
    assert sorted(m.get("data-model") for m in marks) == sorted(r["model"] for r in rows)
    assert all(m.find(f"{ns}title").text.startswith(m.get("data-model") + ": ") for m in marks)
    spans = [(float(b.get("x1")), float(b.get("y2")), float(b.get("y1"))) for b in bars.values()]
    for n, (x, top_y, bottom_y) in enumerate(spans):  # bars at one cost are spread until none covers another
        assert all(abs(x - x2) >= 8 or bottom_y < top2 or bottom2 < top_y for x2, top2, bottom2 in spans[n + 1:])
    assert len({x for x, _, _ in spans}) > 1
    legend = [t.text for t in root.iter(f"{ns}text") if t.text in {r["model"] for r in rows}]
    assert set(legend) == {r["model"] for r in rows}
    assert any(t.text == plots.BAR_NOTE for t in root.iter(f"{ns}text"))


def test_chart_text_never_overlaps_or_crosses_the_frame_even_when_crowded():
    from reasonbench.leaderboard import plots, svg

    rows = [_row(f"model-{i}-" + "x" * (i % 5) * 6, 0.3 + 0.01 * (i % 7), (0.2, 0.5), params=1000 * (1 + i % 3))
            for i in range(30)]
    for key, label, _ in plots.COST_AXES:
        root = _parse(plots.accuracy_plot(rows, key, label, "a title long enough to wrap over two lines " * 2))
        ns = "{http://www.w3.org/2000/svg}"
        frame_el = root.find(f".//{ns}rect[@class='frame']")
        frame = svg.Box(float(frame_el.get("x")), float(frame_el.get("y")),
                        float(frame_el.get("x")) + float(frame_el.get("width")),
                        float(frame_el.get("y")) + float(frame_el.get("height")))
        texts = _texts(root)
        assert any(t.get("class") == "label" for t in root.iter(f"{ns}text"))  # some points named in place
        for n, (text, box) in enumerate(texts):
            assert box.inside(frame) or not box.meets(frame), text
            assert 0 <= box.left and box.right <= svg.WIDTH, text
            for other, other_box in texts[n + 1:]:
                assert not box.meets(other_box), (text, other)


def test_ticks_stand_apart_with_si_prefixes():
    from reasonbench.leaderboard import plots

    # 400M and 450M: a span too short for two of 1, 2, 5 per decade; every multiple, thinned to fit
    rows = [_row("a", 0.5, (0.4, 0.6)) | {"flops_per_example_forward": 4.0e8},
            _row("b", 0.4, (0.3, 0.5)) | {"flops_per_example_forward": 4.5e8}]
    root = _parse(plots.accuracy_plot(rows, "flops_per_example_forward", "FLOPs", "t"))
    ticks = [(text, box) for text, box in _texts(root) if text[-1] == "M"]
    assert [t for t, _ in ticks] == ["300M", "400M", "500M", "600M", "700M"]
    assert all(a.right + 8 <= b.left for (_, a), (_, b) in zip(ticks, ticks[1:]))
    wide = [_row("a", 0.5, (0.4, 0.6)) | {"params": 1000}, _row("b", 0.4, (0.3, 0.5)) | {"params": 12_000_000}]
    ticks = [text for text, _ in _texts(_parse(plots.accuracy_plot(wide, "params", "parameters", "t")))
             if text[-1] in "kM"]
    assert ticks == ["1k", "10k", "100k", "1M", "10M"]


def test_a_chart_with_nothing_to_show_is_one_sentence():
    from reasonbench.leaderboard import plots

    zero = [_row("trm", 0.0, (0.0, 0.0), ood_by_step_exact=[0.0, 0.0, 0.0]),
            _row("hrm", 0.0, (0.0, 0.0), ood_by_step_exact=[0.0, 0.0, 0.0])]
    for chart in (plots.accuracy_plot(zero, "params", "parameters", "maze, mini track"),
                  plots.ood_depth_plot(zero, "maze, mini track: OOD")):
        assert isinstance(chart, plots.Empty) and "0.0%" in chart and "<" not in chart


def test_a_headline_the_curve_does_not_show_is_noted():
    from reasonbench.leaderboard import plots

    curve = [0.294, 0.371, 0.379]
    rows = [_row("aug-hrm", 0.438, (0.4, 0.47), by_step_exact=curve), _row("hrm", 0.379, (0.3, 0.45), by_step_exact=curve),
            _row("trm", 0.543, (0.3, 0.7), by_step_exact=[0.3, 0.5, 0.543])]
    text = plots.depth_plot(rows, "maze, mini track: exact accuracy after each reasoning step")
    notes = " ".join(t.text for t in _parse(text).iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "chart-note")
    assert "aug-hrm: the table's exact % (43.8) is not this curve's last step (37.9)" in notes
    assert "aug-hrm and hrm have the same values" in notes and "trm:" not in notes


def test_every_ranked_row_carries_the_interval_its_rank_is_decided_on():
    from reasonbench.leaderboard.load import collect
    from reasonbench.leaderboard.rank import aggregate

    found, skipped = collect(FIXTURES)
    rows = aggregate(found, skipped, FIXTURES)
    ranked = [r for r in rows if r["rank"]]
    assert ranked and all(r["rank_interval"][0] - 1e-12 <= r["exact_accuracy_mean"] <= r["rank_interval"][1] + 1e-12
                          for r in ranked)  # Wilson's lower bound at 0 right is 2e-19, not 0
    assert all(r["rank_interval"] is None for r in rows if not r["rank"])
