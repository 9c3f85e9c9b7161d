"""The test-time compute chart of a task page: its points (one per model and test-time setting,
accuracy the mean over seeds, FLOPs from the records), curves and lines, the Pareto front over
every model, its SVG, and the one sentence said instead when a task has no test-time evaluation."""

import xml.etree.ElementTree as ET

import pytest

from reasonbench import leaderboard
from reasonbench.leaderboard import plots, svg, testtime_chart
from reasonbench.leaderboard import load as lb_load
from reasonbench.leaderboard import rank as lb_rank

from .test_leaderboard import make_record, put

NS = "{http://www.w3.org/2000/svg}"
TRAINED_DEPTH, N = 4, 200


def ttc_record(model: str, seed: int, depth: int, breadth: int, select: str | None,
                    flops_per_segment: float, skill: float, task: str = "sudoku") -> dict:
    """A record of ``model`` trained for TRAINED_DEPTH segments and evaluated at ``depth`` x
    ``breadth`` (depth TRAINED_DEPTH and breadth 1: its training run, a record of before
    ``test_time_compute`` existed, whose depth is its config's). FLOPs: every segment of every
    trajectory, as the runner counts them, a little more for each seed (data-dependent halting);
    accuracy: a curve that saturates in depth, a little more at breadth (by rule), one more right
    answer per seed."""
    solved = skill * (1 - 0.5 ** (depth / TRAINED_DEPTH)) * (1 if breadth == 1 else {"vote": 1.1, "halt": 1.05}[select])
    flops = flops_per_segment * depth * breadth * (1 + 0.01 * seed)
    record = make_record(model=model, task=task, seed=seed, correct=min(N, round(N * solved) + seed), n=N,
                         flops_per_example_forward={"mean": flops, "p95": flops, "examples": N})
    segments = {} if model == "transformer" else {"halt_max_steps": TRAINED_DEPTH}  # one pass, no segments
    record["provenance"]["config"] = {"model": {"name": model, **segments}}
    if (depth, breadth) == (TRAINED_DEPTH, 1):
        return record
    record["mode"] = "eval"
    record["provenance"]["config"]["eval_max_steps"] = depth
    record["test_time_compute"] = {"depth": depth, "trained_depth": TRAINED_DEPTH, "breadth": breadth,
                                   "select": select if breadth > 1 else None, "seed": 0 if breadth > 1 else None,
                                   "noise": 1.0 if breadth > 1 else None}
    return record


# (depth, breadth, rule) each model is evaluated at, beside its training run (depth 4 x breadth 1)
SETTINGS = [(8, 1, None), (16, 1, None), (4, 4, "vote"), (8, 4, "vote"), (4, 4, "halt")]
MODELS = {"trm": (2e8, 0.9), "hrm": (1e8, 0.5), "transformer": (4e7, 0.3)}  # FLOPs per segment, skill


def ttc_results(results, models=MODELS, settings=SETTINGS, seeds=(0, 1), task="sudoku") -> None:
    """Each model's training run and its evaluations at ``settings`` (the transformer, without
    reasoning segments, only trained) under ``results``."""
    for model, (flops, skill) in models.items():
        for seed in seeds:
            put(results, ttc_record(model, seed, TRAINED_DEPTH, 1, None, flops, skill, task))
            for depth, breadth, rule in ([] if model == "transformer" else settings):
                record = ttc_record(model, seed, depth, breadth, rule, flops, skill, task)
                put(results, record, f"{model}/{task}/mini/seed{seed}.d{depth}b{breadth}{rule or ''}.json")


def chart_data(results):
    found, skipped = lb_load.collect(results)
    assert skipped == []
    rows = lb_rank.aggregate(found)
    return rows, {r["_file"]: r for r in found}


def test_points_are_grouped_per_model_and_joined_per_breadth_and_rule(tmp_path):
    ttc_results(tmp_path)
    rows, records = chart_data(tmp_path)
    curves = {c.model: c for c in testtime_chart.curves_of(rows, records)}
    assert set(curves) == {"trm", "hrm", "transformer"}
    trm = curves["trm"]
    # the training run is the plain point (trained depth, breadth 1); every setting is one point
    assert [(p.depth, p.breadth, p.rule) for p in trm.points] == [
        (4, 1, None), (8, 1, None), (16, 1, None), (4, 4, "halt"), (4, 4, "vote"), (8, 4, "vote")]
    assert [p.row["mode"] for p in trm.points] == ["train"] + ["eval"] * 5
    lines = testtime_chart.lines_of(trm)
    assert {line: [p.depth for p in points] for line, points in lines.items()} == {
        (1, None): [4, 8, 16], (4, "halt"): [4], (4, "vote"): [4, 8]}
    assert all([p.flops for p in ps] == sorted(p.flops for p in ps) for ps in lines.values())
    # a model without reasoning segments is one point of no depth
    assert [(p.depth, p.breadth) for p in curves["transformer"].points] == [(None, 1)]
    # accuracy: the row's mean over seeds (seed 1 has one more right answer)
    plain = trm.points[0]
    assert plain.accuracy == pytest.approx((2 * round(N * 0.9 * 0.5) + 1) / 2 / N)
    assert plain.row["rank_interval"] is not None and len(plain.row["seeds"]) == 2


def test_flops_are_the_mean_of_the_records_over_seeds(tmp_path):
    ttc_results(tmp_path)
    rows, records = chart_data(tmp_path)
    trm = next(c for c in testtime_chart.curves_of(rows, records) if c.model == "trm")
    for point in trm.points:
        seeds = [records[f]["cost"]["flops_per_example_forward"]["mean"] for f in point.row["files"]]
        assert len(seeds) == 2 and seeds[0] != seeds[1]
        assert point.flops == pytest.approx(sum(seeds) / 2)
    wide = next(p for p in trm.points if (p.depth, p.breadth, p.rule) == (8, 4, "vote"))
    assert wide.flops == pytest.approx(2e8 * 8 * 4 * 1.005)  # every segment of every trajectory


def test_a_plain_evaluation_stands_for_its_setting_and_old_records_read_their_depth_from_the_config(tmp_path):
    ttc_results(tmp_path, models={"trm": (2e8, 0.9)}, settings=[(8, 1, None)])
    plain = ttc_record("trm", 0, TRAINED_DEPTH, 1, None, 2e8, 0.9)
    plain.update(mode="eval")  # evaluated at the trained depth: on the trained track, a row of its own
    put(tmp_path, plain, "trm/sudoku/mini/seed0.plain.json")
    deeper = ttc_record("trm", 0, 8, 1, None, 2e8, 0.9)
    del deeper["test_time_compute"]  # a record of before the field: its config says the depth
    put(tmp_path, deeper, "trm/sudoku/mini/seed0.d8b1.json")
    rows, records = chart_data(tmp_path)
    (curve,) = testtime_chart.curves_of(rows, records)
    assert [(p.depth, p.breadth, p.row["mode"], len(p.row["seeds"])) for p in curve.points] == [
        (4, 1, "eval", 1), (8, 1, "eval", 2)]
    assert curve.points[0].setting() == "depth 4 (trained) x breadth 1"


def test_pareto_front_of_a_handcrafted_set_of_points():
    def point(flops, accuracy):
        return testtime_chart.Point({}, 4, 4, 1, None, flops, accuracy)

    points = [point(10, 0.2), point(5, 0.2), point(20, 0.5), point(20, 0.4), point(40, 0.5), point(80, 0.9),
              point(3, 0.1), point(60, 0.6)]
    # (3, .1) -> (5, .2) -> (20, .5) -> (60, .6) -> (80, .9); (10, .2), (20, .4) and (40, .5) are beaten
    assert testtime_chart.front_of(points) == [6, 1, 2, 7, 5]


def test_pareto_front_over_every_models_points(tmp_path):
    ttc_results(tmp_path)
    rows, records = chart_data(tmp_path)
    points = [(c.model, p) for c in testtime_chart.curves_of(rows, records) for p in c.points]
    front = [points[i] for i in testtime_chart.front_of([p for _, p in points])]
    beaten = [p for _, p in points if all(p is not q for _, q in front)]
    for p in beaten:  # each point off the front is matched or beaten by one on it at no more FLOPs
        assert any(q.flops <= p.flops and q.accuracy >= p.accuracy for _, q in front)
    for (_, a), (_, b) in zip(front, front[1:]):
        assert a.flops <= b.flops and a.accuracy < b.accuracy
    assert front[0][0] == "transformer" and front[-1][0] == "trm"


def test_the_chart_draws_one_line_per_breadth_rings_the_front_and_names_every_point(tmp_path):
    ttc_results(tmp_path)
    rows, records = chart_data(tmp_path)
    text = testtime_chart.testtime_plot(rows, records, "sudoku")
    root = ET.fromstring(text)
    curves = testtime_chart.curves_of(rows, records)
    points = [p for c in curves for p in c.points]
    lines = [el for el in root.iter(f"{NS}polyline") if el.get("class") == "line"]
    assert sorted(el.get("data-model") for el in lines) == ["hrm", "hrm", "trm", "trm"]  # breadth 1; 4 vote
    assert {el.get("stroke-dasharray") for el in lines} == {None, testtime_chart.DASHES[2]}
    assert all(el.get("stroke") == svg.model_colour(el.get("data-model")) for el in lines)
    marks = [el for el in root.iter(f"{NS}path") if el.get("class") == "mark"]
    assert len(marks) == len(points) == 13
    tips = sorted(m.find(f"{NS}title").text for m in marks)
    wide = next(p for p in points if (p.depth, p.breadth) == (8, 4) and p.row["model"] == "trm")
    seeds = [records[f]["metrics"]["exact_accuracy"] for f in wide.row["files"]]
    assert f"trm, depth 8 x breadth 4 (vote): {50 * sum(seeds):.1f}% exact (rank interval" in " ".join(tips)
    assert all(" forward FLOPs per example, 2 seeds" in t for t in tips)
    assert sum("depth 4 (trained) x breadth 1" in t for t in tips) == 2
    front = testtime_chart.front_of(points)
    assert len(list(root.iter(f"{NS}circle"))) == len(front)
    assert len([el for el in root.iter(f"{NS}polyline") if el.get("class") == "front"]) == 1
    legend = {t.text for t in root.iter(f"{NS}text")}
    assert {"trm", "hrm", "transformer", "breadth 1", "breadth 4 (vote)", "breadth 4 (halt)", "Pareto front",
            plots.BAR_NOTE} <= legend
    title = root.find(f"{NS}title").text
    assert title == "sudoku: exact accuracy against test-time forward FLOPs per example"
    from .test_leaderboard_layout import _texts

    texts = _texts(root)
    assert any(t.get("class") == "label" for t in root.iter(f"{NS}text"))
    for n, (text, box) in enumerate(texts):
        assert 0 <= box.left and box.right <= svg.WIDTH, text
        assert not any(box.meets(other) for _, other in texts[n + 1:]), text


def test_a_task_without_test_time_points_gets_one_sentence_and_the_chart_reaches_its_page(tmp_path):
    ttc_results(tmp_path / "res")
    ttc_results(tmp_path / "res", models={"trm": (2e8, 0.9)}, settings=[], task="maze")  # trained only
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", None)
    assert not site.skipped and not site.warnings
    sudoku = (tmp_path / "site/task-sudoku.html").read_text()
    assert "<h2>Test-time compute</h2>" in sudoku and 'href="plots/sudoku-testtime.svg"' in sudoku
    assert (tmp_path / "site/plots/sudoku-testtime.svg").read_text().startswith("<svg")
    maze = (tmp_path / "site/task-maze.html").read_text()
    assert ('<p class="note chart-empty">maze: exact accuracy against test-time forward FLOPs per example: no row '
            "was evaluated at a test-time depth or breadth (no chart drawn).</p>") in maze
    assert not list((tmp_path / "site/plots").glob("maze-testtime*"))
    rows, records = chart_data(tmp_path / "res")
    empty = testtime_chart.testtime_plot([r for r in rows if r["task"] == "maze"], records, "maze")
    assert isinstance(empty, plots.Empty) and "<" not in empty


def test_a_chart_that_cannot_be_drawn_is_a_warning_and_the_page_is_built(tmp_path, monkeypatch):
    ttc_results(tmp_path / "res")

    def broken(*args):
        raise ValueError("no room")

    monkeypatch.setattr(testtime_chart, "testtime_plot", broken)
    site = leaderboard.build(tmp_path / "res", tmp_path / "site", None)
    assert site.warnings == ["sudoku: test-time compute chart not drawn: ValueError: no room"]
    page = (tmp_path / "site/task-sudoku.html").read_text()
    assert "Test-time compute" not in page and "sudoku-mini-params.svg" in page
    assert not list((tmp_path / "site/plots").glob("*testtime*"))


def test_a_one_seed_point_has_no_error_bar(tmp_path):
    """One seed's rank interval spans every accuracy: drawn, it would hide the curves."""
    results = tmp_path / "results"
    ttc_results(results, models={"trm": (2e8, 0.9)}, seeds=(0,))
    ttc_results(results, models={"hrm": (1e8, 0.5)}, seeds=(0, 1))
    rows, records = chart_data(results)
    curves = testtime_chart.curves_of(rows, records)
    one = [p for c in curves if c.model == "trm" for p in c.points]
    two = [p for c in curves if c.model == "hrm" for p in c.points]
    assert one and two and all(p.row.get("rank_interval") for p in one)
    assert [testtime_chart.bar_of(p) for p in one] == [None] * len(one)
    assert all(testtime_chart.bar_of(p) == p.row["rank_interval"] for p in two)
    drawn = ET.fromstring(testtime_chart.testtime_plot(rows, records, "sudoku"))
    bars = [e for e in drawn.iter(f"{NS}line") if e.get("class") == "bar"]
    assert {b.get("data-model") for b in bars} == {"hrm"} and len(bars) == len(two)
