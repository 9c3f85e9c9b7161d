"""The leaderboard's one statistic: an interval of each row's mean over seeds that counts training
noise (seeds) and test-set noise (examples) together; ranks, verdicts and error bars all come
from it. Also: partial runs on tracks of their own, captions made of the records' facts, ARC
ranked on pass@2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonbench.record import schema as rec
from reasonbench.record import stats
from reasonbench.leaderboard import pages
from reasonbench.leaderboard import load as lb_load
from reasonbench.leaderboard import rank as lb_rank
from reasonbench.leaderboard import tracks as lb_tracks

from .test_record import minimal_record


def seed_record(model: str, seed: int, correct: int, n: int, **extra) -> dict:
    r = minimal_record()
    r.update(model=model, preset="mini", seed=seed, _file=f"{model}/{seed}.json", **extra)
    r["metrics"].update(exact_correct=correct, n_test_examples=n, exact_accuracy=correct / n,
                        exact_accuracy_ci95=list(stats.wilson_interval(correct, n)))
    return r


def rows_of(seeds: dict[str, list[float]], n: int) -> dict[str, dict]:
    """Rows of one track: each model's seeds at the given accuracies, n test examples each."""
    records = [seed_record(model, s, round(a * n), n) for model, accs in seeds.items() for s, a in enumerate(accs)]
    return {r["model"]: r for r in lb_rank.aggregate(records)}


def verdicts(rows: dict[str, dict]) -> set[tuple[str, str]]:
    ordered = list(rows.values())
    found = set()
    for track in lb_rank.track_verdicts(ordered):
        found |= {(ordered[a]["model"], ordered[b]["model"]) for a, b in track["told_apart"]}
    return found


# --- known answers ------------------------------------------------------------------------------

def test_seeds_that_spread_widely_are_not_told_apart_however_many_examples():
    rows = rows_of({"a": [0.35, 0.65, 0.95], "b": [0.3, 0.6, 0.9]}, n=10_000)
    assert verdicts(rows) == set()
    assert rows["a"]["rank"] == rows["b"]["rank"] == [1, 2]
    # the pooled test examples alone (30,000 each, 5 points apart) would separate them by far
    pooled = [stats.wilson_interval(r["exact_correct"], r["n_test_examples"]) for r in rows.values()]
    assert pooled[0][0] > pooled[1][1]


def test_tight_seeds_far_apart_are_told_apart():
    rows = rows_of({"a": [0.80, 0.81, 0.82], "b": [0.50, 0.51, 0.52]}, n=1_000)
    assert verdicts(rows) == {("a", "b")}
    assert rows["a"]["rank"] == [1, 1] and rows["b"]["rank"] == [2, 2]
    assert rows["a"]["rank_interval"][0] > rows["b"]["rank_interval"][1]


def test_a_row_of_one_seed_is_never_told_apart_on_test_noise_alone():
    rows = rows_of({"a": [0.95], "b": [0.10, 0.11, 0.12]}, n=10_000)
    assert rows["a"]["rank_interval"] == [0.0, 1.0] and rows["a"]["rank"] == [1, 2] == rows["b"]["rank"]
    assert verdicts(rows) == set()
    assert pages.rank_text(rows["a"]) == "1–2 (1 seed)"
    assert "one seed" in pages.verdict_table(list(rows.values()))


def test_the_interval_is_mean_plus_minus_t_times_the_two_level_standard_error():
    # 3 seeds of 1,000 examples: 500, 600, 700 right
    low, high = stats.rank_interval([500, 600, 700], [1000] * 3)
    seed_var = 0.01  # sample variance of 0.5, 0.6, 0.7
    test_var = sum(((c + 2) / 1004) * (1 - (c + 2) / 1004) / 1000 for c in (500, 600, 700)) / 3
    half = 4.303 * math.sqrt((seed_var + test_var) / 3)
    assert (low, high) == pytest.approx((0.6 - half, 0.6 + half))
    assert stats.rank_interval([5], [10]) == (0.0, 1.0) and stats.rank_interval([], []) is None
    assert stats.rank_interval([0, 0, 0], [100] * 3)[1] > 0  # all wrong: test-set noise is not zero


def test_the_variance_is_the_hierarchical_bootstrap_s():
    """Drawing seeds, then each drawn seed's examples, with replacement (numpy, 200,000 draws)
    gives the variance the formula says, up to its two small-sample corrections."""
    correct, n = np.array([30, 55, 61, 80]), np.array([100, 100, 120, 150])
    rng = np.random.default_rng(0)
    draws = 200_000
    picked = rng.integers(0, len(n), size=(draws, len(n)))
    means = (rng.binomial(n[picked], correct[picked] / n[picked]) / n[picked]).mean(axis=1)
    a, k = correct / n, len(n)
    plug_in = (np.mean((a - a.mean()) ** 2) + np.mean(a * (1 - a) / n)) / k
    assert means.var() == pytest.approx(plug_in, rel=0.02)
    corrected = (np.var(a, ddof=1) + np.mean((correct + 2) / (n + 4) * (1 - (correct + 2) / (n + 4)) / n)) / k
    assert stats.seeds_and_examples_variance(list(correct), list(n)) == pytest.approx(corrected)


# --- ranks and verdicts never disagree -------------------------------------------------------------

rows_strategy = st.lists(st.lists(st.integers(0, 200), min_size=1, max_size=5), min_size=2, max_size=9)


@settings(max_examples=150, deadline=None)
@given(rows_strategy)
def test_verdicts_and_rank_ranges_agree(counts):
    records = [seed_record(f"m{i}", s, c, 200) for i, seeds in enumerate(counts) for s, c in enumerate(seeds)]
    ordered = lb_rank.aggregate(records)
    apart = {tuple(p) for t in lb_rank.track_verdicts(ordered) for p in t["told_apart"]}
    for i, a in enumerate(ordered):
        position = 1 + sum(b["exact_accuracy_mean"] > a["exact_accuracy_mean"] for b in ordered)
        assert a["rank"][0] <= position <= a["rank"][1]  # its place by mean lies in its range
        for j, b in enumerate(ordered):
            if i == j:
                continue
            shares_a_rank = a["rank"][0] <= b["rank"][1] and b["rank"][0] <= a["rank"][1]
            called = (i, j) in apart or (j, i) in apart
            assert called == (not shares_a_rank)
            if called:  # told apart: intervals disjoint, the better one first, more than one seed each
                better, worse = (a, b) if (i, j) in apart else (b, a)
                assert better["rank_interval"][0] > worse["rank_interval"][1]
                assert len(a["seeds"]) > 1 and len(b["seeds"]) > 1


def test_pairs_are_stored_once_per_track_not_in_rows():
    rows = rows_of({"a": [0.80, 0.81, 0.82], "b": [0.50, 0.51, 0.52], "c": [0.1, 0.5, 0.9]}, n=1_000)
    ordered = list(rows.values())
    tracks = lb_rank.track_verdicts(ordered)
    assert len(tracks) == 1 and sorted(tracks[0]["rows"]) == [0, 1, 2]
    assert all("paired" not in r for r in ordered)
    table = pages.verdict_table(ordered)
    # a and b: disjoint intervals, but c's meets both: they may share rank 2, so they are not told apart
    assert rows["a"]["rank_interval"][0] > rows["b"]["rank_interval"][1] and rows["a"]["rank"] == [1, 2]
    assert "0 of 3 told apart" in table and "their intervals are disjoint, but c overlaps both" in table
    two = rows_of({"a": [0.80, 0.81, 0.82], "b": [0.50, 0.51, 0.52]}, n=1_000)
    assert "1 of 1 told apart" in pages.verdict_table(list(two.values())) and verdicts(two) == {("a", "b")}


# --- partial runs ---------------------------------------------------------------------------------

def test_an_evaluation_of_an_unfinished_checkpoint_gets_a_partial_track():
    record = seed_record("cmm", 0, 5, 10, mode="eval",
                         training={"steps": 72, "planned_steps": 2000, "finished": False, "stopped_by": None})
    rec.validate({k: v for k, v in record.items() if k != "_file"}, "x")
    assert lb_tracks.track(record) == "mini (partial: step 72 of 2,000)"
    finished = seed_record("cmm", 1, 5, 10, mode="eval",
                           training={"steps": 2000, "planned_steps": 2000, "finished": True, "stopped_by": None})
    assert lb_tracks.track(finished) == "mini"
    rows = lb_rank.aggregate([record, finished])
    assert sorted(r["track"] for r in rows) == ["mini", "mini (partial: step 72 of 2,000)"]
    partial = next(r for r in rows if "partial" in r["track"])
    assert pages.model_label(partial) == "cmm (eval)"  # the preset is the track's own
    assert pages.PARTIAL_NOTE in pages.track_heading(partial["track"], "h2", [partial])


def test_old_records_stopped_short_are_partial_and_old_evaluations_are_not_judged():
    short = seed_record("trm", 0, 5, 10)
    short["provenance"]["config"] = {"trainer": {"max_steps": 2000}}
    short["cost"]["train_steps"] = 117
    assert lb_tracks.track(short) == "mini (partial: step 117 of 2,000)"
    short["cost"]["train_steps"] = 2000
    assert lb_tracks.track(short) == "mini"
    old_eval = seed_record("trm", 0, 5, 10, mode="eval")
    assert lb_tracks.track(old_eval) == "mini"
    diverged = seed_record("trm", 1, 5, 10, status="diverged", training={
        "steps": 3, "planned_steps": 2000, "finished": False, "stopped_by": None})
    assert lb_tracks.track(diverged) == "mini"  # a diverged seed stays its row's seed without accuracy


def test_the_run_summary_says_the_budget_stopped_it():
    from reasonbench.execution.assemble import checkpoint_training
    from reasonbench.execution.summary import status_text

    record = seed_record("trm", 0, 5, 10, training={"steps": 117, "planned_steps": 2000, "finished": False,
                                                     "stopped_by": "budget"})
    assert status_text(record).startswith("stopped by the budget at step 117 of 2,000")
    record["training"] = {"steps": 2000, "planned_steps": 2000, "finished": True, "stopped_by": None}
    assert status_text(record) == "completed"

    class Cfg:
        config = {"trainer": {"max_steps": 500}}

    lightning = {"state_dict": {}, "global_step": 72, "reasonbench": {"model": "cmm",
                                                                        "config": {"trainer": {"max_steps": 2000}}}}
    assert checkpoint_training(lightning, Cfg) == {"steps": 72, "planned_steps": 2000, "finished": False,
                                                   "stopped_by": None}
    final = {"state_dict": {}, "train_steps": 500, "config": {"trainer": {"max_steps": 500}}}
    assert checkpoint_training(final, Cfg)["finished"] is True
    assert checkpoint_training({"state_dict": {}}, Cfg)["finished"] is None  # an old final.pt: unknown


# --- captions and ARC ------------------------------------------------------------------------------

def test_captions_are_the_records_facts():
    records = [seed_record("a", s, 5, 10) for s in range(3)]
    for r in records:
        r["provenance"].update(git_commit="c" * 40, cpu={"model": "Test CPU 9000", "threads": 1, "cores": 4})
    rows = lb_rank.aggregate(records)
    facts = pages.track_facts(rows)
    assert facts == "Run on cpu (Test CPU 9000, 4 cores), at commit cccccccccc, seeds 0–2 (3 per row)."
    heading = pages.track_heading("mini", "h2", rows)
    assert "CI" not in heading and "2-core" not in heading
    rows[0]["ci_reruns"] = [0]
    assert "CI (.ci/run) re-runs a seed 0" in pages.track_facts(rows)


def test_arc_rows_rank_on_pass_at_2():
    def arc(model: str, seed: int, pass2: float, exact: int) -> dict:
        r = seed_record(model, seed, exact, 100)
        r["task"] = "arc"
        r["metrics"].update({"pass@1": pass2 / 2, "pass@2": pass2, "n_tasks": 20})
        return r

    # b is better per variant, a on whole tasks: the tasks decide
    records = [arc("a", s, p, 10) for s, p in enumerate((0.60, 0.65, 0.70))]
    records += [arc("b", s, p, 40) for s, p in enumerate((0.10, 0.15, 0.10))]
    rows = lb_rank.aggregate(records)
    assert [r["model"] for r in rows] == ["a", "b"]
    assert rows[0]["headline"] == "pass@2" and rows[0]["pass@2_mean"] == pytest.approx(0.65)
    assert rows[0]["pass@1_mean"] == pytest.approx(0.325)
    assert rows[0]["rank_interval"][0] < 0.65 < rows[0]["rank_interval"][1]
    markdown = pages.markdown(rows, [])
    assert "| rank | model | pass@2 % | pass@1 % | exact % per variant |" in markdown
    assert "| 65.0 | 32.5 | 10.0 ± 0.0 |" in markdown and "most voted" in markdown
    assert "pass@2 %" in pages.measured_table([dict(r, config="c.json") for r in rows])


def test_a_pass_share_out_of_range_is_inconsistent():
    record = seed_record("a", 0, 5, 10)
    record["metrics"].update({"pass@2": 1.5, "n_tasks": 3})
    assert any("pass@2 1.5 is not a share" in p for p in lb_load.consistency_problems(record))


def test_a_caption_names_only_the_charts_drawn():
    caption = pages.chart_caption(["sudoku-mini-params.svg", "sudoku-mini-hours.svg", "sudoku-mini-depth.svg"])
    assert "the 95% interval its rank is decided on (seeds and test examples together)" in caption
    assert "after each reasoning step" in caption and "difficulty" not in caption and "OOD" not in caption
    assert "difficulty bucket" in pages.chart_caption(["sudoku-mini-difficulty.svg"])
    assert "against cost" not in pages.chart_caption(["sudoku-mini-depth.svg"])


def test_only_a_board_told_of_its_ci_check_says_so(tmp_path, monkeypatch):
    import json

    from reasonbench import leaderboard
    from reasonbench.util.errors import UserError

    from .test_leaderboard import make_record, put

    # the pictures drawn in this process: no second process to start
    monkeypatch.setattr(leaderboard, "_build_with_drawer", lambda *args: leaderboard._build(*args, None))
    results = tmp_path / "res"
    for seed in range(3):
        put(results, make_record(model="a", seed=seed, correct=8 + seed % 2, n=10))
        put(results, make_record(model="b", seed=seed, correct=1, n=10))
    plain = leaderboard.build(results, tmp_path / "plain", reported=None)
    assert not any("CI" in (tmp_path / "plain" / page).read_text() for page in ("index.html", "task-sudoku.html"))
    told = leaderboard.build(results, tmp_path / "told", reported=None, ci_reruns=["a/sudoku/mini/seed1.json"])
    page = (tmp_path / "told" / "task-sudoku.html").read_text()
    assert "CI (.ci/run) re-runs a seed 1 from its record" in page
    saved = json.loads((tmp_path / "told" / "leaderboard.json").read_text())
    assert saved["pairs"] == [{"task": "sudoku", "track": "mini", "rows": [0, 1], "told_apart": [[0, 1]]}]
    assert [r["rank"] for r in told.rows] == [[1, 1], [2, 2]] == [r["rank"] for r in plain.rows]
    with pytest.raises(UserError, match="--ci-rerun nothing.json: not a record on the board"):
        leaderboard.build(results, tmp_path / "other", reported=None, ci_reruns=["nothing.json"])
    assert not (tmp_path / "other").exists()


def test_a_large_track_s_pairs_are_counted_not_listed():
    rows = rows_of({f"m{i:02d}": [0.04 * i, 0.04 * i + 0.01, 0.04 * i + 0.02] for i in range(21)}, n=1_000)
    table = pages.verdict_table(list(rows.values()))
    assert "210 pairs of rows: too many to list here" in table and "<tr>" not in table
    ordered = list(rows.values())  # the pairs told apart are all in leaderboard.json's list
    disjoint = {(a["model"], b["model"]) for i, a in enumerate(ordered) for b in ordered[i + 1:]
                if a["rank"][1] < b["rank"][0]}
    assert verdicts(rows) == disjoint and len(disjoint) > 100


def test_test_time_breadth_makes_a_track_of_its_own():
    """Records evaluated with several trajectories per example land on a track named by depth,
    breadth and rule; the breadth options do not split rows within it."""
    record = seed_record("trm", 0, 900, 1000)
    record["mode"] = "eval"
    record["provenance"]["config"]["eval_max_steps"] = 16
    record["provenance"]["overrides"] = {"eval_breadth": 8, "eval_select": "vote", "eval_max_steps": 16}
    record["test_time_compute"] = {"depth": 16, "trained_depth": 4, "breadth": 8, "select": "vote", "seed": 0,
                                   "noise": 1.0}
    assert lb_tracks.track(record).endswith(" at depth 16 x breadth 8 (vote)")
    assert lb_tracks.command_settings(record) == []
    record["test_time_compute"]["noise"] = 0.5
    assert lb_tracks.track(record).endswith(" at depth 16 x breadth 8 (vote, noise 0.5)")
    record["test_time_compute"]["breadth"] = 1
    assert lb_tracks.track(record).endswith(" at 16 steps")
