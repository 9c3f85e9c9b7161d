"""Leaderboard rows -> Markdown and static HTML. Every string that comes from a record or from
reported.yaml goes through ``esc`` (HTML) or ``md`` (Markdown); pages carry a Content Security
Policy that allows only their own script and style, so even a missed escape runs nothing."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from importlib import resources
from typing import Any, Callable

from ..errors import UserError
from .records import GENERATED_DATA, REAL_DATA, depth_track, one_line, track_sort_key

TRACK_NOTES = {
    "mini": ("small CPU settings, run on a 2-core development machine (each record names its CPU); CI re-runs "
             "TRM on Sudoku and requires the committed count: a check that the models learn, not their headline "
             "numbers"),
    "budget": "equal device time for every model",
    "paper": "the papers' own settings (presets paper and tiny)",
}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# backslash-escaped: links and images ([x](url), ![](url), [x][ref]), code spans, emphasis,
# strikethrough, GitHub's math ($), column breaks; & < > become entities (no HTML, no <autolink>)
MARKDOWN_ESCAPES = {**{c: "\\" + c for c in "\\`*_[]|~$"}, "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md(value: Any) -> str:
    """Text for a Markdown table cell or heading: one line, no column break, no HTML, no
    Markdown syntax (it reads as the text itself)."""
    text = one_line(re.sub(r"\s+", " ", str(value)), 200)
    return "".join(MARKDOWN_ESCAPES.get(c, c) for c in text)


def slug(name: str) -> str:
    """A file-name part for a task or track name (names come from records)."""
    clean = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "x"
    return clean if clean == name else f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def task_page(task: str) -> str:
    return f"task-{slug(task)}.html"


# --- numbers -------------------------------------------------------------------------------
def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def si(x: float | None) -> str:
    """1234567 -> 1.23M; FLOPs span twelve orders of magnitude."""
    if x is None:
        return "-"
    for factor, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g}{suffix}"
    return f"{x:.3g}"


def model_label(row: dict[str, Any]) -> str:
    """Model name, with its preset when the track holds several, the settings its runs were given
    beyond the preset, and (eval) for checkpoint tests."""
    depth = depth_track(row["track"])  # only evaluations: its name says so
    # the track named after the preset, whatever its data kind ("mini (real data)" holds mini)
    named = {name.removesuffix(GENERATED_DATA).removesuffix(REAL_DATA) for name in (row["track"], depth and depth[0]) if name}
    preset = "" if row["preset"] in named else f" ({row['preset']})"
    mark = f" {OTHER_TEST_DATA_MARK}" if row.get("test_data_differs") else ""
    settings = f" [{row['settings']}]" if row.get("settings") else ""  # given beyond the preset
    return f"{row['model']}{preset}{settings}{' (eval)' if row['mode'] == 'eval' and not depth else ''}{mark}"


OTHER_TEST_DATA_MARK = "†"


def other_test_data_note(rows: list[dict[str, Any]]) -> str | None:
    """The footnote of a track's table where a row was scored on other test examples."""
    if not any(r.get("test_data_differs") for r in rows):
        return None
    return (f"{OTHER_TEST_DATA_MARK} scored on other test examples than the rest of this track (the records' "
            "test-split fingerprints differ, e.g. other data options under the same preset): its accuracy does "
            "not compare with the other rows'.")


def accuracy_text(row: dict[str, Any]) -> str:
    if row["exact_accuracy_mean"] is None:
        return "diverged"
    std = "" if row["exact_accuracy_std"] is None else f" ± {pct(row['exact_accuracy_std'])}"
    return pct(row["exact_accuracy_mean"]) + std


def interval_text(row: dict[str, Any], key: str = "exact_accuracy_ci95") -> str:
    ci = row.get(key)
    return "-" if ci is None else f"{pct(ci[0])}–{pct(ci[1])}"


def rank_text(row: dict[str, Any]) -> str:
    """"2" where the row's place is clear, "1–3" where its interval overlaps others'."""
    rank = row.get("rank")
    if not rank:
        return "-"
    return str(rank[0]) if rank[0] == rank[1] else f"{rank[0]}–{rank[1]}"


def ood_text(row: dict[str, Any]) -> str:
    """Exact accuracy out of distribution (the task's OOD split; see the record's definition)."""
    return "-" if row.get("ood_accuracy") is None else f"{100 * row['ood_accuracy']:.1f} (n={row['ood_examples']:,})"


def seeds_text(row: dict[str, Any]) -> str:
    return f"{len(row['seeds'])}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")


def device_text(row: dict[str, Any]) -> str:
    return ("" if row["device_count"] == 1 else f"{row['device_count']} x ") + row["device"]


def commit_text(row: dict[str, Any]) -> str:
    """The row's commit, short; a row whose seeds were run at several commits says how many."""
    commits = row["git_commits"]
    return commits[0][:10] if len(commits) == 1 else f"{len(commits)} commits" if commits else "-"


# --- Markdown ------------------------------------------------------------------------------
def markdown(rows: list[dict[str, Any]], reported: list[dict[str, Any]]) -> str:
    """Measured tables per task and track, then each task's reported figures in a table apart."""
    lines = ["# reasonbench leaderboard", "",
             "Exact accuracy in %: mean ± std over seeds; 95% interval: Wilson, pooled over every test "
             "example of every seed; over seeds: the t-interval of the mean (two seeds or more). Rank: a range "
             "where a row's interval (the wider of the two) overlaps others', so rows that share a rank are not "
             "told apart by these runs. OOD: exact % on the task's out-of-distribution split (harder than any "
             "training example; its definition is in the records). Reported figures are the papers' own, "
             "not measured here.", ""]
    for task in sorted({r["task"] for r in rows} | {e["task"] for e in reported}):
        lines += [f"## {md(task)}", ""]
        task_rows = [r for r in rows if r["task"] == task]
        for track_name in sorted({r["track"] for r in task_rows}, key=track_sort_key):
            lines += [f"### {md(track_name)} track", "",
                      "| rank | model | exact % | 95% interval | over seeds | OOD exact % | seeds | params (+extra) "
                      "| FLOPs/example | train FLOPs | device-hours | device | commit | date |",
                      "|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
            lines += [markdown_row(r) for r in task_rows if r["track"] == track_name]
            lines.append("")
            note = other_test_data_note([r for r in task_rows if r["track"] == track_name])
            if note:
                lines += [note, ""]
        task_reported = [e for e in reported if e["task"] == task]
        if task_reported:
            lines += [f"### {md(task)}: reported in papers (not measured here)", "",
                      "| model | benchmark | params | reported % | note | source |", "|---|---|---:|---:|---|---|"]
            for e in task_reported:
                lines.append(f"| {md(e['model'])} | {md(e['benchmark'])} | {md(e['params'])} | {e['accuracy']:g} | "
                             f"{md(reported_note(e))} | [{md(e['source'])}]({md(e['url'])}) |")
            lines.append("")
    if not rows:
        lines += ["No measured results yet (smoke runs are never listed).", ""]
    return "\n".join(lines)


# A project README embeds the Markdown between these lines (`reasonbench leaderboard --readme`).
README_BEGIN = "<!-- begin generated leaderboard"
README_END = "<!-- end of generated leaderboard -->"


def readme_section(markdown_text: str) -> str:
    """The leaderboard's Markdown as a README section: no title of its own, every heading one
    level down, so it sits under the README's own "## Leaderboard"."""
    lines = markdown_text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return "\n".join("#" + line if line.startswith("#") else line for line in lines).rstrip("\n") + "\n"


def embed_in_readme(readme_text: str, section: str, name: str, begin: str = README_BEGIN,
                    end: str = README_END) -> str:
    """``readme_text`` with the lines between its ``begin`` line (a prefix) and ``end`` line replaced
    by ``section``; UserError naming ``name`` when the markers are missing, repeated or out of order."""
    lines = readme_text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.startswith(begin)]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        found = f"{len(begins)} begin and {len(ends)} end lines" if len(begins) != 1 or len(ends) != 1 \
            else "the end line before the begin line"
        raise UserError(f"--readme {name}: expected one line starting '{begin}' and, after it, one line "
                        f"'{end}'; found {found}")
    return "".join(lines[:begins[0] + 1]) + section + "".join(lines[ends[0]:])


def markdown_row(r: dict[str, Any]) -> str:
    """One measured row of a Markdown table."""
    extra = f" (+{r['params_extra']:,})" if r["params_extra"] else ""
    return (f"| {rank_text(r)} | {md(model_label(r))} | {accuracy_text(r)} | {interval_text(r)} | "
            f"{interval_text(r, 'exact_accuracy_seed_ci95')} | {ood_text(r)} | {seeds_text(r)} | "
            f"{r['params']:,}{extra} | {si(r['flops_per_example_forward'])} | {si(r['train_flops'])} | "
            f"{r['device_hours']:.3g} | {md(device_text(r))} | {md(commit_text(r))} | "
            f"{md(r['finished'][:10])} |")


def reported_note(entry: dict[str, Any]) -> str:
    flags = (["oracle: uses the labels"] if entry["oracle"] else []) + ([] if entry["verified"] else ["unverified"])
    return "; ".join(flags + ([entry["note"]] if entry["note"] else []))


# --- HTML ----------------------------------------------------------------------------------
def _static(name: str) -> str:
    return resources.files("reasonbench.leaderboard").joinpath("static", name).read_text()


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def page(title: str, body: str, tasks: list[str]) -> str:
    """A whole HTML document: inline style and script (works from file://, no requests)."""
    css, js = _static("style.css"), _static("sort.js")
    policy = f"default-src 'none'; img-src 'self' data:; style-src '{_sha256(css)}'; script-src '{_sha256(js)}'"
    nav = " ".join(f'<a href="{esc(task_page(t))}">{esc(t)}</a>' for t in tasks)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{esc(title)}</title>
<style>{css}</style>
</head>
<body>
<header><h1>{esc(title)}</h1><nav><a href="index.html">overview</a> {nav}
<a href="leaderboard.json">leaderboard.json</a> <a href="leaderboard.md">leaderboard.md</a></nav></header>
<main>
{body}
</main>
<script>{js}</script>
</body>
</html>
"""


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


# (header, cell class, cell text, sort value or None for text sorting)
Column = tuple[str, str, Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], Any] | None]
MEASURED_COLUMNS: list[Column] = [
    ("rank", "num", lambda r: esc(rank_text(r)), lambda r: r["rank"][0] if r.get("rank") else None),
    ("model", "model", lambda r: esc(model_label(r)), None),
    ("exact % (mean ± std)", "num", lambda r: esc(accuracy_text(r)), lambda r: r["exact_accuracy_mean"]),
    ("95% interval", "num", lambda r: esc(interval_text(r)),
     lambda r: r["exact_accuracy_ci95"][0] if r["exact_accuracy_ci95"] else None),
    ("over seeds", "num", lambda r: esc(interval_text(r, "exact_accuracy_seed_ci95")),
     lambda r: r["exact_accuracy_seed_ci95"][0] if r.get("exact_accuracy_seed_ci95") else None),
    ("OOD exact %", "num", lambda r: f'<span title="{esc(r.get("ood_definition") or "")}">{esc(ood_text(r))}</span>',
     lambda r: r.get("ood_accuracy")),
    ("seeds", "num", lambda r: esc(seeds_text(r)), lambda r: len(r["seeds"])),
    ("params", "num", lambda r: f"{r['params']:,}", lambda r: r["params"]),
    ("FLOPs / example", "num", lambda r: si(r["flops_per_example_forward"]), lambda r: r["flops_per_example_forward"]),
    ("training FLOPs", "num", lambda r: si(r["train_flops"]), lambda r: r["train_flops"]),
    ("device-hours", "num", lambda r: f"{r['device_hours']:.3g}", lambda r: r["device_hours"]),
    ("run", "run", lambda r: run_details(r), None),
]


def run_details(row: dict[str, Any]) -> str:
    """The secondary facts of a row, folded (the table fits a laptop's width): extra
    parameters, device, commit, date and the resolved config."""
    return ('<details><summary>more</summary><dl>'
            f"<dt>extra params</dt><dd>{row['params_extra']:,}</dd>"
            f"<dt>device</dt><dd>{esc(device_text(row))}</dd>"
            f'<dt>commit</dt><dd><code title="{esc(" ".join(row["git_commits"]))}">{esc(commit_text(row))}</code></dd>'
            f"<dt>date</dt><dd>{esc(row['finished'][:10])}</dd>"
            f'<dt>config</dt><dd><a href="{esc(row["config"])}">config</a></dd></dl></details>')


def measured_table(rows: list[dict[str, Any]]) -> str:
    """One track's rows (in its order): each model's name after its colour and marker on the
    track's charts."""
    from . import svg

    head = "".join(f'<th scope="col" class="{cls}"{" data-unsorted" if name == "run" else ""}>{esc(name)}</th>'
                   for name, cls, _, _ in MEASURED_COLUMNS)  # folded details: nothing to sort by
    body = []
    for row, (colour, shape) in zip(rows, svg.row_styles([r["model"] for r in rows])):
        cells = []
        for name, cls, text, sort in MEASURED_COLUMNS:
            sort_attr = "" if sort is None else f' data-sort="{esc(_num(sort(row)))}"'
            mark = svg.swatch(row["model"], colour, shape) if name == "model" else ""
            cells.append(f'<td class="{cls}"{sort_attr}>{mark}{text(row)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = other_test_data_note(rows)
    return (f'<div class="fit"><table class="sortable measured"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n' + "\n".join(body) + "\n</tbody></table></div>"
            + (f'<p class="note">{esc(note)}</p>' if note else ""))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: many pairs tested at once, 5% stays 5% for them all."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_table(rows: list[dict[str, Any]]) -> str:
    """The pairwise exact McNemar tests of one track's rows on the same test examples."""
    def key(row_or_pair: dict[str, Any]) -> tuple:
        return tuple(row_or_pair.get(k, "") for k in ("model", "preset", "mode", "settings"))

    labels = {key(r): model_label(r) for r in rows}
    pairs = [(r, p) for r in rows for p in r.get("paired", []) if key(p) in labels]
    if not pairs:
        return ""
    adjusted = holm([p["p"] for _, p in pairs])
    body = "".join(
        f'<tr><td class="model">{esc(model_label(r))}</td><td class="model">{esc(labels[key(p)])}'
        f'</td><td class="num">{esc(", ".join(map(str, p["seeds"])))}</td><td class="num">{p["only_this"]:,}</td>'
        f'<td class="num">{p["only_other"]:,}</td><td class="num">{p["p"]:.3g}</td><td class="num">{q:.3g}</td>'
        f'<td>{"yes" if q < 0.05 else "no"}</td></tr>\n'
        for (r, p), q in zip(pairs, adjusted))
    head = "".join(f'<th scope="col">{h}</th>' for h in (
        "model", "against", "seeds", "only it right", "only the other right", "p (exact McNemar)", "p (Holm)",
        "differ at 5%"))
    return (f'<details class="paired"><summary>Paired tests on the same test examples</summary>'
            f'<p class="note">{esc(PAIRED_NOTE)}</p><div class="fit"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}</tbody></table></div></details>")


PAIRED_NOTE = ("Each pair of rows scored on the same test examples, over the seeds both ran: the examples only one "
               "of them got exactly right, and the exact McNemar test of whether the two are equally good (Holm's "
               "correction over the pairs of the track). Intervals that overlap can still differ here: the test "
               "pairs each example's two outcomes.")


def reported_table(entries: list[dict[str, Any]]) -> str:
    head = "".join(f'<th scope="col">{h}</th>' for h in ("model", "benchmark", "params", "reported %", "note", "source"))
    body = []
    for e in entries:
        badges = '<span class="badge">reported (paper)</span>'
        if e["oracle"]:
            badges += ' <span class="badge oracle">oracle: uses labels</span>'
        if not e["verified"]:
            badges += ' <span class="badge unverified">unverified</span>'
        body.append(f'<tr><td class="model">{esc(e["model"])} {badges}</td><td>{esc(e["benchmark"])}</td>'
                    f'<td class="num">{esc(e["params"])}</td><td class="num" data-sort="{_num(e["accuracy"])}">'
                    f'{e["accuracy"]:g}</td><td class="model">{esc(e["note"])}</td>'
                    f'<td><a href="{esc(e["url"])}" rel="noopener noreferrer">{esc(e["source"])}</a></td></tr>')
    return (f'<div class="fit"><table class="sortable reported"><thead><tr>{head}</tr></thead>'
            "<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")


def track_heading(track_name: str, level: str) -> str:
    note = TRACK_NOTES.get(track_name.split(" ", 1)[0], "runs of this preset")
    if GENERATED_DATA.strip() in track_name:
        note += "; here on generated look-alike data, not the official data set: not comparable with its track"
    elif REAL_DATA.strip() in track_name:
        note += "; here on real data instead of the track's generated data"
    depth = depth_track(track_name)
    if depth:
        note = (f"the {depth[0]} track's trained checkpoints evaluated for {depth[1]} (test-time depth), "
                "on the test and the out-of-distribution split")
    return f'<{level}>{esc(track_name)} track</{level}><p class="note">{esc(note)}</p>'


REPORTED_NOTE = ("Published figures copied from the papers, not measured by reasonbench: "
                 "not ranked with the rows above and not on any Pareto front.")
HOW_TO_READ = ("Exact accuracy: share of test puzzles answered exactly right, as mean ± sample std over "
               "seeds; 95% interval: Wilson, pooled over every test example of every seed. OOD: exact accuracy "
               "out of distribution (the task's generated OOD split, e.g. more Sudoku blanks or longer maze "
               "paths than any training example; hover for its definition). Costs: parameters "
               "(extra: puzzle embeddings and other per-puzzle state), forward FLOPs per test example, "
               "training FLOPs, device-hours of training and testing. Click a column header to sort.")


def index_body(rows: list[dict[str, Any]], reported: list[dict[str, Any]], tasks: list[str],
               records: int, skipped: int) -> str:
    parts = [f'<p class="note">{esc(HOW_TO_READ)}</p>',
             f'<p class="note">Built from {records:,} result records ({skipped:,} skipped as invalid); '
             "smoke runs are never listed.</p>"]
    for task in tasks:
        parts.append(f'<h2><a href="{esc(task_page(task))}">{esc(task)}</a></h2>')
        task_rows = [r for r in rows if r["task"] == task]
        for track_name in sorted({r["track"] for r in task_rows}, key=track_sort_key):
            parts += [track_heading(track_name, "h3"), measured_table([r for r in task_rows if r["track"] == track_name])]
        if not task_rows:
            parts.append('<p class="note">No measured results yet.</p>')
    if reported:
        parts += ["<h2>Reported in papers (not measured here)</h2>", f'<p class="note">{esc(REPORTED_NOTE)}</p>',
                  reported_table(reported)]
    return "\n".join(parts)


def chart_caption(files: list[str]) -> str:
    """What the drawn charts (their file names, ``-<kind>.svg``) show, and how to read them."""
    kinds = {next((k for k in ("ood-depth", "depth", "difficulty", "params", "flops", "hours")
                   if name.endswith(f"-{k}.svg")), "") for name in files}
    parts = ["Each model has one colour on every chart and table of the site; rows of one colour differ by marker. "
             "Hover a point or a line for its row and values."]
    if kinds & {"params", "flops", "hours"}:
        parts.append("Exact accuracy against cost: the error bar of a point is the interval its rank is decided on; "
                     "the dashed staircase is the Pareto front (no other row is both cheaper and more accurate), its "
                     "points ringed.")
    if kinds & {"depth", "ood-depth"}:
        split = " on the test split and on the OOD split" if "ood-depth" in kinds else ""
        parts.append(f"Exact accuracy after each reasoning step of the evaluation{split} (every segment run, "
                     "whatever the halting head says).")
    if "difficulty" in kinds:
        parts.append("Exact accuracy per difficulty bucket of the test split.")
    return " ".join(parts)


def task_body(task: str, rows: list[dict[str, Any]], reported: list[dict[str, Any]],
              plots: dict[str, list[tuple[str | None, str, str]]], pictures: list[tuple[str, str]]) -> str:
    """One task: per track its table and charts (inline SVG: (file, caption, SVG text) each; a
    chart with nothing to show is (None, caption, a sentence)), then example pictures and the
    papers' figures."""
    parts = [f'<p class="note">{esc(HOW_TO_READ)}</p>']
    for track_name in sorted({r["track"] for r in rows}, key=track_sort_key):
        track_rows = [r for r in rows if r["track"] == track_name]
        parts += [track_heading(track_name, "h2"), measured_table(track_rows), paired_table(track_rows)]
        charts = plots.get(track_name, [])
        drawn = "".join(f'<div class="chart-box">{text}<a class="download" href="{esc(src)}">SVG</a></div>'
                        for src, _, text in charts if src)
        if drawn:
            parts.append(f'<figure><div class="plots">{drawn}</div><figcaption>'
                         f"{esc(chart_caption([src for src, _, _ in charts if src]))}</figcaption></figure>")
        parts += [f'<p class="note chart-empty">{esc(text)}</p>' for src, _, text in charts if not src]
    if not rows:
        parts.append('<p class="note">No measured results yet.</p>')
    if pictures:
        parts.append("<h2>Examples</h2>")
        parts += [f'<figure class="pictures"><img src="{esc(src)}" alt="{esc(caption)}"><figcaption>{esc(caption)}'
                  "</figcaption></figure>" for src, caption in pictures]
    if reported:
        parts += ["<h2>Reported in papers (not measured here)</h2>", f'<p class="note">{esc(REPORTED_NOTE)}</p>',
                  reported_table(reported)]
    return "\n".join(parts)
