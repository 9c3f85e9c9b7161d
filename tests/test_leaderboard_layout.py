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
    site = leaderboard.build(REPO / "leaderboard" / "results", tmp_path / "site")
    assert_site_reads_well(tmp_path / "site", tmp_path / "profile", 25, {r["model"] for r in site.rows})


LONG = "recursive-reasoning-model-with-an-uncommonly-long-name-that-goes-on-and-on-and-on-without-a-single-space"


def hostile_results(results: Path) -> None:
    """The fixture records, and a Sudoku mini track of 30 models: long names with and without
    spaces, markup, wide characters, each with curves, difficulty buckets and an OOD split."""
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


@needs_chromium
def test_a_hostile_leaderboard_reads_well_at_1280_px(tmp_path):
    hostile_results(tmp_path / "res")
    site = leaderboard.build(tmp_path / "res", tmp_path / "site")
    sudoku = [r for r in site.rows if r["task"] == "sudoku" and r["track"] == "mini"]
    assert len(sudoku) >= 30 and not site.skipped
    assert_site_reads_well(tmp_path / "site", tmp_path / "profile", 10, {r["model"] for r in site.rows})
