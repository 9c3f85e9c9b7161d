"""The leaderboard: seeds aggregated with their intervals, tracks, the Pareto front, untrusted
records validated and escaped, the papers' figures kept apart, pictures, a 10,000-record build,
and the built pages in a real headless Chromium."""

import base64
import fcntl
import html
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reasonbench import leaderboard
from reasonbench.leaderboard import load as lb_load
from reasonbench.leaderboard import rank as lb_rank
from reasonbench.leaderboard import tracks as lb_tracks
from reasonbench_benchmarks.leaderboard_build import make_records

from .conftest import call_cli
from .test_record import minimal_record

FIXTURES = Path(__file__).resolve().parent / "data" / "leaderboard"
SCRIPT = "<script>alert(1)</script>"


def make_record(model="transformer", task="sudoku", preset="mini", seed=0, correct=5, n=10, **cost) -> dict:
    r = minimal_record()
    r.update(model=model, task=task, preset=preset, seed=seed)
    r["metrics"].update(exact_correct=correct, n_test_examples=n, exact_accuracy=correct / n,
                        exact_accuracy_ci95=[0.0, 1.0])
    r["cost"].update(cost)
    return r


def put(results: Path, record: dict, name: str | None = None) -> Path:
    path = results / (name or f"{record['model']}/{record['task']}/{record['preset']}/seed{record['seed']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


class Tables(HTMLParser):
    """Text of each table's rows, keyed by the table's class: {class: [[cell, ...], ...]}."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("class", "")
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_seeds_aggregate_into_mean_std_and_a_pooled_wilson_interval(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(seed=0, correct=5))
    put(results, make_record(seed=1, correct=7))
    diverged = make_record(seed=2)
    diverged.update(status="diverged", status_detail="non-finite loss at step 3", metrics=None)
    put(results, diverged)
    put(results, make_record(model="only-smoke", preset="smoke", correct=10))
    built = leaderboard.build(results, site, reported=None)
    assert len(built.rows) == 1 and built.records == 4 and not built.skipped
    row = built.rows[0]
    assert (row["track"], row["seeds"], row["diverged"]) == ("mini", [0, 1], 1)
    assert row["exact_accuracy_mean"] == pytest.approx(0.6)
    assert row["exact_accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert row["exact_accuracy_ci95"] == pytest.approx([0.3866, 0.7812], abs=1e-4)  # Wilson, 12 of 20
    assert (row["exact_correct"], row["n_test_examples"]) == (12, 20)
    assert json.loads((site / "leaderboard.json").read_text())["measured"] == built.rows
    md = (site / "leaderboard.md").read_text()
    # two seeds far apart (50 and 70%): Student's t with one degree of freedom leaves all of 0-100
    assert "### mini track" in md and "| 1 | transformer | 60.0 ± 14.1 | 0.0–100.0 | - | 2 (1 diverged) | 10 |" in md
    assert "test-set noise" in md
    for page in ["leaderboard.md", "leaderboard.json", "index.html", "task-sudoku.html", *map(str, site.glob("plots/*"))]:
        assert "only-smoke" not in (site / page).read_text()  # smoke runs never appear
    measured = Tables((site / "index.html").read_text()).tables["sortable measured"]
    assert measured[1][:5] == ["1", "transformer", "60.0 ± 14.1", "0.0–100.0", "-"]


@pytest.mark.parametrize("preset, budget, expected", [
    ("mini", None, "mini"), ("paper", None, "paper"), ("tiny", None, "paper"), ("smoke", None, None),
    ("long", None, "long"), ("paper", "top", "budget 10m"), ("mini", "config", "budget 1h"), ("smoke", "top", None),
])
def test_tracks_of_presets(preset, budget, expected):
    record = make_record(preset=preset)
    if budget == "top":
        record["budget"] = {"device_seconds": 600.0, "spec": "10m", "stopped_at_step": 120}
    elif budget == "config":
        record["provenance"]["config"] = {"budget": "1h"}
    assert leaderboard.track(record) == expected


def test_presets_of_one_track_are_separate_rows(tmp_path):
    put(tmp_path / "res", make_record(model="cmm", preset="paper", correct=9))
    put(tmp_path / "res", make_record(model="cmm", preset="tiny", correct=8))
    built = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert [(r["track"], r["preset"]) for r in built.rows] == [("paper", "paper"), ("paper", "tiny")]
    rows = Tables((tmp_path / "site" / "task-sudoku.html").read_text()).tables["sortable measured"]
    assert [r[1] for r in rows[1:]] == ["cmm", "cmm (tiny)"]  # after the rank


def test_a_row_run_at_several_commits_says_so(tmp_path):
    """The commit column names a row's one commit; a row whose seeds were run at two commits says
    "2 commits" (both in the cell's title), never one of them alone."""
    for seed, commit in [(0, "a" * 40), (1, "b" * 40)]:
        record = make_record(model="trm", seed=seed)
        record["provenance"]["git_commit"] = commit
        put(tmp_path / "res", record)
    one = make_record(model="hrm")
    one["provenance"]["git_commit"] = "c" * 40
    put(tmp_path / "res", one)
    built = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    by_model = {r["model"]: r for r in built.rows}
    assert by_model["trm"]["git_commits"] == ["a" * 40, "b" * 40] and by_model["trm"]["git_commit"] is None
    assert by_model["hrm"]["git_commit"] == "c" * 40
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "| 2 commits |" in md and f"| {'c' * 10} |" in md
    html = (tmp_path / "site" / "task-sudoku.html").read_text()
    assert f'<code title="{"a" * 40} {"b" * 40}">2 commits</code>' in html


def test_settings_beyond_the_preset_come_from_the_command():
    record = make_record()
    record["provenance"]["command"] = (
        "reasonbench run --model trm --task maze --preset mini --seed 3 --out 'my results' --resume "
        "--trainer.max_steps 6000 --optim.lr=3e-4 --measure.flops_examples 4 --trainer.enable_progress_bar false "
        "--checkpoint_every 100 --config run.yaml")
    assert lb_tracks.command_settings(record) == [("trainer.max_steps", "6000"), ("optim.lr", "3e-4"),
                                                    ("config", "run.yaml")]
    assert lb_tracks.settings_text(record) == "trainer.max_steps=6000 optim.lr=3e-4 config=run.yaml"
    record["provenance"]["command"] = ("reasonbench eval --model trm --task maze --preset mini --seed 0 "
                                       "--checkpoint c.pt --max-steps 8 --out r")
    assert lb_tracks.command_settings(record) == []


def test_runs_given_other_settings_are_rows_of_their_own(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    for seed, correct in ((0, 5), (1, 6)):
        put(results, make_record(model="trm", seed=seed, correct=correct))
    longer = make_record(model="trm", seed=2, correct=9)
    longer["provenance"]["command"] = "reasonbench run --model trm --task sudoku --preset mini --seed 2 " \
                                      "--trainer.max_steps 6000 --resume"
    put(results, longer)
    put(results, {"format": "reasonbench-sweep", "runs": []}, "sweep.json")  # the sweep's manifest: no record
    built = leaderboard.build(results, site)
    assert not built.skipped
    rows = {(r["model"], r["settings"]): r for r in built.rows}
    assert rows[("trm", "")]["seeds"] == [0, 1] and rows[("trm", "trainer.max_steps=6000")]["seeds"] == [2]
    assert "| trm \\[trainer.max\\_steps=6000\\] | 90.0 |" in (site / "leaderboard.md").read_text()


def test_pareto_front_of_known_points():
    points = [(1, 0.1), (2, 0.5), (3, 0.4), (4, 0.9), (4, 0.8), (0.5, 0.05), (10, 0.9)]
    assert leaderboard.pareto_front(points) == [5, 0, 1, 3]
    assert leaderboard.pareto_front([]) == []


def test_invalid_records_are_skipped_with_one_line_each_and_the_rest_is_built(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(model="good"))
    text = json.dumps(make_record(model="bad"))
    bad = {
        "not-json.json": "{oops",
        "top-list.json": "[]",
        "deep.json": "[" * 100_000,
        "nan.json": text.replace('"token_accuracy": 0.9', '"token_accuracy": NaN'),
        "huge-number.json": text.replace('"device_hours": 0.0004', '"device_hours": 1e999'),
        "version.json": text.replace('"schema_version": 1', '"schema_version": 2'),
        "accuracy.json": json.dumps(make_record(correct=15)),  # 1.5
        "params.json": json.dumps(make_record(params=0)),
        "counts.json": text.replace('"exact_correct": 5', '"exact_correct": 11'),
        "long-name.json": json.dumps(make_record(model="x\n" * 300)),
        "evil\nname\x1b[2J.json": json.dumps(make_record(params=-1)),
    }
    for name, content in bad.items():
        (results / name).write_text(content)
    result = call_cli("leaderboard", "--results", str(results), "--out", str(site), "--reported", "none")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(bad)  # one line per bad record, however hostile its name or content
    for name in bad:
        shown = name.replace("\n", "\\n").replace("\x1b", "\\x1b")
        assert sum(shown in line for line in lines) == 1, (name, lines)
    assert "\x1b" not in result.stderr
    reasons = " ".join(lines)
    for reason in ("not valid JSON", "nested too deeply", "NaN is not a number", "1e999 is out of range",
                   "schema_version", "exact_accuracy", "params", "is too long",
                   "inconsistent: metrics: exact_correct 11 is larger than n_test_examples 10"):
        assert reason in reasons
    assert f"from 1 records, {len(bad)} invalid skipped" in result.stdout
    assert [r["model"] for r in json.loads((site / "leaderboard.json").read_text())["measured"]] == ["good"]
    skipped = json.loads((site / "leaderboard.json").read_text())["skipped"]
    assert len(skipped) == len(bad)


def test_missing_results_folder_exits_2(tmp_path):
    result = call_cli("leaderboard", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "site"))
    assert result.returncode == 2 and "no such folder" in result.stderr
    assert not (tmp_path / "site").exists()


def test_strings_from_records_are_escaped_in_html_markdown_and_svg(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(model=SCRIPT + "|x\ny", task='sudoku"><img src=x onerror=alert(2)>',
                             device="<b>gpu</b>"), "hostile.json")
    leaderboard.build(results, site, reported=None)
    names = [p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()]
    assert all(re.fullmatch(r"[a-z0-9_./-]+", n) for n in names), names  # file names never from raw record text
    for path in site.rglob("*"):
        if path.suffix in (".html", ".md", ".svg", ".json"):
            text = path.read_text()
            assert "<script>alert" not in text and "<img src=x" not in text and "<b>gpu" not in text, path
    page = next(site.glob("task-sudoku-*.html")).read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|x\ny" in page and "&lt;b&gt;gpu&lt;/b&gt;" in page
    assert "sudoku&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert Tables(page).tables["sortable measured"][1][1] == SCRIPT + "|x\ny"  # the text a reader sees
    md = (site / "leaderboard.md").read_text()
    assert "| &lt;script&gt;alert(1)&lt;/script&gt;\\|x y |" in md
    svgs = [p.read_text() for p in site.glob("plots/*.svg")]
    assert len(svgs) == 3 and all("&lt;script&gt;alert(1)&lt;/script&gt;|x\\ny" in s for s in svgs)  # front label
    assert all("<script" not in s for s in svgs)


def test_tex_in_a_model_name_is_plain_text_in_plots(tmp_path):
    put(tmp_path / "res", make_record(model="cost $5 \\frac{"))
    leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert "cost $5 \\frac{" in (tmp_path / "site" / "plots" / "sudoku-mini-params.svg").read_text()


def test_reported_figures_stay_apart_from_measured_rows(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(model="trm", correct=9))
    built = leaderboard.build(results, site)  # the repository's leaderboard/reported.yaml
    assert len(built.reported) >= 20 and {"sudoku", "maze", "arc"} == {e["task"] for e in built.reported}
    oracle = [e for e in built.reported if e["oracle"]]
    assert [(e["model"], e["accuracy"]) for e in oracle] == [("Augmented HRM", 96.9)]
    assert [r["model"] for r in built.rows] == ["trm"]
    summary = json.loads((site / "leaderboard.json").read_text())
    assert [r["model"] for r in summary["measured"]] == ["trm"] and len(summary["reported"]) == len(built.reported)
    for page in ("index.html", "task-sudoku.html"):
        tables = Tables((site / page).read_text()).tables
        assert [r[1] for r in tables["sortable measured"][1:]] == ["trm"]
        reported = tables["sortable reported"][1:]
        assert all("reported (paper)" in r[0] for r in reported)
        assert any(r[0].startswith("Augmented HRM") and "oracle" in r[0] for r in reported)
    assert "arxiv.org/abs/2601.10679" in (site / "task-sudoku.html").read_text()
    for svg in site.glob("plots/*.svg"):  # never on a Pareto front, never plotted
        assert "HRM" not in svg.read_text() and "Attractor" not in svg.read_text()
    md = (site / "leaderboard.md").read_text()
    measured_part, reported_part = md.split("### sudoku: reported in papers (not measured here)")
    assert "Augmented HRM" not in measured_part and "| Augmented HRM | Sudoku-Extreme | 27M | 96.9 |" in reported_part


@pytest.mark.parametrize("entry, problem", [
    ({"model": "HRM", "params": "27M", "task": "sudoku", "benchmark": "S", "accuracy": 55.0, "source": "s"},
     "entry 2 (HRM): missing field 'url'"),
    ({"model": "HRM", "params": "27M", "task": "sudoku", "benchmark": "S", "accuracy": 155.0, "source": "s",
      "url": "https://a"}, "entry 2 (HRM): accuracy must be a percentage in [0, 100]"),
    ({"model": "HRM", "params": "27M", "task": "sudoku", "benchmark": "S", "accuracy": 55.0, "source": "s",
      "url": "javascript:alert(1)"}, "entry 2 (HRM): url must start with https://"),
    ({"model": "HRM", "params": 27, "task": "sudoku", "benchmark": "S", "accuracy": 55.0, "source": "s",
      "url": "https://a"}, "entry 2 (HRM): params must be text"),
    ("just text", "entry 2: not a mapping"),
])
def test_malformed_reported_entry_stops_the_build_with_one_line(tmp_path, entry, problem):
    import yaml

    good = {"model": "TRM", "params": "7M", "task": "maze", "benchmark": "M", "accuracy": 85.3, "source": "s",
            "url": "https://arxiv.org/abs/2510.04871"}
    reported = tmp_path / "reported.yaml"
    reported.write_text(yaml.safe_dump({"version": 1, "entries": [good, entry]}))
    (tmp_path / "res").mkdir()
    result = call_cli("leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "site"),
                      "--reported", str(reported))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"reasonbench: error: {reported}: {problem}"]


def scored(record: dict, correct: int) -> dict:
    """``record`` with ``correct`` of its test examples right: count, accuracy and interval agree."""
    from reasonbench.record.stats import wilson_interval

    n = record["metrics"]["n_test_examples"]
    record["metrics"].update(exact_correct=correct, exact_accuracy=correct / n,
                             exact_accuracy_ci95=list(wilson_interval(correct, n)))
    return record


def _sudoku_record_with_examples() -> dict:
    record = json.loads((FIXTURES / "trm" / "sudoku" / "smoke" / "seed0.json").read_text())
    failed = record["examples"]["failed"]
    record["examples"]["solved"] = {**failed, "prediction": failed["labels"]}
    record["preset"] = "mini"
    return record


def test_pictures_of_a_solved_and_a_failed_example_from_the_best_row(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    best = scored(_sudoku_record_with_examples(), 32)
    put(results, best)
    worse = scored(_sudoku_record_with_examples(), 0)
    worse["model"] = "worse"
    worse["examples"]["solved"]["inputs"] = [0] * 5  # does not fit the grid: it is not the one drawn
    put(results, worse)
    built = leaderboard.build(results, site, reported=None)
    assert not built.warnings
    for kind in ("solved", "failed"):
        png = (site / "pictures" / f"sudoku-{kind}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 500
        assert f'src="pictures/sudoku-{kind}.png"' in (site / "task-sudoku.html").read_text()
    assert "A solved test example of trm (mini track, seed 0)" in (site / "task-sudoku.html").read_text()

    broken = tmp_path / "res2"
    scored(worse, 64)  # now the best row, with an example that does not fit
    put(broken, worse)
    built = leaderboard.build(broken, tmp_path / "site2", reported=None)
    assert len(built.warnings) == 1 and "no solved picture" in built.warnings[0]
    assert (tmp_path / "site2" / "pictures" / "sudoku-failed.png").exists()


def test_committed_fixture_records_build_a_clean_site(tmp_path):
    site = tmp_path / "site"
    result = call_cli("leaderboard", "--results", str(FIXTURES), "--out", str(site))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    summary = json.loads((site / "leaderboard.json").read_text())
    rows = summary["measured"]
    assert summary["records"] == 15 and not summary["skipped"]
    assert {(r["task"], r["track"]) for r in rows} == {("sudoku", "mini"), ("maze", "mini"), ("arc", "mini")}
    assert len(rows) == 14  # the smoke record is not listed
    for task in ("sudoku", "maze", "arc"):
        assert (site / f"task-{task}.html").exists()
        assert len(list(site.glob(f"plots/{task}-mini-*.svg"))) == 3
    assert (site / "pictures" / "maze-failed.png").exists()
    for row in rows:
        config = json.loads((site / row["config"]).read_text())
        assert config["model"]["name"] == row["model"]


README_WITH_MARKERS = """# project

## Leaderboard
<!-- begin generated leaderboard: written by reasonbench leaderboard --readme -->
stale table
<!-- end of generated leaderboard -->

## Layout
"""


def test_readme_gets_the_markdown_between_its_markers_and_keeps_the_rest(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README_WITH_MARKERS)
    for _ in range(2):  # a second build changes nothing
        result = call_cli("leaderboard", "--results", str(FIXTURES), "--out", str(tmp_path / "site"),
                          "--readme", str(readme))
        assert result.returncode == 0, result.stderr
        text = readme.read_text()
        head, rest = text.split("<!-- end of generated leaderboard -->\n")
        assert rest == "\n## Layout\n" and "stale table" not in head
        assert head.startswith("# project\n\n## Leaderboard\n<!-- begin generated leaderboard: written by")
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "### sudoku\n\n#### mini track" in text and "## sudoku\n\n### mini track" in markdown
    assert "# reasonbench leaderboard" not in text  # the README's own headings lead
    assert text.count("| rank | model |") == markdown.count("| rank | model |") == 3


@pytest.mark.parametrize("body, found", [
    ("no markers at all\n", "found 0 begin and 0 end lines"),
    ("<!-- end of generated leaderboard -->\n<!-- begin generated leaderboard -->\n", "the end line before"),
    (README_WITH_MARKERS + "<!-- end of generated leaderboard -->\n", "found 1 begin and 2 end lines"),
])
def test_readme_without_its_markers_exits_2_and_nothing_is_written(tmp_path, body, found):
    readme = tmp_path / "README.md"
    readme.write_text(body)
    result = call_cli("leaderboard", "--results", str(FIXTURES), "--out", str(tmp_path / "site"),
                      "--readme", str(readme))
    assert result.returncode == 2 and found in result.stderr and str(readme) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert readme.read_text() == body and not (tmp_path / "site").exists()


def test_committed_readme_shows_the_committed_records(tmp_path):
    """The README's leaderboard is what leaderboard/results builds today: publishing rows without
    rebuilding it (make publish does both) fails here."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "docs" / "results.md").read_text()
    built = tmp_path / "results.md"
    built.write_text(readme)
    result = call_cli("leaderboard", "--results", str(root / "leaderboard" / "results"),
                      "--out", str(tmp_path / "site"), "--readme", str(built))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert built.read_text() == readme, "docs/results.md's leaderboard is stale: run make publish (or reasonbench " \
        "leaderboard --results leaderboard/results --readme docs/results.md)"


def test_ten_thousand_records_build(tmp_path):
    expected = make_records(FIXTURES, tmp_path / "res", 10_000)
    built = leaderboard.build(tmp_path / "res", tmp_path / "site")
    assert built.records == 10_000 and not built.skipped and len(built.rows) == expected
    assert len(Tables((tmp_path / "site" / "task-maze.html").read_text()).tables["sortable measured"]) > 500


@pytest.mark.slow
def test_ten_thousand_records_build_within_ten_seconds(tmp_path):
    make_records(FIXTURES, tmp_path / "res", 10_000)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasonbench", "leaderboard", "--results", str(tmp_path / "res"),
                    "--out", str(tmp_path / "site")], check=True, capture_output=True)
    assert time.perf_counter() - start <= 10.0


# --- the pages in a real browser -----------------------------------------------------------
class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (its fds 3 and 4): no
    websocket client and no port needed."""

    def __init__(self, profile: Path) -> None:
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()

        def on_fds_3_and_4():  # moved high first: dup2 onto 3 must not close the other end
            high_r, high_w = fcntl.fcntl(commands_r, fcntl.F_DUPFD, 10), fcntl.fcntl(replies_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,2000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=on_fds_3_and_4, close_fds=False)
        os.close(commands_r)
        os.close(replies_w)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=1280, height=2000, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def _read(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            if not select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def page(self, method: str, **params) -> dict:
        return self.send(method, session=self.session, **params)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.page("Page.navigate", url=path.as_uri())
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read())

    def js(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def problems(self) -> list[dict]:
        """Console errors, uncaught exceptions and JavaScript dialogs (an alert) seen so far."""
        return [e for e in self.events if e.get("method") in ("Runtime.exceptionThrown", "Page.javascriptDialogOpening")
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))]

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands)
        os.close(self._replies)


SORT_BY = """(() => {
  const table = document.querySelectorAll("table.measured")[%d];
  const header = [...table.tHead.rows[0].cells].find(th => th.textContent === %s);
  const column = [...table.tHead.rows[0].cells].indexOf(header);
  const values = () => [...table.tBodies[0].rows].map(r => parseFloat(r.cells[column].dataset.sort));
  header.click();
  const first = values();
  header.click();
  return [first, values(), header.getAttribute("aria-sort")];
})()"""


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (Debian package `chromium`; .ci/run installs it)")
def test_site_in_headless_chromium(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    shutil.copytree(FIXTURES, results)
    put(results, make_record(model=SCRIPT, task="maze", correct=3), "hostile1.json")
    put(results, make_record(model="<img src=x onerror=alert(2)>", task="maze", correct=2), "hostile2.json")
    leaderboard.build(results, site)
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(site / "index.html")
        assert browser.js("document.querySelectorAll('table.measured').length") == 3  # arc, maze, sudoku
        assert browser.js("document.querySelectorAll('table.reported tbody tr').length") >= 20
        assert browser.js("document.scripts.length") == 1  # ours; the model names stayed text
        assert browser.js(f"document.body.innerText.includes({json.dumps(SCRIPT)})")
        ascending, descending, state = browser.js(SORT_BY % (1, json.dumps("params")))  # the maze table
        assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
        assert len(ascending) == 8 and state == "descending"
        accuracy_up, _, _ = browser.js(SORT_BY % (1, json.dumps("exact % (mean ± std)")))
        assert accuracy_up == sorted(accuracy_up)
        unsorted = "document.querySelector('table.measured th[data-unsorted]')"
        assert browser.js(f"{unsorted}.textContent") == "run" and browser.js(f"{unsorted}.tabIndex") == -1
        shot = base64.b64decode(browser.page("Page.captureScreenshot", format="png")["data"])
        (tmp_path / "index.png").write_bytes(shot)
        assert browser.problems() == []

        browser.open(site / "task-maze.html")
        images = browser.js("[...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        assert images == [["pictures/maze-failed.png", True]]
        charts = browser.js("[...document.querySelectorAll('svg.chart')].map(c => c.nextElementSibling.getAttribute('href'))")
        assert sorted(charts) == ["plots/maze-mini-flops.svg", "plots/maze-mini-hours.svg", "plots/maze-mini-params.svg"]
        assert browser.js("document.querySelectorAll('svg.chart .mark title').length") == 3 * 8  # a tooltip a point
        assert browser.js("document.querySelector('table.measured tbody').rows.length") == 8
        assert browser.problems() == []

        browser.page("Emulation.setScriptExecutionDisabled", value=True)  # readable without JavaScript
        browser.open(site / "task-maze.html")
        assert browser.js("document.querySelector('table.measured tbody').rows.length") == 8
    finally:
        browser.close()

    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "index.png")
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 0.05 and (pixels[..., :3] < 0.9).mean() > 0.01  # not blank


def test_files_inside_a_runs_folder_are_not_records(tmp_path):
    results = tmp_path / "res"
    source = next(FIXTURES.rglob("seed0.json"))
    record = results / source.relative_to(FIXTURES)
    record.parent.mkdir(parents=True)
    record.write_bytes(source.read_bytes())
    run_folder = record.with_suffix("")
    run_folder.mkdir()
    (run_folder / "submission.json").write_text('{"task": [[0]]}')  # an ARC submission: not a record
    records, skipped = leaderboard.collect(results)
    assert len(records) == 1 and skipped == []


def test_depth_curves_and_difficulty_buckets_are_pooled_and_drawn(tmp_path):
    def with_depth(record, curve, buckets, ood):
        record["metrics"]["by_step"] = {"exact": curve, "token": curve, "halted": None, "residual": None}
        record["metrics"]["by_difficulty"] = {"kind": "rating", "buckets": [
            {"name": name, "n_test_examples": n, "exact_correct": k, "exact_accuracy": k / n} for name, n, k in buckets]}
        record["metrics"]["ood"] = {"n_test_examples": ood[0], "exact_correct": ood[1], "exact_accuracy": ood[1] / ood[0]}
        return record

    put(tmp_path / "res", with_depth(make_record(model="trm", seed=0), [0.2, 0.4], [("0", 4, 3), ("1-2", 6, 2)], (2, 1)))
    put(tmp_path / "res", with_depth(make_record(model="trm", seed=1), [0.4, 0.6], [("0", 6, 3), ("1-2", 4, 2)], (2, 0)))
    put(tmp_path / "res", make_record(model="transformer"))  # no curves: no line, no failure
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", None)
    row = next(r for r in site.rows if r["model"] == "trm")
    assert row["by_step_exact"] == pytest.approx([0.3, 0.5])
    assert row["by_difficulty"] == [{"name": "0", "n_test_examples": 10, "exact_accuracy": 0.6},
                                    {"name": "1-2", "n_test_examples": 10, "exact_accuracy": 0.4}]
    assert row["ood_accuracy"] == 0.25 and row["ood_examples"] == 4
    depth = (tmp_path / "site/plots/sudoku-mini-depth.svg").read_text()
    difficulty = (tmp_path / "site/plots/sudoku-mini-difficulty.svg").read_text()
    assert "reasoning step" in depth and ">trm<" in depth and ">transformer<" not in depth
    assert ">1-2<" in difficulty and ">rating<" in difficulty
    assert "sudoku-mini-depth.svg" in (tmp_path / "site/task-sudoku.html").read_text()


def test_ood_split_and_test_time_depth_track(tmp_path):
    """A generated OOD split's accuracy and curve reach the tables and a chart; checkpoints
    evaluated deeper than trained form a track of their own beside the trained runs."""
    definition = "40 generated 6x6 mazes whose shortest path is longer than every training maze's (> 16 steps)"

    def with_ood(record, curve, correct):
        record["metrics"]["by_step"] = {"exact": curve, "token": curve, "halted": None, "residual": None}
        record["metrics"]["ood"] = {"n_test_examples": 40, "exact_correct": correct, "exact_accuracy": correct / 40,
                                    "by_step": {"exact": [c / 2 for c in curve], "token": curve}, "definition": definition}
        return record

    put(tmp_path / "res", with_ood(make_record(model="trm", task="maze"), [0.2, 0.4], 10))
    deeper = with_ood(make_record(model="trm", task="maze"), [0.2, 0.4, 0.5, 0.5], 12)
    deeper["mode"] = "eval"
    deeper["provenance"]["config"]["eval_max_steps"] = 4
    put(tmp_path / "res", deeper, "trm/maze/mini/seed0.eval.json")
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", None)
    rows = {r["track"]: r for r in site.rows}
    assert set(rows) == {"mini", "mini at 4 steps"}
    assert rows["mini"]["ood_accuracy"] == 0.25 and rows["mini at 4 steps"]["ood_accuracy"] == 0.3
    assert rows["mini at 4 steps"]["ood_by_step_exact"] == [0.1, 0.2, 0.25, 0.25]
    assert rows["mini"]["ood_definition"] == definition
    chart = next((tmp_path / "site/plots").glob("maze-mini-at-4-steps-*-ood-depth.svg")).read_text()
    assert "OOD split" in chart and "per reasoning step" in chart and ">trm<" in chart  # the title wraps
    page = (tmp_path / "site/task-maze.html").read_text()
    assert "mini at 4 steps track" in page and "evaluated for 4 steps (test-time depth)" in page
    table = Tables(page).tables["sortable measured"]
    assert "OOD exact %" in table[0] and "25.0 (n=40)" in table[1] and f'title="{html.escape(definition)}"' in page
    assert "| 25.0 (n=40) |" in (tmp_path / "site/leaderboard.md").read_text()


def test_rows_scored_on_other_test_examples_are_marked(tmp_path):
    """Within a track, the test-split fingerprint most rows carry is the track's test data; a
    row scored on other examples (or on several over its seeds) is marked in every page, and
    records without a fingerprint (made before it existed) are not judged."""
    common, other = "a" * 64, "b" * 64

    def scored_on(fingerprint, **kw):
        record = make_record(**kw)
        if fingerprint:
            record["provenance"]["test_data_fingerprint"] = fingerprint
        return record

    put(tmp_path / "res", scored_on(common, model="trm", correct=8))
    put(tmp_path / "res", scored_on(common, model="hrm", correct=3))
    put(tmp_path / "res", scored_on(other, model="cmm", correct=9))
    put(tmp_path / "res", scored_on(None, model="cgar", correct=5))
    put(tmp_path / "res", scored_on(common, model="attractor", seed=0, correct=6))
    put(tmp_path / "res", scored_on(other, model="attractor", seed=1, correct=6))
    put(tmp_path / "res", scored_on(other, model="trm", task="maze", correct=4))  # alone in its track: fine
    built = leaderboard.build(tmp_path / "res", tmp_path / "site", None)
    marked = {(r["task"], r["model"]): r["test_data_differs"] for r in built.rows}
    assert marked == {("sudoku", "trm"): False, ("sudoku", "hrm"): False, ("sudoku", "cmm"): True,
                      ("sudoku", "cgar"): False, ("sudoku", "attractor"): True, ("maze", "trm"): False}
    md = (tmp_path / "site/leaderboard.md").read_text()
    assert "| cmm † | 90.0 |" in md and "| attractor † | 60.0 ± 0.0 |" in md and "| trm | 80.0 |" in md
    assert md.count("† scored on other test examples than the rest of this track") == 1
    page = (tmp_path / "site/task-sudoku.html").read_text()
    models = [row[1] for row in Tables(page).tables["sortable measured"][1:]]
    assert models == ["cmm †", "trm", "attractor †", "cgar", "hrm"]
    assert "test-split fingerprints differ" in page
    assert "†" not in (tmp_path / "site/task-maze.html").read_text()
    # a tie leaves no test data the track agrees on: every row with a fingerprint is marked
    put(tmp_path / "res", scored_on(other, model="transformer", correct=3))
    rows = leaderboard.build(tmp_path / "res", tmp_path / "site2", None).rows
    assert {r["model"]: r["test_data_differs"] for r in rows if r["task"] == "sudoku"} == {
        "trm": True, "hrm": True, "cmm": True, "transformer": True, "cgar": False, "attractor": True}


# --- ranks with ties ------------------------------------------------------------------------

def test_rank_ranges_tie_overlapping_intervals():
    from reasonbench.record.stats import rank_ranges

    # A and B overlap, both lie wholly above C; D has nothing measured
    assert rank_ranges([(0.8, 0.9), (0.7, 0.85), (0.5, 0.6), None]) == [(1, 2), (1, 2), (3, 3), None]
    assert rank_ranges([(0.1, 0.2), (0.3, 0.4)]) == [(2, 2), (1, 1)]


def test_rows_are_ranked_per_track_on_one_interval_of_seeds_and_examples():
    def record(model: str, seed: int, correct: int) -> dict:
        r = minimal_record()
        r.update(model=model, preset="mini", seed=seed, _file=f"{model}/{seed}.json")
        r["metrics"].update(exact_correct=correct, n_test_examples=1000, exact_accuracy=correct / 1000)
        return r

    # a: 3 seeds that spread widely; b: one seed just below a's mean (no measure of its training
    # noise: it shares every rank); c: 3 tight seeds far below a
    records = ([record("a", s, k) for s, k in enumerate((500, 600, 700))] + [record("b", 0, 580)]
               + [record("c", s, k) for s, k in enumerate((100, 105, 110))])
    rows = {r["model"]: r for r in lb_rank.aggregate(records)}
    assert rows["a"]["rank_interval"][0] < 0.4 and rows["a"]["rank_interval"][1] > 0.8
    assert rows["b"]["rank_interval"] == [0.0, 1.0]
    assert rows["a"]["rank"] == [1, 2] and rows["b"]["rank"] == [1, 3] and rows["c"]["rank"] == [2, 3]
    assert "exact_accuracy_seed_ci95" not in rows["a"] and "paired" not in rows["a"]


# --- per-example outcomes ----------------------------------------------------------------------

def test_outcomes_round_trip_through_the_record_encoding():
    import torch

    from reasonbench.record.metrics import encode_outcomes
    from reasonbench.record.stats import decode_outcomes

    exact = torch.tensor([True, False, False, True, True, False, True, False, True, True, False])
    n, bits = decode_outcomes(encode_outcomes(exact))
    assert n == 11 and [bool(bits >> (n - 1 - i) & 1) for i in range(n)] == exact.tolist()
    assert decode_outcomes(encode_outcomes(torch.zeros(0, dtype=torch.bool))) == (0, 0)


def _paired_record(model: str, seed: int, right: list[bool]) -> dict:
    import torch

    from reasonbench.record.metrics import encode_outcomes
    from reasonbench.record.stats import wilson_interval

    r = minimal_record()
    n, k = len(right), sum(right)
    r.update(model=model, preset="mini", seed=seed, _file=f"{model}/{seed}.json")
    r["metrics"].update(exact_correct=k, n_test_examples=n, exact_accuracy=k / n,
                        exact_accuracy_ci95=list(wilson_interval(k, n)),
                        exact_by_example=encode_outcomes(torch.tensor(right)))
    r["provenance"]["test_data_fingerprint"] = "a" * 64
    return r


def test_outcomes_that_contradict_the_counts_are_inconsistent():
    record = _paired_record("a", 0, [True, False, True])
    record["metrics"]["exact_correct"] = 1
    record["metrics"]["exact_accuracy"] = 1 / 3
    assert any("exact_by_example: 2 right" in p for p in lb_load.consistency_problems(record))




def test_generated_and_real_data_never_share_a_track():
    def record(model: str, preset: str, kind: str | None) -> dict:
        r = minimal_record()
        r.update(model=model, preset=preset, _file=f"{model}/{preset}.json")
        if kind:
            r["provenance"]["data_source"] = {"kind": kind}
        return r

    tracks = {(r["model"], r["preset"]): r["track"] for r in lb_rank.aggregate([
        record("a", "paper", "hub"), record("b", "paper", "generated"), record("c", "paper", None),
        record("d", "mini", "generated"), record("e", "mini", "local"), record("f", "mini", None)])}
    assert tracks == {("a", "paper"): "paper", ("b", "paper"): "paper (generated data)", ("c", "paper"): "paper",
                      ("d", "mini"): "mini", ("e", "mini"): "mini (real data)", ("f", "mini"): "mini"}
    # a row on its preset's track of the other data kind is not labelled with the preset again
    from reasonbench.leaderboard.pages import model_label
    labels = {r["model"]: model_label(r) for r in lb_rank.aggregate([
        record("e", "mini", "local"), record("g", "tiny", "hub")])}
    assert labels == {"e": "e", "g": "g (tiny)"}
