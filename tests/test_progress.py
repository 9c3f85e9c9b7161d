"""The terminal's view of a run."""

from __future__ import annotations

from pathlib import Path

from .conftest import call_cli


def test_training_shows_one_bar_over_the_steps_of_the_run(tmp_path: Path) -> None:
    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke",
                      "--trainer.max_steps", "12", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    frames = result.stdout.replace("\r", "\n").splitlines()  # Lightning's bars write to stdout
    bars = [f for f in frames if f.startswith("training, step")]
    assert bars and "12/12" in bars[-1] and "Epoch" not in result.stdout  # no "Epoch 6/-2"
    # the summary says what the preset's numbers mean
    assert "preset means             a seconds-long check that everything runs" in result.stdout
    assert "could not find the monitored key" not in result.stderr  # 12 steps end before any validation
