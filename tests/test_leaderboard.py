import json

import pytest

from reasonbench import leaderboard
from reasonbench import record as rec
from reasonbench.errors import UserError

from .conftest import call_cli
from .test_record import minimal_record


def write(out, seed, correct, preset="mini", status="completed"):
    r = minimal_record()
    r.update(seed=seed, preset=preset)
    r["metrics"].update(exact_correct=correct, n_test_examples=10, exact_accuracy=correct / 10,
                        exact_accuracy_ci95=[0.0, 1.0])
    if status == "diverged":
        r.update(status="diverged", status_detail="non-finite loss at step 3", metrics=None)
    rec.write_record(r, rec.record_path(out, r["model"], r["task"], preset, seed))


def test_seeds_aggregate_and_smoke_and_diverged_are_not_accuracies(tmp_path):
    for seed, correct in ((0, 4), (1, 6)):
        write(tmp_path / "res", seed, correct)
    write(tmp_path / "res", 2, 0, status="diverged")
    write(tmp_path / "res", 0, 10, preset="smoke")
    rows = leaderboard.build(tmp_path / "res", tmp_path / "site")
    assert len(rows) == 1
    row = rows[0]
    assert row["seeds"] == [0, 1] and row["diverged"] == 1
    assert row["exact_accuracy_mean"] == pytest.approx(0.5)
    assert row["exact_accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert row["exact_accuracy_ci95"] == pytest.approx([0.2993, 0.7007], abs=1e-4)  # Wilson, 10 of 20
    assert json.loads((tmp_path / "site" / "leaderboard.json").read_text()) == rows
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    assert "## sudoku / mini" in md and "| transformer | 10 | 1 | 50.0 +- 14.1 | 29.9-70.1 | 2 (1 diverged) |" in md
    assert "smoke" not in md


def test_invalid_record_stops_the_build_naming_the_file(tmp_path):
    bad = tmp_path / "res" / "x.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(UserError, match="x.json: invalid record"):
        leaderboard.build(tmp_path / "res", tmp_path / "site")
    result = call_cli("leaderboard", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "site"))
    assert result.returncode == 2 and "x.json" in result.stderr
    assert not (tmp_path / "site").exists()
