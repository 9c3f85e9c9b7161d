"""Leaderboard rows -> Markdown and static HTML. Every string that comes from a record or from
reported.yaml goes through ``esc`` (HTML) or ``md`` (Markdown); pages carry a Content Security
Policy that allows only their own script and style, so even a missed escape runs nothing."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Callable

from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import printable
from reasonbench.leaderboard.tracks import GENERATED_DATA, PARTIAL_MARK, REAL_DATA, depth_track, track_sort_key

TRACK_NOTES = {
    "mini": "small CPU settings: a check that the models learn, not their headline numbers",
    "budget": "equal device time for every model: training stops when the budget is spent",
    "paper": "the papers' own settings (presets paper and tiny)",
}
PARTIAL_NOTE = ("runs whose weights had fewer training steps than their preset plans (an evaluation of an unfinished "
                "checkpoint, or training stopped early): not comparable with the finished runs of the track")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# backslash-escaped: links and images ([x](url), ![](url), [x][ref]), code spans, emphasis,
# strikethrough, GitHub's math ($), column breaks; & < > become entities (no HTML, no <autolink>)
MARKDOWN_ESCAPES = {**{c: "\\" + c for c in "\\`*_[]|~$"}, "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md(value: Any) -> str:
    """Text for a Markdown table cell or heading: one line, no column break, no HTML, no
    Markdown syntax (it reads as the text itself)."""
    text = printable(re.sub(r"\s+", " ", str(value)), 200)
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
    named = {name.split(PARTIAL_MARK)[0].removesuffix(GENERATED_DATA).removesuffix(REAL_DATA)
             for name in (row["track"], depth and depth[0]) if name}
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


def interval_text(row: dict[str, Any], key: str = "rank_interval") -> str:
    ci = row.get(key)
    return "-" if ci is None else f"{pct(ci[0])}–{pct(ci[1])}"


def rank_text(row: dict[str, Any]) -> str:
    """"2" where the row's place is clear, "1–3" where its interval overlaps others', and "(1 seed)"
    after the rank of a row that one seed makes: nothing measures its training noise."""
    rank = row.get("rank")
    if not rank:
        return "-"
    one_seed = " (1 seed)" if len(row["seeds"]) == 1 else ""
    return (str(rank[0]) if rank[0] == rank[1] else f"{rank[0]}–{rank[1]}") + one_seed


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


# --- the measured table's columns, in HTML and in Markdown ----------------------------------
def pass_text(row: dict[str, Any], key: str) -> str:
    """A task-level share (ARC's pass@K) as mean over seeds, "-" where the row has none."""
    return pct(row.get(f"{key}_mean")) if row.get(f"{key}_mean") is not None else "-"


def run_details(row: dict[str, Any]) -> str:
    """The secondary facts of a row, folded (the table fits a laptop's width): extra
    parameters, device, commit, date and the resolved config."""
    return ('<details><summary>more</summary><dl>'
            f"<dt>extra params</dt><dd>{row['params_extra']:,}</dd>"
            f"<dt>device</dt><dd>{esc(device_text(row))}</dd>"
            f'<dt>commit</dt><dd><code title="{esc(" ".join(row["git_commits"]))}">{esc(commit_text(row))}</code></dd>'
            f"<dt>date</dt><dd>{esc(row['finished'][:10])}</dd>"
            f'<dt>config</dt><dd><a href="{esc(row["config"])}">config</a></dd></dl></details>')


@dataclass(frozen=True)
class Column:
    """One column of a track's measured table, the HTML table's and the Markdown table's alike."""

    header: str
    align: str  # "right" (numbers) or "left"
    text: Callable[[dict[str, Any]], str] | None  # a row's cell as plain text, escaped for each format
    sort: Callable[[dict[str, Any]], Any] | None = None  # the HTML table's sort value; None: by the text
    cls: str = ""  # the HTML cell's class (style.css) where it is not "num" for a right-aligned column
    html: Callable[[dict[str, Any]], str] | None = None  # the HTML cell where it is not the escaped text
    markdown_header: str | None = None  # where the Markdown table names it otherwise
    markdown_align: str | None = None  # where the Markdown table aligns it otherwise
    in_html: bool = True
    in_markdown: bool = True

    @property
    def html_class(self) -> str:
        return self.cls or ("num" if self.align == "right" else "")

    def html_cell(self, row: dict[str, Any]) -> str:
        return self.html(row) if self.html else esc(self.text(row))

    def markdown_cell(self, row: dict[str, Any]) -> str:
        return md(self.text(row))


MEASURED_COLUMNS: list[Column] = [
    Column("rank", "right", rank_text, lambda r: r["rank"][0] if r.get("rank") else None),
    Column("model", "left", lambda r: model_label(r), cls="model"),  # model_label looked up at each call
    Column("exact % (mean ± std)", "right", accuracy_text, lambda r: r["exact_accuracy_mean"],
           markdown_header="exact %"),
    Column("95% interval", "right", interval_text, lambda r: r["rank_interval"][0] if r.get("rank_interval") else None,
           markdown_align="left"),  # as leaderboard.md has always aligned it
    Column("OOD exact %", "right", ood_text, lambda r: r.get("ood_accuracy"),
           html=lambda r: f'<span title="{esc(r.get("ood_definition") or "")}">{esc(ood_text(r))}</span>'),
    Column("seeds", "right", seeds_text, lambda r: len(r["seeds"])),
    # the HTML table shows the extra parameters in the row's folded run details
    Column("params", "right", lambda r: f"{r['params']:,}" + (f" (+{r['params_extra']:,})" if r["params_extra"] else ""),
           lambda r: r["params"], html=lambda r: f"{r['params']:,}", markdown_header="params (+extra)"),
    Column("FLOPs / example", "right", lambda r: si(r["flops_per_example_forward"]),
           lambda r: r["flops_per_example_forward"], markdown_header="FLOPs/example"),
    Column("training FLOPs", "right", lambda r: si(r["train_flops"]), lambda r: r["train_flops"],
           markdown_header="train FLOPs"),
    Column("device-hours", "right", lambda r: f"{r['device_hours']:.3g}", lambda r: r["device_hours"]),
    Column("run", "left", None, cls="run", html=run_details, in_markdown=False),
    Column("device", "left", device_text, in_html=False),
    Column("commit", "left", commit_text, in_html=False),
    Column("date", "left", lambda r: r["finished"][:10], in_html=False),
]
PASS_COLUMNS: list[Column] = [
    Column("pass@2 %", "right", lambda r: pass_text(r, "pass@2"), lambda r: r.get("pass@2_mean")),
    Column("pass@1 %", "right", lambda r: pass_text(r, "pass@1"), lambda r: r.get("pass@1_mean")),
]


def table_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """The measured table's columns: where rows are ranked on pass@2 (ARC), pass@2 and pass@1
    come right after the model, before the exact accuracy per test variant."""
    if not any(r.get("headline") == "pass@2" for r in rows):
        return MEASURED_COLUMNS
    exact = [replace(c, header="exact % per variant", markdown_header=None) if c.header.startswith("exact %") else c
             for c in MEASURED_COLUMNS]
    return exact[:2] + PASS_COLUMNS + exact[2:]


# --- Markdown ------------------------------------------------------------------------------
def markdown(rows: list[dict[str, Any]], reported: list[dict[str, Any]]) -> str:
    """Measured tables per task and track, then each task's reported figures in a table apart."""
    lines = ["# reasonbench leaderboard", "",
             "Exact accuracy in %: mean ± std over seeds; 95% interval: of the mean over seeds, with the "
             "training noise (seeds) and the test-set noise (examples) together (the leaderboard's "
             "methodology: docs/leaderboard.md, Statistics); a row of one seed has no measure of its "
             "training noise: its interval is 0–100. "
             "Rank: a range where a row's interval overlaps others', so rows that share a rank are not "
             "told apart by these runs, and rows whose ranges share no rank are. OOD: exact % on the task's "
             "out-of-distribution split (harder than any training example; its definition is in the records). "
             "Reported figures are the papers' own, not measured here.", ""]
    for task in sorted({r["task"] for r in rows} | {e["task"] for e in reported}):
        lines += [f"## {md(task)}", ""]
        task_rows = [r for r in rows if r["task"] == task]
        for track_name in sorted({r["track"] for r in task_rows}, key=track_sort_key):
            track_rows = [r for r in task_rows if r["track"] == track_name]
            lines += [f"### {md(track_name)} track", ""]
            if any(r.get("headline") == "pass@2" for r in track_rows):
                lines += [PASS_NOTE, ""]
            lines += markdown_table(track_rows)
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


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """One track's measured table in Markdown, as lines: the HTML table's columns
    (``table_columns``) less those only HTML shows, with those only Markdown shows."""
    columns = [c for c in table_columns(rows) if c.in_markdown]
    align = "".join("---:|" if (c.markdown_align or c.align) == "right" else "---|" for c in columns)
    return (["| " + " | ".join(c.markdown_header or c.header for c in columns) + " |", "|" + align]
            + [markdown_row(row, columns) for row in rows])


def markdown_row(row: dict[str, Any], columns: list[Column] | None = None) -> str:
    """One measured row of a Markdown table of ``columns`` (the row's own table's by default)."""
    columns = [c for c in (columns or table_columns([row])) if c.in_markdown]
    return "| " + " | ".join(c.markdown_cell(row) for c in columns) + " |"


def reported_note(entry: dict[str, Any]) -> str:
    flags = (["oracle: uses the labels"] if entry["oracle"] else []) + ([] if entry["verified"] else ["unverified"])
    return "; ".join(flags + ([entry["note"]] if entry["note"] else []))


# --- HTML ----------------------------------------------------------------------------------
def _static(name: str) -> str:
    return resources.files("reasonbench.leaderboard").joinpath("static", name).read_text()


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def page(title: str, body: str, tasks: list[str], docs: bool = False) -> str:
    """A whole HTML document: inline style and script (works from file://, no requests);
    ``docs``: the site holds the documentation pages too (a link to them)."""
    css, js = _static("style.css"), _static("sort.js")
    policy = f"default-src 'none'; img-src 'self' data:; style-src '{_sha256(css)}'; script-src '{_sha256(js)}'"
    nav = " ".join(f'<a href="{esc(task_page(t))}">{esc(t)}</a>' for t in tasks)
    docs_link = ' <a href="docs.html">documentation</a>' if docs else ""
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
<a href="leaderboard.json">leaderboard.json</a> <a href="leaderboard.md">leaderboard.md</a>{docs_link}</nav></header>
<main>
{body}
</main>
<script>{js}</script>
</body>
</html>
"""


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


PASS_NOTE = ("Ranked on pass@2, the papers' figure: each task's test inputs are predicted on every augmented "
             "variant, the answers voted on, and a test input counts as solved when one of its two most voted "
             "answers is exactly right; a task scores the share of its test inputs solved, and pass@2 is the mean "
             "over tasks (the reference evaluators' and ARC Prize scoring). pass@1: the same with the single most "
             "voted answer. Exact % per variant: each augmented variant of each test input scored alone, before "
             "any vote.")


def measured_table(rows: list[dict[str, Any]]) -> str:
    """One track's rows (in its order): each model's name after its colour and marker on the
    track's charts."""
    from reasonbench.leaderboard import svg

    columns = [c for c in table_columns(rows) if c.in_html]
    # the run column's folded details: nothing to sort by
    head = "".join(f'<th scope="col" class="{c.html_class}"{" data-unsorted" if c.header == "run" else ""}>'
                   f"{esc(c.header)}</th>" for c in columns)
    body = []
    for row, (colour, shape) in zip(rows, svg.row_styles([r["model"] for r in rows])):
        cells = []
        for column in columns:
            sort_attr = "" if column.sort is None else f' data-sort="{esc(_num(column.sort(row)))}"'
            mark = svg.swatch(row["model"], colour, shape) if column.header == "model" else ""
            cells.append(f'<td class="{column.html_class}"{sort_attr}>{mark}{column.html_cell(row)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = other_test_data_note(rows)
    return (f'<div class="fit"><table class="sortable measured"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n' + "\n".join(body) + "\n</tbody></table></div>"
            + (f'<p class="note">{esc(note)}</p>' if note else ""))


MAX_VERDICT_PAIRS = 190  # pairs listed on a page (20 rows); a larger track's are in leaderboard.json


def verdict_table(rows: list[dict[str, Any]]) -> str:
    """One track's pairs of rows and whether they are told apart: the same rank ranges as the
    table (``stats.told_apart``), so a verdict never contradicts a rank."""
    from reasonbench.record.stats import told_apart

    ranked = [r for r in rows if r.get("rank")]
    count = len(ranked) * (len(ranked) - 1) // 2
    if not count:
        return ""
    if count > MAX_VERDICT_PAIRS:  # said, not listed: a page stays small however large the track
        return (f'<p class="note">{count:,} pairs of rows: too many to list here. Two rows are told apart '
                "exactly when their rank ranges share no rank; leaderboard.json lists the pairs told apart "
                "(\"pairs\").</p>")
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]]

    def verdict(a: dict[str, Any], b: dict[str, Any]) -> str:
        if told_apart(a["rank"], b["rank"]):
            return "told apart: " + ("the first better" if a["rank"][1] < b["rank"][0] else "the second better")
        if len(a["seeds"]) == 1 or len(b["seeds"]) == 1:
            return "not told apart (one seed: no measure of training noise)"
        (low_a, high_a), (low_b, high_b) = a["rank_interval"], b["rank_interval"]
        if high_a < low_b or high_b < low_a:  # the ranks overlap through rows whose intervals meet both
            between = [model_label(r) for r in ranked if r is not a and r is not b
                       and r["rank_interval"][0] <= min(high_a, high_b) and r["rank_interval"][1] >= max(low_a, low_b)]
            return (f"not told apart: their intervals are disjoint, but {_listed(between, 3)} "
                    f"{'overlaps' if len(between) == 1 else 'overlap'} both, so their ranks meet")
        return "not told apart"

    body = "".join(
        f'<tr><td class="model">{esc(model_label(a))}</td><td class="model">{esc(model_label(b))}</td>'
        f'<td class="num">{esc(rank_text(a))} / {esc(rank_text(b))}</td>'
        f'<td class="num">{esc(interval_text(a))} / {esc(interval_text(b))}</td>'
        f'<td class="num">{len(a["seeds"])} / {len(b["seeds"])}</td><td class="verdict">{esc(verdict(a, b))}</td></tr>\n'
        for a, b in pairs)
    head = "".join(f'<th scope="col">{h}</th>' for h in (
        "first", "second", "ranks", "95% intervals", "seeds", "verdict"))
    apart = sum(told_apart(a["rank"], b["rank"]) for a, b in pairs)
    return (f'<details class="paired"><summary>Pairs of rows: {apart} of {len(pairs)} told apart</summary>'
            f'<p class="note">{esc(VERDICT_NOTE)}</p><div class="fit"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}</tbody></table></div></details>")


VERDICT_NOTE = ("Two rows are told apart when their rank ranges share no rank; then their 95% intervals are "
                "disjoint too. The intervals include both the training noise (the seeds) and the test-set noise "
                "(the examples), so a row of one seed is never told apart from another: nothing measures its "
                "training noise.")


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


def track_heading(track_name: str, level: str, rows: list[dict[str, Any]] | None = None) -> str:
    """A track's heading and what it is: the track's definition, then facts from its rows'
    records (``track_facts``)."""
    note = TRACK_NOTES.get(track_name.split(" ", 1)[0], "runs of this preset")
    if GENERATED_DATA.strip() in track_name:
        note += "; here on generated look-alike data, not the official data set: not comparable with its track"
    elif REAL_DATA.strip() in track_name:
        note += "; here on real data instead of the track's generated data"
    if PARTIAL_MARK in track_name:
        note = PARTIAL_NOTE
    depth = depth_track(track_name)
    if depth:
        note = (f"the {depth[0]} track's trained checkpoints evaluated for {depth[1]} (test-time depth), "
                "on the test and the out-of-distribution split")
    if any(r.get("headline") == "pass@2" for r in rows or []):
        note += ". " + PASS_NOTE.removesuffix(".")
    facts = track_facts(rows or [])
    return (f'<{level}>{esc(track_name)} track</{level}><p class="note">{esc(note)}.'
            + (f" {esc(facts)}" if facts else "") + "</p>")


def _listed(items: list[str], limit: int = 4) -> str:
    """"a, b and c"; past ``limit`` items, "a, b, c, d and 3 more"."""
    if len(items) > limit:
        return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def _seed_span(seeds: list[int]) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return _listed([str(s) for s in seeds], 6)


def track_facts(rows: list[dict[str, Any]]) -> str:
    """What the records of ``rows`` say about how they were run: the machines (device, and the
    CPU model and cores for a CPU run), the commits, the seeds; the re-run check the build was
    told of (``ci_reruns``). Facts only: nothing here is true of a board whose records say
    otherwise."""
    if not rows:
        return ""
    machines = sorted({m for r in rows for m in r.get("machines", [])})
    commits = sorted({c for r in rows for c in r["git_commits"]})
    counts = sorted({len(r["seeds"]) for r in rows})
    parts = []
    if machines:
        parts.append(f"Run on {_listed(machines)}")
    if commits:
        parts.append(f"at commit {commits[0][:10]}" if len(commits) == 1
                     else f"at {len(commits)} commits ({_listed([c[:10] for c in commits], 3)})")
    if counts:
        seeds = _seed_span([s for r in rows for s in r["seeds"]])
        per_row = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        parts.append(f"seeds {seeds} ({per_row} per row)")
    text = ", ".join(parts) + "." if parts else ""
    one_seed = [model_label(r) for r in rows if len(r["seeds"]) == 1]
    if one_seed:
        text += (f" One seed only: {_listed(one_seed)} (no measure of training noise: shares every rank). ")
    reruns = [(r, seed) for r in rows for seed in r.get("ci_reruns", [])]
    if reruns:
        text += (" This project's CI (.ci/run) re-runs " +
                 _listed([f"{model_label(r)} seed {seed}" for r, seed in reruns]) +
                 " from its record and requires the recorded count of right answers.")
    return text.strip()


REPORTED_NOTE = ("Published figures copied from the papers, not measured by reasonbench: "
                 "not ranked with the rows above and not on any Pareto front.")
HOW_TO_READ = ("Exact accuracy: share of test puzzles answered exactly right, as mean ± sample std over "
               "seeds; 95% interval: of that mean, counting the training noise (seeds) and the test-set noise "
               "(examples) together (one seed: 0–100, nothing measures its training noise); it decides the rank "
               "range and is the charts' error bar, and rows whose rank ranges share no rank are told apart. "
               "OOD: exact accuracy "
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
            track_rows = [r for r in task_rows if r["track"] == track_name]
            parts += [track_heading(track_name, "h3", track_rows), measured_table(track_rows)]
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
        parts.append("Exact accuracy (ARC: pass@2) against cost: the error bar of a point is the 95% interval its "
                     "rank is decided on (seeds and test examples together); "
                     "the dashed staircase is the Pareto front (no other row is both cheaper and more accurate), its "
                     "points ringed.")
    if kinds & {"depth", "ood-depth"}:
        split = " on the test split and on the OOD split" if "ood-depth" in kinds else ""
        parts.append(f"Exact accuracy after each reasoning step of the evaluation{split} (every segment run, "
                     "whatever the halting head says).")
    if "difficulty" in kinds:
        parts.append("Exact accuracy per difficulty bucket of the test split.")
    return " ".join(parts)


def chart_figure(charts: list[tuple[str | None, str, str]], caption: str) -> list[str]:
    """Charts side by side (inline SVG, each with a link to its file) under one ``caption``; a
    chart with nothing to show ((None, caption, a sentence)) as its sentence."""
    drawn = "".join(f'<div class="chart-box">{text}<a class="download" href="{esc(src)}">SVG</a></div>'
                    for src, _, text in charts if src)
    figure = [f'<figure><div class="plots">{drawn}</div><figcaption>{esc(caption)}</figcaption></figure>']
    return (figure if drawn else []) + [f'<p class="note chart-empty">{esc(text)}</p>' for src, _, text in charts
                                        if not src]


def task_body(task: str, rows: list[dict[str, Any]], reported: list[dict[str, Any]],
              plots: dict[str, list[tuple[str | None, str, str]]], pictures: list[tuple[str, str]],
              testtime: tuple[str | None, str, str] | None = None) -> str:
    """One task: per track its table and charts (inline SVG: (file, caption, SVG text) each; a
    chart with nothing to show is (None, caption, a sentence)), the test-time compute chart
    (``testtime``: (file, caption, SVG text), over every track), then example pictures and the
    papers' figures."""
    parts = [f'<p class="note">{esc(HOW_TO_READ)}</p>']
    for track_name in sorted({r["track"] for r in rows}, key=track_sort_key):
        track_rows = [r for r in rows if r["track"] == track_name]
        parts += [track_heading(track_name, "h2", track_rows), measured_table(track_rows), verdict_table(track_rows)]
        charts = plots.get(track_name, [])
        parts += chart_figure(charts, chart_caption([src for src, _, _ in charts if src]))
    if testtime:
        parts += ["<h2>Test-time compute</h2>", *chart_figure([testtime], testtime[1])]
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
