"""Test-time compute: depth x breadth for the recursive models, the selection rules, the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import reasonbench as rb
from reasonbench.record.measure import count_flops
from reasonbench.nn.losses import IGNORE_INDEX
from reasonbench.model.testtime import (CONVERGENCE_WINDOW, ORACLE_STAT, TestTimeCompute, any_exact, convergence_score,
                                        logit_movement, select, select_highest, select_lowest, select_vote,
                                        trajectory_noise)

from .conftest import QUIET, call_cli

# --- the selection rules on known inputs --------------------------------------------------


def _answers(*per_example: str) -> torch.Tensor:
    """[K, B, L] from one string per example whose K characters are its trajectories' answers
    (each answer one token, repeated over L = 3 cells)."""
    rows = [[[ord(c)] * 3 for c in text] for text in per_example]  # [B, K, L]
    return torch.tensor(rows).transpose(0, 1)


def test_vote_takes_the_most_given_answer_and_its_first_trajectory() -> None:
    # c twice (first given by 2); x and y twice each: x, given first; the same for y; r twice; all agree
    picked = select_vote(_answers("abcc", "xyyx", "yxxy", "pqrr", "zzzz")).tolist()
    assert picked == [2, 0, 0, 2, 0]


def test_vote_compares_whole_answers_and_breaks_ties_towards_the_earlier_answer() -> None:
    # trajectory answers differing in one cell are different answers
    answers = torch.tensor([[[1, 2, 3]], [[1, 2, 4]], [[1, 2, 4]], [[1, 2, 3]], [[5, 5, 5]]])  # [K=5, B=1, L=3]
    assert select_vote(answers).tolist() == [0]  # 2-2 tie: [1,2,3] was given first
    assert select_vote(answers[1:]).tolist() == [0]  # now [1,2,4] is first (index 0 of the four)
    assert select_vote(answers[2:]).tolist() == [0]  # 1-1-1: the first
    assert select_vote(torch.cat([answers[4:], answers[1:3]])).tolist() == [1]  # [1,2,4] twice beats [5,5,5]


def test_residual_picks_the_lowest_and_halt_the_highest() -> None:
    residual = torch.tensor([[3.0, 1.0, 0.5, float("nan")], [1.0, 1.0, 0.5, 2.0], [2.0, 0.0, 0.5, 1.0]])  # [K=3, B=4]
    assert select_lowest(residual).tolist() == [1, 2, 0, 2]  # ties -> first; NaN never wins
    assert select_highest(residual).tolist() == [0, 0, 0, 1]
    predictions = torch.zeros(3, 4, 2, dtype=torch.long)
    assert select("residual", predictions, residual, -residual).tolist() == [1, 2, 0, 2]
    assert select("halt", predictions, residual, residual).tolist() == [0, 0, 0, 1]
    assert select("vote", predictions, residual, residual).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown selection rule"):
        select("best", predictions, residual, residual)


def test_convergence_is_the_mean_logit_movement_of_the_last_three_segments() -> None:
    # one example, two positions, two ids: segment 2 moves position 0 by (3, 4), segments 3-5 not at all
    steps = [torch.zeros(1, 2, 2), torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])]
    steps += [steps[1].clone() for _ in range(3)]
    moves = [logit_movement(after, before) for before, after in zip(steps, steps[1:])]
    assert [m.tolist() for m in moves] == [[2.5], [0.0], [0.0], [0.0]]  # ||(3, 4)|| = 5 over 2 positions
    assert convergence_score(moves[:1], 1, torch.device("cpu")).tolist() == [2.5]
    assert convergence_score(moves[:2], 1, torch.device("cpu")).tolist() == [1.25]
    assert convergence_score(moves, 1, torch.device("cpu")).tolist() == [0.0]  # segment 2 left the window
    assert CONVERGENCE_WINDOW == 3
    assert torch.isnan(convergence_score([], 2, torch.device("cpu"))).all()  # depth 1: nothing moved yet


def test_convergence_picks_the_lowest_score_and_trajectory_0_at_depth_1() -> None:
    predictions = torch.zeros(3, 2, 2, dtype=torch.long)
    zeros = torch.zeros(3, 2)
    assert select("convergence", predictions, zeros, zeros, torch.tensor([[0.3, 2.0], [0.1, 1.0], [0.2, 1.0]])).tolist() == [1, 1]
    assert select("convergence", predictions, zeros, zeros, torch.full((3, 2), float("nan"))).tolist() == [0, 0]
    with pytest.raises(ValueError, match="--select convergence"):
        select("convergence", predictions, zeros, zeros)


def test_the_models_convergence_score_is_eqrs_over_their_segment_logits() -> None:
    """The score ``run_segments_at`` carries equals the reference's expression (locuslab/EqR
    evaluators/eval_fn.py, window 3) over the logits of every segment."""
    task = rb.create_task("sudoku", preset="smoke")
    split = task.splits["test"]
    batch = {"inputs": split.inputs[:4].long(), "labels": split.labels[:4].long(),
             "puzzle_ids": split.puzzle_ids[:4].long()}
    torch.manual_seed(0)
    model = rb.create_model("trm", task=task, preset="smoke").eval()
    depths = (1, 2, 3, 4, 5, 6)
    with torch.inference_mode():
        assert model.run_segments_at(batch, depths)[6].convergence is None  # a plain evaluation skips it
        model.configure_test_time(TestTimeCompute(depth=6, breadth=2, select="convergence"))
        read = model.run_segments_at(batch, depths)
    trajectory = [read[d].logits for d in depths]
    for depth in depths[1:]:
        deltas = torch.stack(trajectory[:depth])[1:] - torch.stack(trajectory[:depth])[:-1]
        window = 3
        if window > 0 and window < deltas.shape[0]:
            deltas = deltas[-window:]
        reference = deltas.norm(dim=-1).mean(dim=(0, -1))
        torch.testing.assert_close(read[depth].convergence, reference, rtol=1e-6, atol=1e-7)
    assert torch.isnan(read[1].convergence).all() and (read[6].convergence > 0).all()


def test_any_exact_reads_the_supervised_cells_only() -> None:
    labels = torch.tensor([[1, 2, IGNORE_INDEX], [3, 3, 3]])
    answers = torch.tensor([[[1, 2, 9], [3, 3, 0]], [[0, 2, 9], [3, 0, 3]]])  # [K=2, B=2, L=3]
    assert any_exact(answers, labels).tolist() == [True, False]


def test_trajectory_noise_is_seeded_per_trajectory() -> None:
    shapes = [torch.Size([4, 3]), torch.Size([2])]
    a, again = trajectory_noise(7, 1, shapes, 0.5), trajectory_noise(7, 1, shapes, 0.5)
    assert [t.shape for t in a] == shapes and all(torch.equal(x, y) for x, y in zip(a, again))
    assert not torch.equal(a[0], trajectory_noise(7, 2, shapes, 0.5)[0])
    assert not torch.equal(a[0], trajectory_noise(8, 1, shapes, 0.5)[0])
    assert torch.equal(trajectory_noise(7, 1, shapes, 1.0)[0] * 0.5, a[0])


@pytest.mark.parametrize("kwargs, option", [({"breadth": 0}, "--breadth"), ({"breadth": 4097}, "--breadth"),
                                            ({"select": "best"}, "--select"), ({"noise": -1.0}, "--breadth-noise"),
                                            ({"noise": float("nan")}, "--breadth-noise")])
def test_bad_settings_name_their_option(kwargs, option) -> None:
    with pytest.raises(ValueError, match=option):
        TestTimeCompute(**kwargs)


# --- on a model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_trm():
    task = rb.create_task("sudoku", preset="smoke")
    torch.manual_seed(0)
    model = rb.create_model("trm", task=task, preset="smoke").eval()
    split = task.splits["test"]
    batch = {"inputs": split.inputs[:6].long(), "labels": split.labels[:6].long(),
             "puzzle_ids": split.puzzle_ids[:6].long()}
    return model, batch


def test_breadth_one_is_the_plain_evaluation(smoke_trm) -> None:
    model, batch = smoke_trm
    with torch.inference_mode():
        plain = model(batch)
        model.configure_test_time(TestTimeCompute(depth=None, breadth=1, select="halt", seed=3))
        again = model(batch)
    assert torch.equal(plain.logits, again.logits) and torch.equal(plain.step_residuals, again.step_residuals)
    assert again.stats is None and ORACLE_STAT not in model.reported_stats


def test_breadth_flops_chunks_and_selection(smoke_trm) -> None:
    model, batch = smoke_trm
    depth = 3
    one = {k: v[:1] for k, v in batch.items()}
    with torch.inference_mode():
        model.configure_test_time(TestTimeCompute(depth=depth, breadth=1))
        flops_1, plain = count_flops(model, one)
        model.configure_test_time(TestTimeCompute(depth=depth, breadth=8, select="halt", seed=1, noise=0.5))
        flops_8, _ = count_flops(model, one)
        assert flops_8 == 8 * flops_1  # executed FLOPs: every trajectory counted
        # chunking: 6 examples x 8 trajectories in chunks of 6 rows, or 2 examples in chunks of 2
        whole = model(batch)
        pairs = [model({k: v[i:i + 2] for k, v in batch.items()}) for i in range(0, 6, 2)]
        torch.testing.assert_close(whole.logits, torch.cat([p.logits for p in pairs]), rtol=1e-5, atol=1e-5)
        # the depth curves stay the model's own trajectory (trajectory 0, no noise)
        torch.testing.assert_close(whole.step_predictions[:, :1], plain.step_predictions, rtol=0, atol=0)
        # the halting rule: the returned trajectory has the highest last halting logit of all 8
        runs = []
        base = model.initial_state(batch)
        for t in range(8):
            shapes = [s.shape[1:] for s in base]
            noise = [torch.zeros(shape) for shape in shapes] if t == 0 else trajectory_noise(1, t, shapes, 0.5)
            runs.append(model.run_segments(batch, model.trajectory_start(base, noise)))
        best = torch.stack([r.q_halt for r in runs]).max(0).values
        torch.testing.assert_close(whole.halt_logits, best, rtol=1e-5, atol=1e-5)
        assert whole.stats is not None and 0 <= whole.stats[ORACLE_STAT] <= 1
        # with no noise every trajectory is the model's own: the plain answer and cost x 8
        model.configure_test_time(TestTimeCompute(depth=depth, breadth=4, select="vote", noise=0.0))
        same = model(batch)
        model.configure_test_time(TestTimeCompute(depth=depth, breadth=1))
        base_out = model(batch)
    torch.testing.assert_close(same.logits, base_out.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["trm", "hrm", "cgar", "cmm", "attractor", "aug-hrm"])
def test_every_recursive_model_runs_breadth(name) -> None:
    task = rb.create_task("sudoku", preset="smoke")
    split = task.splits["test"]
    batch = {"inputs": split.inputs[:3].long(), "labels": split.labels[:3].long(),
             "puzzle_ids": split.puzzle_ids[:3].long()}
    torch.manual_seed(0)
    model = rb.create_model(name, task=task, preset="smoke").eval()
    with torch.inference_mode():
        flops_1, _ = count_flops(model, {k: v[:1] for k, v in batch.items()})
        model.configure_test_time(TestTimeCompute(breadth=3, select="residual", seed=2))
        flops_3, _ = count_flops(model, {k: v[:1] for k, v in batch.items()})
        out = model(batch)
        model.test_metrics.update(out.logits.argmax(-1), batch["labels"], out.steps, None, out.halt_logits, out.stats,
                                  out.step_predictions, out.step_residuals)
    if model.uniform_eval_cost:
        assert flops_3 == 3 * flops_1
    else:  # a solver's iterations depend on where it starts
        assert 2 * flops_1 < flops_3 < 4 * flops_1
    assert out.logits.shape == (3, *split.labels.shape[1:], task.metadata.vocab_size)
    assert model.test_metrics.compute()[ORACLE_STAT] is not None


# --- the command line and the record --------------------------------------------------------

ARGS = ["--model", "trm", "--task", "sudoku", "--preset", "smoke", *QUIET]


@pytest.fixture(scope="module")
def trained_sudoku(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    assert call_cli("run", *ARGS, "--out", str(out)).returncode == 0
    return out


def test_eval_breadth_writes_its_settings_and_eight_times_the_flops(trained_sudoku, tmp_path) -> None:
    checkpoint = str(trained_sudoku / "trm/sudoku/smoke/seed0/final.pt")
    records = {}
    for breadth in ("1", "8"):
        out = tmp_path / breadth
        result = call_cli("eval", *ARGS, "--checkpoint", checkpoint, "--out", str(out), "--max-steps", "4",
                          "--breadth", breadth, "--select", "vote", "--task.num_test", "16")
        assert result.returncode == 0, result.stderr
        records[breadth] = json.loads((out / "trm/sudoku/smoke/seed0.eval.json").read_text())
    wide, narrow = records["8"], records["1"]
    assert wide["test_time_compute"] == {"depth": 4, "trained_depth": 2, "breadth": 8, "select": "vote", "seed": 0,
                                         "noise": 1.0}
    assert narrow["test_time_compute"] == {"depth": 4, "trained_depth": 2, "breadth": 1, "select": None,
                                           "seed": None, "noise": None}
    assert wide["cost"]["flops_per_example_forward"]["mean"] == 8 * narrow["cost"]["flops_per_example_forward"]["mean"]
    oracle = wide["metrics"][ORACLE_STAT]
    assert wide["metrics"]["exact_accuracy"] <= oracle <= 1 and ORACLE_STAT not in narrow["metrics"]
    assert len(wide["metrics"]["by_step"]["exact"]) == 4
    # the trained record (breadth 1 at the trained depth) states its depth too
    trained = json.loads((trained_sudoku / "trm/sudoku/smoke/seed0.json").read_text())
    assert trained["test_time_compute"]["depth"] == 2 and trained["test_time_compute"]["breadth"] == 1


def test_run_tests_at_its_breadth_and_trains_as_before(trained_sudoku, tmp_path) -> None:
    """``run --breadth``: training and its validation as without it (one trajectory), the test
    pass at the breadth; trajectory 0's depth curve is the plain run's."""
    result = call_cli("run", *ARGS, "--out", str(tmp_path), "--breadth", "3", "--select", "halt")
    assert result.returncode == 0, result.stderr
    wide = json.loads((tmp_path / "trm/sudoku/smoke/seed0.json").read_text())
    plain = json.loads((trained_sudoku / "trm/sudoku/smoke/seed0.json").read_text())
    assert wide["metrics"]["by_step"] == plain["metrics"]["by_step"]
    assert wide["cost"]["train_flops"] == plain["cost"]["train_flops"]
    assert wide["cost"]["flops_per_example_forward"]["mean"] == 3 * plain["cost"]["flops_per_example_forward"]["mean"]
    assert wide["test_time_compute"]["breadth"] == 3 and wide["test_time_compute"]["select"] == "halt"


@pytest.mark.parametrize("args, words", [(["--breadth", "0"], "--breadth"), (["--select", "best"], "--select"),
                                         (["--breadth-noise", "-1"], "--breadth-noise")])
def test_bad_breadth_options_are_one_line(trained_sudoku, tmp_path, args, words) -> None:
    checkpoint = str(trained_sudoku / "trm/sudoku/smoke/seed0/final.pt")
    result = call_cli("eval", *ARGS, "--checkpoint", checkpoint, "--out", str(tmp_path), *args)
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_model_without_latent_state_refuses_breadth(tmp_path) -> None:
    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", *QUIET,
                      "--breadth", "2", "--out", str(tmp_path))
    assert result.returncode == 2 and "no latent state" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


# --- the papers' figures state their test-time compute ----------------------------------------


def test_reported_figures_state_their_test_time_compute() -> None:
    from reasonbench.leaderboard.reported import DEFAULT_REPORTED, load_reported

    entries = {(e["model"], e["benchmark"]): e for e in load_reported(DEFAULT_REPORTED)}
    eqr = entries[("EqR", "Sudoku-Extreme")]
    assert eqr["accuracy"] == 99.56 and eqr["test_time_compute"]["depth"] == 64
    assert eqr["test_time_compute"]["breadth"] == 128 and "top-4" in eqr["test_time_compute"]["select"]
    assert entries[("Augmented HRM", "Sudoku-Extreme")]["test_time_compute"]["breadth"] == 90
    assert entries[("URM", "ARC-AGI-2")]["accuracy"] == 16.0
    assert entries[("PTRM", "Sudoku-Extreme")]["accuracy"] == 98.75


@pytest.mark.parametrize("compute, problem", [
    ("64x128", "test_time_compute must be a mapping"),
    ({"depth": 64}, "test_time_compute: missing field 'description'"),
    ({"description": "d", "depth": 0}, "test_time_compute: depth must be an integer >= 1"),
    ({"description": "d", "breadth": True}, "test_time_compute: breadth must be an integer >= 1"),
    ({"description": "d", "select": 4}, "test_time_compute: select must be text"),
    ({"description": "d", "budget": 4}, "test_time_compute: unknown field 'budget'"),
])
def test_malformed_test_time_compute_stops_the_build(tmp_path, compute, problem) -> None:
    import yaml

    entry = {"model": "EqR", "params": "5M", "task": "sudoku", "benchmark": "S", "accuracy": 99.0, "source": "s",
             "url": "https://arxiv.org/abs/2605.21488", "test_time_compute": compute}
    reported = tmp_path / "reported.yaml"
    reported.write_text(yaml.safe_dump({"version": 1, "entries": [entry]}))
    (tmp_path / "res").mkdir()
    result = call_cli("leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "site"),
                      "--reported", str(reported))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"reasonbench: error: {reported}: entry 1 (EqR): {problem}"]
    assert not (tmp_path / "site").exists()
