"""The benchmark scripts run (their timings are printed, never asserted)."""

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_sudoku_extreme_scale_builds_the_paper_recipe_and_counts_trm_flops(tmp_path):
    out = subprocess.run([sys.executable, "-m", "reasonbench_benchmarks.sudoku_extreme_scale", "--train-rows", "3000",
                          "--test-rows", "700", "--distinct", "50", "--eval-examples", "1"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    # 1,000 sampled puzzles and 1,000 augmentations of each; the whole test file kept
    assert "(val 100, test 700, train 1,001,000)" in out
    # every one of the 16 segments runs at evaluation: a fixed count for the paper model
    assert "5,028,866 parameters" in out and "410.1 GFLOP per test puzzle at evaluation (16 segments)" in out
    need = re.search(r"H100 \(bf16 dense peak 989 TFLOP/s\): (\d+) s at 100% MFU", out)
    assert need and int(need.group(1)) == round(700 * 410.1e9 / 989.4e12)


def test_reproduce_accepts_the_same_result_and_refuses_another(tmp_path, capsys):
    """The CI check of a committed row: a record re-run to the same counts passes, one whose
    committed count differs fails."""
    import json

    from reasonbench.cli import main as reasonbench
    from reasonbench_benchmarks.reproduce import main as reproduce

    assert reasonbench(["run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--out", str(tmp_path),
                        "--trainer.enable_progress_bar", "false"]) == 0
    record = tmp_path / "transformer/sudoku/smoke/seed0.json"
    assert reproduce([str(record)]) == 0  # the same preset and seed on the same machine: the same counts
    data = json.loads(record.read_text())
    again = tmp_path / "again.json"
    data["metrics"]["exact_correct"] = data["metrics"]["n_test_examples"] + 1  # no run gives this
    again.write_text(json.dumps(data))
    assert reproduce([str(again)]) == 1
    assert "differs" in capsys.readouterr().err
