"""Resume after a crash, determinism, the device-time budget."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reasonbench.config.resolve import parse_duration
from reasonbench.util.errors import UserError

from .conftest import QUIET, call_cli, run_cli

# long enough to kill mid-way; validation and periodic checkpoints inside the run
TRM = ["--model", "trm", "--task", "sudoku", "--preset", "smoke", "--trainer.max_steps", "150",
       "--checkpoint_every", "10", "--trainer.val_check_interval", "40", "--trainer.check_val_every_n_epoch", "null",
       "--trainer.deterministic", "true", "--model.halt_exploration_prob", "0.3",
       "--optim.min_lr_ratio", "0.1", *QUIET]  # a cosine to resume within, not a constant rate


def _record(out: Path, model: str = "trm") -> dict:
    return json.loads((out / model / "sudoku/smoke/seed0.json").read_text())


def _weights(out: Path, model: str = "trm") -> dict[str, torch.Tensor]:
    return torch.load(out / model / "sudoku/smoke/seed0/final.pt", weights_only=True)["state_dict"]


def _checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])
    except Exception:  # not written yet, or being written
        return 0


def test_resume_after_kill_9_ends_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    whole = run_cli("run", *TRM, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "reasonbench", "run", *TRM, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = out / "trm/sudoku/smoke/seed0/checkpoints/last.ckpt"
    deadline = time.time() + 240
    while _checkpoint_step(last) < 50 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "trm/sudoku/smoke/seed0.json").exists()

    resumed = run_cli("run", *TRM, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _record(tmp_path / "whole"), _record(out)
    assert b["metrics"] == a["metrics"]
    assert b["cost"]["train_steps"] == a["cost"]["train_steps"] == 150
    assert b["cost"]["train_flops"] == a["cost"]["train_flops"]
    (entry,) = b["provenance"]["resumed"]
    assert 50 <= entry["step"] < 150 and entry["checkpoint"].endswith("last.ckpt")
    assert a["provenance"]["resumed"] == []
    wa, wb = _weights(tmp_path / "whole"), _weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_keeps_a_finished_run_and_starts_a_missing_one(tmp_path: Path) -> None:
    quick = ["--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--trainer.max_steps", "3", *QUIET]
    first = call_cli("run", *quick, "--out", str(tmp_path), "--resume")  # nothing there yet: starts
    assert first.returncode == 0, first.stderr
    path = tmp_path / "transformer/sudoku/smoke/seed0.json"
    before = path.stat().st_mtime_ns
    again = call_cli("run", *quick, "--out", str(tmp_path), "--resume")
    assert again.returncode == 0 and "finished already" in again.stdout
    assert path.stat().st_mtime_ns == before


def test_resume_from_a_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    last = tmp_path / "transformer/sudoku/smoke/seed0/checkpoints/last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--out", str(tmp_path), "--resume", *QUIET)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "last.ckpt" in result.stderr
    assert not list(tmp_path.rglob("*.json"))


def test_same_seed_same_record_metrics_and_weights(tmp_path: Path) -> None:
    args = ["--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--trainer.max_steps", "12", *QUIET]
    for name in ("a", "b"):
        assert call_cli("run", *args, "--out", str(tmp_path / name)).returncode == 0
    assert _record(tmp_path / "a", "transformer")["metrics"] == _record(tmp_path / "b", "transformer")["metrics"]
    wa, wb = _weights(tmp_path / "a", "transformer"), _weights(tmp_path / "b", "transformer")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_budget_stops_training_and_is_recorded(tmp_path: Path) -> None:
    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke",
                      "--trainer.max_steps", "1000000", "--budget", "2s", "--out", str(tmp_path), *QUIET)
    assert result.returncode == 0, result.stderr
    record = _record(tmp_path, "transformer")
    assert record["budget"]["device_seconds"] == 2.0 and record["budget"]["spec"] == "2s"
    stopped = record["budget"]["stopped_at_step"]
    assert stopped is not None and record["cost"]["train_steps"] == stopped < 1000000
    assert record["cost"]["train_seconds"] >= 2.0
    assert record["status"] == "completed" and record["metrics"]["n_test_examples"] == 64
    # a run the budget stopped never reads as finished: the record and the summary say so
    assert record["training"] == {"steps": stopped, "planned_steps": 1000000, "finished": False, "stopped_by": "budget"}
    assert f"stopped by the budget at step {stopped:,} of 1,000,000" in result.stdout


@pytest.mark.parametrize(("text", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("2d", 172800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "", "-5m", "0", "inf", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UserError, match="--budget"):
        parse_duration(text)


@pytest.mark.slow
def test_an_unfinished_checkpoint_evaluated_lands_on_a_partial_track(tmp_path: Path) -> None:
    """A run stopped by its budget keeps last.ckpt at the step it reached; `eval` of that
    checkpoint records the step against the run's planned steps, and the leaderboard puts the
    record on a partial track, never the preset's."""
    from reasonbench.leaderboard import tracks as lb_tracks

    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke",
                      "--trainer.max_steps", "1000000", "--budget", "2s", "--out", str(tmp_path / "train"), *QUIET)
    assert result.returncode == 0, result.stderr
    stopped = _record(tmp_path / "train", "transformer")["training"]["steps"]
    checkpoint = tmp_path / "train/transformer/sudoku/smoke/seed0/checkpoints/last.ckpt"
    result = call_cli("eval", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--checkpoint",
                      str(checkpoint), "--out", str(tmp_path / "eval"), *QUIET)
    assert result.returncode == 0, result.stderr
    assert f"evaluated weights from step {stopped:,} of 1,000,000" in result.stdout
    record = json.loads((tmp_path / "eval/transformer/sudoku/smoke/seed0.eval.json").read_text())
    assert record["training"] == {"steps": stopped, "planned_steps": 1000000, "finished": False, "stopped_by": None}
    record["preset"] = "mini"  # smoke runs are never listed; as a mini run it would be listed apart
    assert lb_tracks.track(record) == f"mini (partial: step {stopped:,} of 1,000,000)"
