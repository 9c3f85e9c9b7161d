"""The leaderboard against hostile results: numbers at the edge of JSON, records that contradict
themselves, files that are not files, records whose rows or charts cannot be drawn, markup in
names; the site is replaced whole or not at all, readable by everyone. Then generated records
(a valid record with its numbers and names replaced at random) through the whole build."""

import html
import json
import math
import os
import re
import signal
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from reasonbench import leaderboard
from reasonbench.util import untrusted
from reasonbench.util.errors import UserError
from reasonbench.leaderboard import pages, plots
from reasonbench.leaderboard import load as lb_load
from reasonbench.leaderboard import tracks as lb_tracks
from reasonbench.record.stats import wilson_interval

from .test_leaderboard import FIXTURES, Tables, make_record, put

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # generated names: any code point

OUTPUTS = ("index.html", "leaderboard.json", "leaderboard.md")


def _stub_chart(rows, *args, **kwargs):
    """A chart that names its rows and takes no time."""
    if not rows:
        return None
    return "<svg>" + "".join(f"<text>{html.escape(pages.model_label(r))}</text>" for r in rows) + "</svg>"


@pytest.fixture(scope="session")
def real_charts():
    """Requested by the tests that draw their real charts."""


@pytest.fixture(autouse=True)
def cheap_charts(request, monkeypatch):
    """Charts and puzzle pictures stubbed, except in tests that ask for ``real_charts``."""
    if "real_charts" in request.fixturenames:
        return
    for name in ("accuracy_plot", "depth_plot", "ood_depth_plot", "difficulty_plot"):
        monkeypatch.setattr(plots, name, _stub_chart)
    monkeypatch.setattr(plots, "puzzle_png", lambda *args: b"\x89PNG\r\n\x1a\n stub")
    # drawn here, not in a spawned process (which would import torch and know no stub)
    monkeypatch.setattr(leaderboard, "_build_with_drawer", lambda *args: leaderboard._build(*args, None))


def rich_record(model: str = "trm", seed: int = 0, task: str = "sudoku") -> dict:
    """A real fixture record with every part the leaderboard reads: curves, difficulty buckets
    and an OOD split, all consistent (906 of 1,000 right)."""
    record = json.loads((FIXTURES / "trm" / "sudoku" / "mini" / "seed0.json").read_text())
    record.update(model=model, seed=seed, task=task)
    metrics = record["metrics"]
    metrics["by_step"] = {"exact": [0.5, 0.906], "token": [0.9, 0.998], "halted": [0.5, 0.5], "residual": [0.1, 0.01]}
    metrics["by_difficulty"] = {"kind": "rating", "buckets": [
        {"name": "0", "n_test_examples": 600, "exact_correct": 580, "exact_accuracy": 580 / 600},
        {"name": "1-2", "n_test_examples": 400, "exact_correct": 326, "exact_accuracy": 326 / 400}]}
    metrics["ood"] = {"n_test_examples": 10, "exact_correct": 5, "exact_accuracy": 0.5,
                      "exact_accuracy_ci95": list(wilson_interval(5, 10)),
                      "by_step": {"exact": [0.3, 0.5], "token": [0.8, 0.9]}, "definition": "more blanks"}
    return record


def skipped_reasons(site: leaderboard.Site) -> dict[str, str]:
    """{record file name: reason} of the skipped records."""
    return {Path(s.file).name: s.reason for s in site.skipped}


def all_text(site_dir: Path) -> str:
    return "\n".join(p.read_text() for p in site_dir.rglob("*") if p.suffix in (".html", ".md", ".json", ".svg"))


@contextmanager
def deadline(seconds: int):
    """Fail, not hang, when the block blocks (a FIFO opened for reading waits for a writer)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- numbers at the edge -------------------------------------------------------------------
def _text_with(value: str, path: tuple) -> str:
    """rich_record() as JSON text with the number at ``path`` written as ``value`` (any literal)."""
    record = rich_record(model="edge")
    node = record
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "@@VALUE@@"
    return json.dumps(record).replace('"@@VALUE@@"', value)


@pytest.mark.parametrize("value, path, reason", [
    ("1e308", ("cost", "device_hours"), "cost/device_hours 1e+308 is larger than 1e+30"),
    ("1" + "0" * 400, ("cost", "params"), "cost/params an integer of 401 digits is larger than 2**53"),
    ("1" + "0" * 400, ("metrics", "n_test_examples"), "metrics/n_test_examples an integer of 401 digits"),
    ("-" + "9" * 400, ("seed",), "seed an integer of 400 digits does not fit in 64 bits"),
    (str(2**53 + 1), ("cost", "peak_memory_bytes"), "is larger than 2**53"),
    ("1" + "0" * 5000, ("cost", "params"), "Exceeds the limit (4300 digits)"),
    ("Infinity", ("cost", "device_hours"), "Infinity is not a number"),
    ("-Infinity", ("metrics", "token_accuracy"), "-Infinity is not a number"),
    ("NaN", ("metrics", "by_step", "exact", 0), "NaN is not a number"),
    ("1e999", ("cost", "train_flops"), "number 1e999 is out of range"),
    ("5e-324", ("cost", "device_hours"), "cost/device_hours 4.94066e-324 is smaller than 1e-30"),
    ("1e31", ("cost", "flops_per_example_forward", "mean"), "is larger than 1e+30"),
])
def test_extreme_numbers_skip_their_record_and_the_rest_is_built(tmp_path, value, path, reason):
    results = tmp_path / "res"
    put(results, make_record(model="good"))
    (results / "edge.json").write_text(_text_with(value, path))
    site = leaderboard.build(results, tmp_path / "site", reported=None)
    assert [r["model"] for r in site.rows] == ["good"]
    assert reason in skipped_reasons(site)["edge.json"]
    assert "\n" not in skipped_reasons(site)["edge.json"] and len(skipped_reasons(site)["edge.json"]) < 400
    for name in OUTPUTS:
        assert (tmp_path / "site" / name).is_file()
    json.loads((tmp_path / "site" / "leaderboard.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_device_hours_whose_sum_overflows_never_reach_a_mean(tmp_path):
    """1e308 + 1e308 is inf: each seed is refused alone, before any sum."""
    results = tmp_path / "res"
    for seed in (0, 1):
        put(results, make_record(model="hours", seed=seed, device_hours=1e308))
    put(results, make_record(model="good"))
    site = leaderboard.build(results, tmp_path / "site", reported=None)
    assert [r["model"] for r in site.rows] == ["good"] and len(site.skipped) == 2
    assert all("device_hours 1e+308 is larger than 1e+30" in s.reason for s in site.skipped)


def test_numbers_at_the_allowed_edges_are_tabled_and_plotted(tmp_path, real_charts):
    """The largest and smallest numbers a record may carry render everywhere, charts included."""
    results = tmp_path / "res"
    big = make_record(model="big", correct=10, params=2**53, params_extra=2**53, device_hours=1e30, train_flops=1e30,
                      device_count=2**53, peak_memory_bytes=2**53)
    big["cost"]["flops_per_example_forward"] = {"mean": 1e30, "p95": 1e30, "examples": 2**53}
    big["metrics"].update(n_test_examples=2**53, exact_correct=2**53, exact_accuracy=1.0,
                          exact_accuracy_ci95=[0.5, 1.0])
    small = make_record(model="small", correct=0, device_hours=1e-30, train_flops=1e-30)
    small["cost"]["flops_per_example_forward"] = {"mean": 1e-30, "p95": 1e-30, "examples": 1}
    small["metrics"]["exact_accuracy_ci95"] = [0.0, 0.3]
    put(results, big)
    put(results, small)
    put(results, make_record(model="zero", device_hours=0.0, train_flops=0.0))
    site = leaderboard.build(results, tmp_path / "site", reported=None)
    assert not site.skipped and not site.warnings
    assert sorted(r["model"] for r in site.rows) == ["big", "small", "zero"]
    for suffix in ("params", "flops", "hours"):
        assert (tmp_path / "site" / "plots" / f"sudoku-mini-{suffix}.svg").read_text().startswith("<svg ")
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    assert f"{2**53:,}" in md and "1e+30" in md


# --- records that contradict themselves ----------------------------------------------------
def _bucket(record, index, **values):
    record["metrics"]["by_difficulty"]["buckets"][index].update(values)


INCONSISTENT = [
    ("accuracy-of-no-count", lambda r: r["metrics"].update(exact_accuracy=1.0, exact_correct=0,
                                                          exact_accuracy_ci95=[0.99, 1.0]),
     "metrics: exact_accuracy 1 is not 0 of 1,000 (0)"),
    ("correct-above-n", lambda r: r["metrics"].update(exact_correct=1001), "exact_correct 1,001 is larger than "
                                                                            "n_test_examples 1,000"),
    ("accuracy-of-none", lambda r: r["metrics"].update(n_test_examples=0, exact_correct=0, exact_accuracy=0.5),
     "exact_accuracy 0.5 of no test examples"),
    ("interval-misses", lambda r: r["metrics"].update(exact_accuracy_ci95=[0.1, 0.2]),
     "exact_accuracy_ci95 [0.1, 0.2] does not contain exact_accuracy 0.906"),
    ("interval-backwards", lambda r: r["metrics"].update(exact_accuracy_ci95=[0.95, 0.85]), "runs backwards"),
    ("task-interval-misses", lambda r: r["metrics"].update(valid_path=0.9, valid_path_ci95=[0.0, 0.1]),
     "valid_path_ci95 [0, 0.1] does not contain valid_path 0.9"),
    ("ood-above-n", lambda r: r["metrics"]["ood"].update(exact_correct=5000, exact_accuracy=None),
     "metrics/ood: exact_correct 5,000 is larger than n_test_examples 10"),
    ("ood-accuracy", lambda r: r["metrics"]["ood"].update(exact_accuracy=0.9, exact_accuracy_ci95=None),
     "metrics/ood: exact_accuracy 0.9 is not 5 of 10"),
    ("ood-interval", lambda r: r["metrics"]["ood"].update(exact_accuracy_ci95=[0.0, 0.1]),
     "metrics/ood: exact_accuracy_ci95"),
    ("bucket-above-n", lambda r: _bucket(r, 0, n_test_examples=1, exact_correct=900, exact_accuracy=None),
     "bucket '0': exact_correct 900 is larger than n_test_examples 1"),
    ("bucket-accuracy", lambda r: _bucket(r, 1, exact_accuracy=0.1),
     "bucket '1-2': exact_accuracy 0.1 is not 326 of 400"),
    ("buckets-hold-more", lambda r: _bucket(r, 1, n_test_examples=4000, exact_correct=3260, exact_accuracy=0.815),
     "the buckets' n_test_examples sum to 4,600, more than the test split's 1,000"),
    ("buckets-right-more", lambda r: _bucket(r, 0, exact_correct=600, exact_accuracy=1.0),
     "the buckets' exact_correct sum to 926, more than the test split's 906"),
    ("bucket-twice", lambda r: _bucket(r, 1, name="0"), "bucket '0' appears more than once"),
    ("curves-differ", lambda r: r["metrics"]["by_step"].update(token=[0.9]), "by_step curves of different lengths"),
    ("halted-above-all", lambda r: r["metrics"]["by_step"].update(halted=[0.9, 0.9]), "sum to 1.8, more than 1"),
    ("ood-curves-differ", lambda r: r["metrics"]["ood"]["by_step"].update(exact=[0.1, 0.2, 0.3]),
     "metrics/ood: by_step curves of different lengths"),
    ("train-flops", lambda r: r["cost"].update(train_flops=1.0), "train_flops 1 is not train_flops_per_step"),
    ("float-counts", lambda r: r["metrics"].update(exact_correct=5000.0), "exact_correct 5000 is larger"),
    ("lone-surrogate", lambda r: r.update(model="trm\ud800"), "lone surrogate ('\\ud800')"),
]


@pytest.mark.parametrize("name, mutate, reason", INCONSISTENT, ids=[c[0] for c in INCONSISTENT])
def test_a_record_that_contradicts_itself_is_skipped_with_the_reason(tmp_path, name, mutate, reason):
    record = rich_record(model=name)
    mutate(record)
    assert lb_load.consistency_problems(record), name
    assert any(reason in p for p in lb_load.consistency_problems(record)), lb_load.consistency_problems(record)
    results = tmp_path / "res"
    put(results, rich_record(model="good"))
    (results / "bad.json").write_text(json.dumps(record))
    site = leaderboard.build(results, tmp_path / "site", reported=None)
    assert [r["model"] for r in site.rows] == ["good"]
    assert skipped_reasons(site)["bad.json"].startswith("inconsistent: ")
    assert reason in skipped_reasons(site)["bad.json"]
    assert name not in all_text(tmp_path / "site").replace("bad.json", "")


def test_consistent_records_have_no_problems():
    assert lb_load.consistency_problems(rich_record()) == []
    for path in sorted(FIXTURES.rglob("*.json")):  # real runs: an interval 2e-19 above an accuracy of 0 is rounding
        assert lb_load.consistency_problems(json.loads(path.read_text())) == [], path
    diverged = make_record()
    diverged.update(status="diverged", metrics=None)
    assert lb_load.consistency_problems(diverged) == []


def test_several_problems_are_counted_in_one_line(tmp_path):
    record = rich_record(model="many")
    record["metrics"].update(exact_correct=0)  # accuracy, interval and buckets all disagree now
    put(tmp_path / "res", record)
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    (reason,) = skipped_reasons(site).values()
    assert re.fullmatch(r"inconsistent: metrics: exact_accuracy 0.906 is not 0 of 1,000 \(0\) \(and \d+ more\)", reason)


# --- files that are not record files -------------------------------------------------------
def test_fifos_devices_folders_and_oversized_files_are_skipped_unread(tmp_path):
    results = tmp_path / "res"
    put(results, make_record(model="good"))
    os.mkfifo(results / "fifo.json")  # opened for reading, it would wait for a writer for ever
    (results / "zero.json").symlink_to("/dev/zero")  # read whole, it would fill the memory
    (results / "null.json").symlink_to("/dev/null")
    (results / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (results / "folder.json").mkdir()
    with open(results / "big.json", "wb") as handle:  # sparse: no disk used
        handle.truncate(lb_load.MAX_RECORD_BYTES + 1)
    sock = socket.socket(socket.AF_UNIX)
    sock_path = results / "s.json"
    if len(str(sock_path)) < 100:
        sock.bind(str(sock_path))
    with deadline(60):
        site = leaderboard.build(results, tmp_path / "site", reported=None)
    sock.close()
    reasons = skipped_reasons(site)
    assert reasons["fifo.json"] == "not a regular file: a FIFO"
    assert reasons["zero.json"] == reasons["null.json"] == "not a regular file: a character device"
    assert reasons["dangling.json"] == "No such file or directory"
    assert reasons["folder.json"] == "not a regular file: a folder"
    assert reasons["big.json"] == "larger than 16 MiB"
    if sock_path.exists():
        assert reasons["s.json"] == "not a regular file: a socket"
    assert [r["model"] for r in site.rows] == ["good"]


def test_a_link_to_a_regular_file_is_read_like_the_file(tmp_path):
    """Results gathered by symbolic links (to files inside or outside the folder) are used; a
    linked folder is not searched (no loops)."""
    results, elsewhere = tmp_path / "res", tmp_path / "elsewhere"
    inside = put(results, make_record(model="inside"), "real/inside.json")
    outside = put(elsewhere, make_record(model="outside"), "outside.json")
    (results / "link-inside.json").symlink_to(inside)
    (results / "link-outside.json").symlink_to(outside)
    put(elsewhere, make_record(model="in-linked-folder"), "sub/seed0.json")
    (results / "linked-folder").symlink_to(elsewhere / "sub")
    (results / "loop").symlink_to(results)
    site = leaderboard.build(results, tmp_path / "site", reported=None)
    assert not site.skipped
    row = {r["model"]: r for r in site.rows}
    assert set(row) == {"inside", "outside"} and site.records == 3
    assert row["inside"]["files"] == ["link-inside.json", "real/inside.json"]  # the file and its link


def test_read_untrusted_refuses_a_file_swapped_for_a_fifo_after_its_stat(tmp_path, monkeypatch):
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(untrusted.os, "stat",  # the first check sees a regular file
                        lambda p, *a, **k: real_stat(__file__ if Path(p) == fifo else p, *a, **k))
    with deadline(20), pytest.raises(ValueError, match="not a regular file: a FIFO"):
        lb_load.read_untrusted(fifo)  # O_NONBLOCK: the open returns at once; fstat tells


def test_a_file_growing_past_the_cap_while_read_is_cut(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_bytes(b" " * 100)
    monkeypatch.setattr(lb_load, "MAX_RECORD_BYTES", 50)
    with pytest.raises(ValueError, match="larger than"):
        lb_load.read_untrusted(path)


# --- records that cannot be rendered -------------------------------------------------------
def _three_models(results: Path) -> None:
    for model, correct in (("alpha", 9), ("boom", 7), ("gamma", 5)):
        put(results, rich_record(model=model) if model != "gamma" else make_record(model=model, correct=correct))


def test_a_row_that_cannot_be_rendered_is_skipped_with_its_reason(tmp_path, monkeypatch):
    _three_models(tmp_path / "res")
    label = pages.model_label
    monkeypatch.setattr(pages, "model_label", lambda r: 1 / 0 if r["model"] == "boom" else label(r))
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert [r["model"] for r in site.rows] == ["alpha", "gamma"] and site.records == 2
    assert skipped_reasons(site) == {"seed0.json": "cannot be rendered: ZeroDivisionError: division by zero"}
    assert site.skipped[0].file.endswith("boom/sudoku/mini/seed0.json")
    assert "boom" not in all_text(tmp_path / "site").replace("boom/sudoku/mini/seed0.json", "")
    assert json.loads((tmp_path / "site" / "leaderboard.json").read_text())["records"] == 2


def test_a_row_a_chart_cannot_draw_is_left_out_of_every_chart_and_table(tmp_path, monkeypatch):
    """The difficulty chart fails on one row: that row goes, and the track's charts drawn before
    it (accuracy against cost) are drawn again without it."""
    _three_models(tmp_path / "res")
    draw = plots.difficulty_plot
    monkeypatch.setattr(plots, "difficulty_plot",
                        lambda rows, title: (_ for _ in ()).throw(OverflowError("too wide"))
                        if any(r["model"] == "boom" for r in rows) else draw(rows, title))
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert [r["model"] for r in site.rows] == ["alpha", "gamma"]
    assert list(skipped_reasons(site).values()) == ["cannot be drawn: OverflowError: too wide"]
    text = all_text(tmp_path / "site")
    assert "boom" not in text.replace("boom/sudoku/mini/seed0.json", "") and ">alpha<" in text
    assert (tmp_path / "site" / "plots" / "sudoku-mini-difficulty.svg").exists()  # drawn without it


def test_a_chart_that_fails_only_with_rows_together_is_left_out_with_a_warning(tmp_path, monkeypatch):
    _three_models(tmp_path / "res")
    draw = plots.depth_plot
    monkeypatch.setattr(plots, "depth_plot", lambda rows, title, key="by_step_exact": (
        (_ for _ in ()).throw(ValueError("crowded")) if len(rows) > 1 else draw(rows, title, key)))
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert len(site.rows) == 3 and not site.skipped
    assert any("sudoku, mini track, depth: chart not drawn: ValueError: crowded" in w for w in site.warnings)
    assert not (tmp_path / "site" / "plots" / "sudoku-mini-depth.svg").exists()
    assert (tmp_path / "site" / "plots" / "sudoku-mini-params.svg").exists()


def test_the_only_record_unrenderable_leaves_an_empty_site_not_a_crash(tmp_path, monkeypatch):
    put(tmp_path / "res", make_record(model="boom"))
    monkeypatch.setattr(pages, "model_label", lambda r: 1 / 0)
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert site.rows == [] and len(site.skipped) == 1
    for name in OUTPUTS:
        assert (tmp_path / "site" / name).is_file()


def test_every_row_unrenderable_is_a_bug_and_fails_loudly_leaving_the_old_site(tmp_path, monkeypatch):
    _three_models(tmp_path / "res")
    leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    before = {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    monkeypatch.setattr(pages, "model_label", lambda r: r["no such field"])
    with pytest.raises(RuntimeError, match="none of the 3 leaderboard rows can be rendered; the first: KeyError"):
        leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "site"]  # no temporary folder left


def test_tex_and_markup_in_legends_and_ticks_are_text(tmp_path, real_charts):
    """Model and bucket names reach chart legends and axis ticks: "$" there is not TeX (a broken
    formula would fail the drawing), "<" is escaped."""
    record = rich_record(model="cost $5 \\frac{ <b>")
    record["metrics"]["by_difficulty"]["buckets"][0]["name"] = "$\\sqrt{"
    put(tmp_path / "res", record)
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    assert not site.skipped and not site.warnings
    depth = (tmp_path / "site" / "plots" / "sudoku-mini-depth.svg").read_text()
    difficulty = (tmp_path / "site" / "plots" / "sudoku-mini-difficulty.svg").read_text()
    assert "cost $5 \\frac{ &lt;b&gt;" in depth and "$\\sqrt{" in difficulty and "<b>" not in depth


def test_plot_names_of_tasks_and_tracks_that_join_alike_stay_apart(tmp_path):
    put(tmp_path / "res", make_record(model="one", task="a", preset="b-c"))
    put(tmp_path / "res", make_record(model="two", task="a-b", preset="c"))
    leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    first, second = (tmp_path / "site" / "task-a.html").read_text(), (tmp_path / "site" / "task-a-b.html").read_text()
    charts = [set(re.findall(r'href="(plots/[^"]+)"', page)) for page in (first, second)]
    assert len(charts[0]) == len(charts[1]) > 0 and not charts[0] & charts[1]
    assert all(">one<" in (tmp_path / "site" / c).read_text() for c in charts[0])
    assert all(">two<" in (tmp_path / "site" / c).read_text() for c in charts[1])


# --- the site replaced whole ---------------------------------------------------------------
def test_a_new_build_replaces_the_old_site_whole(tmp_path):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(model="a", task="sudoku"))
    put(results, make_record(model="b", task="maze"))
    leaderboard.build(results, site, reported=None)
    assert (site / "task-maze.html").exists()
    (results / "b" / "maze" / "mini" / "seed0.json").unlink()
    leaderboard.build(results, site, reported=None)
    assert not (site / "task-maze.html").exists() and not list(site.glob("plots/maze-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "site"]


def test_a_failed_build_leaves_the_old_site_untouched_and_no_temporary_folder(tmp_path, monkeypatch):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(model="a"))
    leaderboard.build(results, site, reported=None)
    before = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    put(results, make_record(model="b"))
    for failure in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        def fail(*args, failure=failure):
            raise failure

        with monkeypatch.context() as patched:
            patched.setattr(pages, "markdown", fail)  # the very last file written
            with pytest.raises(type(failure)):
                leaderboard.build(results, site, reported=None)
        assert {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "site"]


def test_a_failed_move_puts_the_old_site_back(tmp_path, monkeypatch):
    results, site = tmp_path / "res", tmp_path / "site"
    put(results, make_record(model="a"))
    leaderboard.build(results, site, reported=None)
    before = (site / "leaderboard.json").read_text()
    rename = os.rename
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        rename(src, dst)

    monkeypatch.setattr(leaderboard.os, "rename", second_fails)
    with pytest.raises(OSError):
        leaderboard.build(results, site, reported=None)
    monkeypatch.undo()
    assert (site / "leaderboard.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "site"]


def test_only_an_old_site_or_an_empty_folder_is_replaced(tmp_path):
    results = tmp_path / "res"
    put(results, make_record(model="a"))
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="not a leaderboard site"):
        leaderboard.build(results, home, reported=None)
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        leaderboard.build(results, tmp_path / "file", reported=None)
    with pytest.raises(UserError, match="holds the results folder"):
        leaderboard.build(results, tmp_path, reported=None)
    with pytest.raises(UserError, match="holds the results folder"):
        leaderboard.build(results, results, reported=None)
    (tmp_path / "empty").mkdir()
    leaderboard.build(results, tmp_path / "empty", reported=None)
    assert (tmp_path / "empty" / "index.html").exists()
    leaderboard.build(results, tmp_path / "new" / "deeper", reported=None)
    assert (tmp_path / "new" / "deeper" / "index.html").exists()


def test_the_cli_refuses_to_replace_a_folder_that_is_not_a_site(tmp_path):
    from .conftest import call_cli

    put(tmp_path / "res", make_record(model="a"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("mine")
    result = call_cli("leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "docs"),
                      "--reported", "none")
    assert result.returncode == 2 and "not a leaderboard site" in result.stderr
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["notes.md"]


def test_a_link_to_the_site_stays_a_link(tmp_path):
    results = tmp_path / "res"
    put(results, make_record(model="a"))
    leaderboard.build(results, tmp_path / "real", reported=None)
    (tmp_path / "served").symlink_to(tmp_path / "real")
    put(results, make_record(model="b"))
    leaderboard.build(results, tmp_path / "served", reported=None)
    assert (tmp_path / "served").is_symlink()
    measured = json.loads((tmp_path / "real" / "leaderboard.json").read_text())["measured"]
    assert [r["model"] for r in measured] == ["a", "b"]


def test_files_are_0644_and_folders_0755(tmp_path):
    put(tmp_path / "res", _sudoku_with_pictures())
    previous = os.umask(0o022)
    try:
        built = leaderboard.build(tmp_path / "res", tmp_path / "site", reported=None)
    finally:
        os.umask(previous)
    site = tmp_path / "site"
    modes = {p.relative_to(site).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [site, *site.rglob("*")]}
    assert {"leaderboard.json", "leaderboard.md", "index.html", "plots", "configs", "pictures"} <= set(modes)
    assert not built.warnings
    assert any(name.endswith(".png") for name in modes) and any(name.endswith(".svg") for name in modes)
    for name, mode in modes.items():
        assert mode == (0o755 if (site / name).is_dir() else 0o644), (name, oct(mode))


def _sudoku_with_pictures() -> dict:
    record = json.loads((FIXTURES / "trm" / "sudoku" / "smoke" / "seed0.json").read_text())
    record["preset"] = "mini"
    return record


# --- markup in names -----------------------------------------------------------------------
HOSTILE_NAMES = ["[x](http://evil)", "![](http://evil/i.png)", "`rm -rf`", "a|b", "<script>alert(1)</script>",
                 "*bold* _it_ ~~gone~~", "$x^2$", "[ref]: http://evil", "<http://evil>", "&lt;", "\\[x\\](http://evil)"]


def test_markup_in_record_strings_is_text_in_markdown_and_html(tmp_path):
    import markdown_it
    results, site = tmp_path / "res", tmp_path / "site"
    for i, name in enumerate(HOSTILE_NAMES):
        record = make_record(model=name, preset="mini", device=name, seed=i)
        record["provenance"]["git_commit"] = "[c](http:/"
        put(results, record, f"r{i}.json")
    put(results, make_record(model="m", preset="![p](http://evil)", task="[t](http://evil)"), "other.json")
    built = leaderboard.build(results, site, reported=None)
    assert not built.skipped and len(built.rows) == len(HOSTILE_NAMES) + 1
    rendered = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(
        (site / "leaderboard.md").read_text())
    tags = set(re.findall(r"<([a-z0-9]+)", rendered))
    assert tags <= {"h1", "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td"}, tags  # no a, img, code, em
    cells = [row for row in Tables(rendered).tables[""] if len(row) > 10 and row[1] != "model"]
    for name in HOSTILE_NAMES:  # each name reads back as itself, in its own cell (model after the rank; device)
        assert any(row[1] == name and row[10] == name for row in cells), name
    for page in site.glob("*.html"):
        text = page.read_text()
        assert not re.search(r'(?:href|src)="(?!data:,")(?:[a-z]+:|//)', text), page  # the site's own files only
        assert text.count("<script") == 1 and "<b>" not in text
    index = Tables((site / "index.html").read_text()).tables["sortable measured"]
    assert {row[1] for row in index[1:]} >= set(HOSTILE_NAMES)


# --- generated records ---------------------------------------------------------------------
def _number_paths(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _number_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _number_paths(item, (*path, i))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path


BASE = rich_record()
NUMBER_PATHS = [p for p in _number_paths(BASE) if p[0] in ("metrics", "cost", "seed")]
STRING_PATHS = [("model",), ("task",), ("preset",), ("cost", "device"), ("provenance", "git_commit"),
                ("provenance", "finished"), ("metrics", "by_difficulty", "kind"),
                ("metrics", "by_difficulty", "buckets", 0, "name"), ("metrics", "ood", "definition")]
MARKUP = ["[x](http://evil)", "![](x)", "`", "|", "<script>", "$\\frac{", "\x1b[2J", "\n", "\ud800", "*", "&amp;",
          "\u202e", "\x00", "é", "💥"]

extreme_numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-3, max_value=2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1),
    st.sampled_from([0, 0.0, -1, 1e308, 2**53, 2**53 + 1, 5e-324, 1e-30, 1e30, 10**400,
                     math.inf, -math.inf, math.nan]),
)
names = st.lists(st.one_of(st.sampled_from(MARKUP), st.text(max_size=8)), min_size=1, max_size=4).map("".join)

@st.composite
def generated_records(draw) -> dict:
    record = json.loads(json.dumps(BASE))
    for path in draw(st.lists(st.sampled_from(NUMBER_PATHS), max_size=4, unique=True)):
        node = record
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = draw(extreme_numbers)
    for path in draw(st.lists(st.sampled_from(STRING_PATHS), max_size=2, unique=True)):
        node = record
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = draw(names)
    return record

def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, allow_nan=True)  # NaN and Infinity as the literals Python's json reads
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # "\ud800" in a record: written as JSON writes it

@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated_records())
def test_generated_records_are_checked_without_raising(real_charts, record):
    problems = lb_load.consistency_problems(record)
    assert isinstance(problems, list)
    assert all(isinstance(p, str) and "\n" not in p and len(p) < 600 for p in problems)
    text = json.dumps(record, allow_nan=True).encode()
    try:
        parsed = lb_load.parse_untrusted(text, "r.json")
    except (ValueError, UserError) as exc:
        assert str(exc) and "\n" not in untrusted.printable(str(exc))
        return
    assert lb_load.consistency_problems(parsed) == []
    rows = leaderboard.aggregate([{**parsed, "_file": "r.json"}])
    for row in rows:
        json.dumps(row, allow_nan=False)  # every number a row holds is finite
        pages.markdown_row({**row, "config": "configs/x.json"})
        pages.measured_table([{**row, "config": "configs/x.json"}])
        for key, label, _ in plots.COST_AXES[1:]:  # the real charts (forward FLOPs, device-hours: the floats)
            plots.accuracy_plot(rows, key, label, "generated")

@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(generated_records(), min_size=1, max_size=3))
def test_generated_records_never_break_the_build(tmp_path_factory, records):
    tmp = tmp_path_factory.mktemp("gen")
    results, site_dir = tmp / "res", tmp / "site"
    files = {}
    for i, record in enumerate(records):
        files[f"r{i}.json"] = record
        _write(results / f"r{i}.json", record)
    put(results, make_record(model="control"), "control.json")
    site = leaderboard.build(results, site_dir, reported=None)  # never raises
    for name in OUTPUTS:
        assert (site_dir / name).is_file()
    summary = json.loads((site_dir / "leaderboard.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    used = {f for row in site.rows for f in row["files"]}
    skipped = {Path(s.file).name: s.reason for s in site.skipped}
    assert "control.json" in used
    for name, record in files.items():  # each record is on the leaderboard or skipped with its reason
        if name in skipped:
            assert name not in used and skipped[name] and "\n" not in skipped[name]
        else:
            assert name in used or lb_tracks.track(record) is None, name  # or a smoke run, never listed
    assert summary["records"] == site.records == len(files) + 1 - len(skipped)
    assert len(summary["skipped"]) == len(skipped)
    for row in site.rows:
        assert (site_dir / pages.task_page(row["task"])).is_file()


# --- records through publish and reproduce ---------------------------------------------------
# Both read a record as the leaderboard does; publish refuses what the leaderboard would skip,
# reproduce re-runs a record from its data alone (never its command line).

def _quiet_call(main, argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of a script's ``main``, in this process."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _published_record(**fields) -> dict:
    record = rich_record()
    record["provenance"].update(git_commit="a" * 40, git_dirty=False)
    record.update(fields)
    return record


def _hostile_sweep_files(sweep: Path) -> dict[str, str]:
    """{case: the fragment its one-line refusal must hold}, each written as the only row of its own folder."""
    cases = {}
    place = sweep / "trm" / "sudoku" / "mini"

    def case(name: str, fragment: str, writer) -> None:
        folder = place.parent.parent.parent / name / "trm" / "sudoku" / "mini"
        folder.mkdir(parents=True)
        writer(folder / "seed0.json")
        cases[name] = fragment

    case("fifo", "not a regular file: a FIFO", lambda p: os.mkfifo(p))
    case("dev-zero", "not a regular file: a character device", lambda p: p.symlink_to("/dev/zero"))
    case("deep", "nested too deeply", lambda p: p.write_text("[" * 100_000 + "]" * 100_000))
    case("nan", "NaN is not a number", lambda p: _write(p, _published_record(metrics={
        **rich_record()["metrics"], "token_accuracy": math.nan})))
    case("inconsistent", "inconsistent: metrics: exact_correct", lambda p: _write(p, _published_record(metrics={
        **rich_record()["metrics"], "exact_correct": 2000})))
    case("elsewhere", "which belongs at hrm/sudoku/mini/seed0.json", lambda p: _write(p, _published_record(model="hrm")))
    case("empty", "schema_version", lambda p: p.write_text("{}"))
    case("escape", "\\x1b[2J", lambda p: _write(p, _published_record(model="trm\x1b[2J")))
    del place
    return cases


def test_publish_refuses_what_the_leaderboard_would_skip_in_one_line(tmp_path):
    from reasonbench_benchmarks.publish import main as publish
    from reasonbench_benchmarks.publish import portable

    root, into = tmp_path / "sweeps", tmp_path / "into"
    cases = _hostile_sweep_files(root)
    for name, fragment in cases.items():
        with deadline(20):
            code, err = _quiet_call(publish, [str(root / name), "--into", str(into)])
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and fragment in err and "\x1b" not in err, (name, err)
        assert not into.exists(), name
    good = root / "good" / "trm" / "sudoku" / "mini" / "seed0.json"
    _write(good, _published_record())
    assert _quiet_call(publish, [str(root / "good"), "--into", str(into)])[0] == 0
    # as written, but for the run's absolute output folder, named as the standard layout's
    assert (into / "trm/sudoku/mini/seed0.json").read_text() == \
        portable(json.loads(good.read_text()), good.read_text())


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated_records())
def test_generated_records_through_publish(tmp_path_factory, record):
    """publish takes a record exactly when the leaderboard would and its place says what it
    holds; anything else is one line, exit 2, nothing written."""
    from reasonbench.record.schema import record_path
    from reasonbench.config.registry import is_plain_name
    from reasonbench_benchmarks.publish import main as publish
    from reasonbench_benchmarks.publish import portable

    tmp = tmp_path_factory.mktemp("pub")
    sweep, into = tmp / "sweep", tmp / "into"
    if isinstance(record["provenance"].get("git_commit"), str) or record["provenance"].get("git_commit") is None:
        record["provenance"]["git_commit"] = record["provenance"]["git_commit"] or "a" * 40
    record["provenance"]["git_dirty"] = False
    plain = all(isinstance(record[k], str) and is_plain_name(record[k])
                for k in ("model", "task", "preset")) and isinstance(record["seed"], int) \
        and 0 <= record["seed"] < 2**32  # a longer seed makes no file name
    place = record_path(sweep, record["model"], record["task"], record["preset"], record["seed"]) if plain \
        else sweep / "trm" / "sudoku" / "mini" / "seed0.json"
    _write(place, record)
    data = place.read_bytes()
    try:
        lb_load.parse_untrusted(data, "r.json")
        taken = True
    except (ValueError, UserError):
        taken = False
    code, err = _quiet_call(publish, [str(sweep), "--into", str(into)])
    if code == 0:
        assert taken and plain
        assert (into / place.relative_to(sweep)).read_text() == portable(json.loads(data), data.decode())
    else:
        assert code == 2 and err.count("\n") == 1 and "\x1b" not in err and "Traceback" not in err, err
        assert not into.exists()
        commit = record["provenance"]["git_commit"]
        assert not (taken and plain and isinstance(commit, str) and len(commit) >= 10), err


def _committed(tmp_path: Path, overrides: dict | None = None, command: str | None = None) -> Path:
    record = _published_record()
    if overrides is None:
        record["provenance"].pop("overrides", None)
    else:
        record["provenance"]["overrides"] = overrides
    if command is not None:
        record["provenance"]["command"] = command
    path = tmp_path / "seed0.json"
    _write(path, record)
    return path


CMD = "reasonbench run --model trm --task sudoku --preset mini --seed 0 "
REFUSED_RECORDS = {  # the record's provenance: (overrides, command) -> fragment of the one-line refusal
    "config-inline-out": (None, CMD + "--config '{\"out\": \"/srv/elsewhere\"}'", "setting config="),
    "config-file": (None, CMD + "--config /etc/shadow", "setting config=/etc/shadow"),
    "logger-save-dir": (None, CMD + "--trainer.logger CSVLogger --trainer.logger.save_dir /srv/x",
                        "setting trainer.logger.save_dir"),
    "callback-dirpath": (None, CMD + "--trainer.callbacks.dirpath /srv/x", "setting trainer.callbacks.dirpath"),
    "task-path": ({"task.path": "/etc"}, None, "names a place"),
    "default-root-dir": ({"trainer.default_root_dir": "/srv/x"}, None, "not a setting reproduce re-runs"),
    "callbacks": ({"trainer.callbacks": [{"class_path": "planted.Foo"}]}, None, "not a setting reproduce re-runs"),
    "class-in-model": ({"model.block": {"class_path": "planted.Foo", "init_args": {}}}, None, "names a class"),
    "module-name": ({"model.activation": "planted.gelu"}, None, "names a module or class"),
    "path-in-value": ({"model.vocab": ["a", "../../x"]}, None, "holds a path"),
    "out": ({"out": "/srv/x"}, None, "not a setting reproduce re-runs"),
    "escape": ({"model.\x1b[2J": 1}, None, "\\x1b[2J"),
}


@pytest.mark.parametrize("case", list(REFUSED_RECORDS))
def test_reproduce_refuses_settings_that_name_places_or_code(case, tmp_path, monkeypatch):
    from reasonbench.execution import execute as execute_module
    from reasonbench_benchmarks.reproduce import main as reproduce

    overrides, command, fragment = REFUSED_RECORDS[case]
    path = _committed(tmp_path, overrides, command)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(execute_module, "execute", lambda *a, **k: pytest.fail("a refused record was run"))
    before = sorted(tmp_path.rglob("*"))
    code, err = _quiet_call(reproduce, [str(path)])
    assert code == 2 and err.count("\n") == 1 and fragment in err and "\x1b" not in err, err
    assert sorted(tmp_path.rglob("*")) == before


def test_reproduce_refuses_unreadable_records_in_one_line(tmp_path):
    from reasonbench_benchmarks.reproduce import main as reproduce

    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    evaluation = tmp_path / "eval.json"
    _write(evaluation, _published_record(mode="eval"))
    threads = tmp_path / "threads.json"
    record = _published_record()
    record["provenance"]["cpu"] = {"model": "x", "threads": 10**9}
    _write(threads, record)
    for path, fragment in ((empty, "'schema_version' is a required property"), (fifo, "a FIFO"),
                           (zero, "a character device"), (deep, "nested too deeply"),
                           (tmp_path / "missing.json", "No such file"), (evaluation, "re-runs training records"),
                           (threads, "provenance/cpu/threads")):
        with deadline(20):
            code, err = _quiet_call(reproduce, [str(path)])
        assert code == 2 and err.count("\n") == 1 and fragment in err, (path, err)


def test_reproduce_runs_the_recorded_overrides_in_a_folder_of_its_own(tmp_path, monkeypatch):
    """The data of the record decides the run: its names, seed and overrides (an older record's
    from its command), the output a fresh temporary folder, whatever the record says."""
    from reasonbench.execution import execute as execute_module
    from reasonbench_benchmarks.reproduce import main as reproduce

    seen = []

    def execute(cfg, mode="train", command=None, **kwargs):
        seen.append(cfg)
        again = _published_record()
        return again

    monkeypatch.setattr(execute_module, "execute", execute)
    monkeypatch.chdir(tmp_path)
    for overrides, command in (({"trainer.max_steps": 7, "optim.lr": 0.003}, None),
                               (None, CMD + "--out /elsewhere --trainer.max_steps 7 --optim.lr 0.003 --resume")):
        path = _committed(tmp_path, overrides, command)
        assert _quiet_call(reproduce, [str(path)])[0] == 0
        cfg = seen[-1]
        assert (cfg.model, cfg.task, cfg.preset, cfg.seed) == ("trm", "sudoku", "mini", 0)
        assert cfg.overrides == {"optim.lr": 0.003, "trainer.max_steps": 7}
        assert Path(cfg.out).name.startswith("reasonbench-reproduce-") and not Path(cfg.out).exists()
        assert "logger" not in cfg.trainer_args or cfg.trainer_args["logger"] is None


ALLOWED_NAMES = ["model.hidden_size", "task.num_train", "optim.lr", "trainer.max_steps", "trainer.precision"]
REFUSED_NAMES = ["out", "config", "trainer.logger", "trainer.callbacks", "trainer.default_root_dir", "task.path",
                 "model.cache_dir", "trainer.logger.save_dir", "../x", "model", "x.y"]
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
                                     st.sampled_from(["/etc/shadow", "planted.Foo", "~/x", "hf://a/b", "a\\b"])),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.sampled_from(["class_path", "init_args", "k"]),
                                                                   inner, max_size=2)), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(ALLOWED_NAMES + REFUSED_NAMES), st.text(max_size=10)),
                       json_values, max_size=4))
def test_generated_overrides_are_data_or_refused_in_one_line(overrides):
    from reasonbench.util.untrusted import UntrustedInput
    from reasonbench_benchmarks.reproduce import ALLOWED_SETTINGS, recorded_overrides

    record = _published_record()
    record["provenance"]["overrides"] = overrides
    try:
        checked = recorded_overrides(record, "r.json")
    except UntrustedInput as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
        return
    assert checked == overrides
    for name, value in checked.items():
        assert any(name.startswith(a) if a.endswith(".") else name == a for a in ALLOWED_SETTINGS), name
        text = json.dumps(value)
        assert not any(mark in text for mark in ("/", "~", "class_path", "init_args", "planted.Foo")), text


# --- faults of the machine while building --------------------------------------------------------

def test_a_dead_or_hung_picture_worker_costs_its_pictures_not_the_build():
    import multiprocessing
    import time

    from reasonbench.leaderboard import PictureWorker, PictureWorkerGone

    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        worker = PictureWorker(pool, timeout=30)
        assert worker.call(pow, 2, 10) == 1024
        started = time.monotonic()
        with pytest.raises(PictureWorkerGone, match="died"):
            worker.call(os._exit, 3)  # the worker process is gone with the task it held
        assert time.monotonic() - started < 10
        with pytest.raises(PictureWorkerGone, match="did not answer earlier"):
            worker.call(pow, 2, 3)  # never asked again
        hung = PictureWorker(pool, timeout=1)
        with pytest.raises(PictureWorkerGone, match="did not answer in 1 s"):
            hung.call(time.sleep, 60)
    finally:
        pool.terminate()


def test_pictures_of_a_gone_worker_are_skipped_with_a_note(tmp_path):
    from reasonbench.leaderboard import PictureWorkerGone, _write_pictures

    class Gone:
        def draw(self, job):
            raise PictureWorkerGone("the picture worker process died (skipped)")

    record = rich_record()
    record["_file"] = "r.json"
    record["examples"] = {"solved": {"inputs": [1], "labels": [1], "predictions": [1]}}
    row = {"files": ["r.json"], "exact_accuracy_mean": 0.9, "model": "trm", "preset": "mini", "track": "mini",
           "settings": "", "mode": "train"}
    (tmp_path / "pictures").mkdir()
    warnings: list[str] = []
    assert _write_pictures("sudoku", [row], {"r.json": record}, tmp_path, warnings, Gone()) == []
    assert warnings == ["r.json: no solved picture: the picture worker process died (skipped)"]


def test_an_out_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    import tempfile

    from .conftest import call_cli

    results = tmp_path / "res"
    put(results, make_record())
    (tmp_path / "file").write_text("x")
    result = call_cli("leaderboard", "--results", str(results), "--out", str(tmp_path / "file" / "site"),
                      "--reported", "none")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"--out {tmp_path / 'file' / 'site'}: cannot write: {tmp_path / 'file'} is a file" in result.stderr

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))

    for fault, code, reason in ((refused, 2, "Permission denied"),):
        with monkeypatch.context() as patched:
            patched.setattr(tempfile, "mkdtemp", fault)
            result = call_cli("leaderboard", "--results", str(results), "--out", str(tmp_path / "locked" / "site"),
                              "--reported", "none")
        assert result.returncode == code and result.stderr.count("\n") == 1, result.stderr
        assert f"--out {tmp_path / 'locked' / 'site'}: cannot write" in result.stderr and reason in result.stderr
    with monkeypatch.context() as patched:
        def full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        patched.setattr(pages, "markdown", full)
        result = call_cli("leaderboard", "--results", str(results), "--out", str(tmp_path / "site"), "--reported", "none")
    assert result.returncode == 1 and "No space left on device" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "site").exists()


@settings(max_examples=80, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated_records())
def test_generated_records_through_reproduce(tmp_path_factory, record):
    """Whatever a record holds, reproduce reads it as the leaderboard would: a record the
    leaderboard skips is one line, exit 2, and never reaches a run."""
    import reasonbench_benchmarks.reproduce as reproduce

    path = tmp_path_factory.mktemp("rep") / "seed0.json"
    _write(path, record)
    try:
        lb_load.parse_untrusted(path.read_bytes(), "r.json")
        taken = True
    except (ValueError, UserError):
        taken = False
    ran = []

    def rerun(committed, overrides):
        ran.append(committed)
        return committed

    original = reproduce.rerun
    reproduce.rerun = rerun
    try:
        code, err = _quiet_call(reproduce.main, [str(path)])
    finally:
        reproduce.rerun = original
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1 and "\x1b" not in err and "Traceback" not in err, err
        assert not ran
    else:
        assert taken and ran


def test_the_depth_cap_counts_nesting_not_brackets_inside_strings():
    from reasonbench.util.untrusted import loads_json

    assert loads_json(json.dumps({"model": "[" * 500, "task": '\\"{{{' + "{" * 100}))["model"] == "[" * 500
    with pytest.raises(ValueError, match="nested too deeply"):
        loads_json("[" * 65 + "]" * 65)
    assert untrusted.depth(loads_json("[" * 64 + "]" * 64)) == 64  # 64 levels are allowed


def test_publish_writes_the_machines_folders_as_the_standard_layout():
    """A depth of an ``--eval-depth`` list evaluated a checkpoint from another folder: both the
    folder given to --out and the checkpoint's results folder become ``results``; a folder that
    only shares a prefix with them stays."""
    from reasonbench_benchmarks.publish import machine_folders, portable

    record = _published_record(mode="eval")
    record["cost"]["eval_shared_depths"] = [1, 4]
    record["provenance"]["config"] = {"out": "/m/curves/b4/depth4", "checkpoint": "/m/sweep/trm/sudoku/mini/seed0/final.pt"}
    record["provenance"]["command"] = ("reasonbench eval --checkpoint /m/sweep/trm/sudoku/mini/seed0/final.pt "
                                       "--out /m/curves/b4 --eval-depth 1,4 --task.data_dir /m/sweep2/data")
    assert machine_folders(record) == ["/m/curves/b4", "/m/sweep"]
    text = json.dumps(record)
    published = json.loads(portable(record, text))
    assert published["provenance"]["config"] == {"out": "results/depth4", "checkpoint": "results/trm/sudoku/mini/seed0/final.pt"}
    assert published["provenance"]["command"] == ("reasonbench eval --checkpoint results/trm/sudoku/mini/seed0/final.pt "
                                                  "--out results --eval-depth 1,4 --task.data_dir /m/sweep2/data")
    record["provenance"]["config"]["checkpoint"] = "/m/other/hrm/sudoku/mini/seed0/final.pt"  # not this record's run
    assert machine_folders(record) == ["/m/curves/b4"]
