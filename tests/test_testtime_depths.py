"""Several test-time depths in one test pass (``eval --eval-depth 1,2,4``): each depth's record
equals the record of an evaluation at that depth alone, field by field, but for its timing."""

from __future__ import annotations

import json

import pytest

from reasonbench.model.testtime import parse_depths

from .conftest import QUIET, call_cli

ARGS = ["--model", "trm", "--task", "sudoku", "--preset", "smoke", *QUIET]
# a few test puzzles, and an out-of-distribution split (more blanks) scored the same way
EVAL = ["--task.num_test", "8", "--task.num_ood", "4", "--task.ood_blanks", "9"]
RECORD = "trm/sudoku/smoke/seed0.eval.json"
# what differs between two evaluations of the same weights whatever they compute: when and how
# long they ran, the process's memory, the command typed
TIMING = {"cost.eval_seconds", "cost.measure_seconds", "cost.device_hours", "cost.peak_memory_bytes",
          "cost.eval_shared_depths", "provenance.started", "provenance.finished", "provenance.command"}


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("trained")
    result = call_cli("run", *ARGS, "--out", str(out), "--trainer.max_steps", "6")
    assert result.returncode == 0, result.stderr
    return str(out / "trm/sudoku/smoke/seed0/final.pt")


@pytest.mark.parametrize("breadth, rule", [("1", "vote"), ("3", "vote"), ("3", "residual"), ("3", "convergence")])
def test_one_pass_writes_the_records_of_separate_depths(checkpoint, tmp_path, breadth, rule) -> None:
    wide = ["--breadth", breadth, "--select", rule, *EVAL]
    single = {}
    for depth in (1, 2, 4):  # each depth alone, where its record would lie; then moved away
        result = call_cli("eval", *ARGS, "--checkpoint", checkpoint, "--out", str(tmp_path / f"depth{depth}"),
                          "--eval-depth", str(depth), *wide)
        assert result.returncode == 0, result.stderr
        path = tmp_path / f"depth{depth}" / RECORD
        single[depth] = json.loads(path.read_text())
        path.unlink()
    result = call_cli("eval", *ARGS, "--checkpoint", checkpoint, "--out", str(tmp_path), "--eval-depth", "4,1,2", *wide)
    assert result.returncode == 0, result.stderr
    flops = []
    for depth in (1, 2, 4):
        shared = json.loads((tmp_path / f"depth{depth}" / RECORD).read_text())
        assert shared["cost"]["eval_shared_depths"] == [1, 2, 4] and "eval_shared_depths" not in single[depth]["cost"]
        a, b = _flat(shared), _flat(single[depth])
        assert {k: a.get(k) for k in a.keys() | b.keys() if k not in TIMING} == \
               {k: b.get(k) for k in a.keys() | b.keys() if k not in TIMING}
        assert len(shared["metrics"]["by_step"]["exact"]) == depth
        assert shared["test_time_compute"]["depth"] == depth and shared["test_time_compute"]["breadth"] == int(breadth)
        ood = shared["metrics"]["ood"]
        assert ood["n_test_examples"] == 4 and len(ood["by_step"]["exact"]) == depth
        flops.append(shared["cost"]["flops_per_example_forward"]["mean"])
    assert flops[1] == 2 * flops[0] and flops[2] == 4 * flops[0]
    assert not (tmp_path / RECORD).exists()  # no record beside the depths' own


def test_parse_depths() -> None:
    assert parse_depths("4,1,2,2", 128) == (1, 2, 4) and parse_depths("64", 128) == (64,)
    for bad in ("0,1", "1,x", "1,,2", "1,129"):
        with pytest.raises(ValueError, match="option --eval-depth"):
            parse_depths(bad, 128)


@pytest.mark.parametrize("command, depth, words", [
    ("eval", "1,0,4", "every depth must be in 1..128, got 0"),
    ("eval", "2,200", "every depth must be in 1..128, got 200"),
    ("eval", "1,two", "must be a depth or a comma list of depths"),
    ("run", "1,2", "tests at one depth"),
])
def test_bad_depth_lists_are_one_line(checkpoint, tmp_path, command, depth, words) -> None:
    given = ["--checkpoint", checkpoint] if command == "eval" else []
    result = call_cli(command, *ARGS, *given, "--out", str(tmp_path), "--eval-depth", depth)
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_model_with_its_own_evaluation_refuses_a_depth_list(tmp_path) -> None:
    import reasonbench as rb
    from reasonbench.config.resolve import resolve
    from reasonbench.execution.build import configure_test_time
    from reasonbench.util.errors import UserError

    cfg, _ = resolve(["--model", "se-rrm", "--task", "sudoku", "--preset", "smoke", "--checkpoint", "x",
                      "--eval-depth", "1,2"], prog="reasonbench eval")
    assert cfg.eval_depths == (1, 2) and cfg.eval_max_steps == 2
    model = rb.create_model("se-rrm", task=rb.create_task("sudoku", preset="smoke"), preset="smoke")
    with pytest.raises(UserError, match="cannot be read at several depths"):
        configure_test_time(cfg, model)


def test_an_existing_record_of_one_depth_stops_the_pass(checkpoint, tmp_path) -> None:
    """An evaluation at depth 2 alone with --out OUT/depth2 wrote the record the list's depth 2
    would write: without --overwrite nothing runs, nothing is written."""
    first = call_cli("eval", *ARGS, "--checkpoint", checkpoint, "--out", str(tmp_path / "depth2"), "--eval-depth", "2",
                     *EVAL[:2])
    assert first.returncode == 0, first.stderr
    kept = (tmp_path / "depth2" / RECORD).read_bytes()
    again = call_cli("eval", *ARGS, "--checkpoint", checkpoint, "--out", str(tmp_path), "--eval-depth", "1,2", *EVAL[:2])
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "depth1").exists() and (tmp_path / "depth2" / RECORD).read_bytes() == kept


def test_the_curve_script_refuses_options_it_sets(capsys) -> None:
    from reasonbench_benchmarks.testtime_curve import main

    for given in (["--breadth", "3"], ["--eval-depth=4"], ["--depths", "1,0"]):
        with pytest.raises(SystemExit) as stop:
            main(["--checkpoint", "final.pt", *given])
        assert stop.value.code == 2
    assert "is this script's to set" in capsys.readouterr().err


@pytest.mark.slow
def test_the_curve_script_prints_every_depth_and_breadth(checkpoint, tmp_path, capsys) -> None:
    from reasonbench_benchmarks.testtime_curve import main

    assert main(["--checkpoint", checkpoint, "--depths", "2,1", "--breadths", "1,2", "--out", str(tmp_path),
                 "--task.num_test", "4"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 1), (2, 1), (1, 2), (2, 2)]
    flops = [float(r[-1]) for r in rows]
    assert flops[1] == pytest.approx(2 * flops[0], rel=1e-3) and flops[2] == pytest.approx(2 * flops[0], rel=1e-3)
    assert (tmp_path / "breadth2/depth2" / RECORD).is_file()
