"""Nothing computed is lost: a rerun does not replace a record, an interrupt saves the step
reached, a kill -9 or a full disk mid-checkpoint leaves the previous checkpoint whole, resume
falls back to the newest readable checkpoint, and a record's cost counts every attempt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reasonbench.util.atomic import atomic_writer, stale_temporaries, write_atomic
from reasonbench.execution.checkpoints import AtomicCheckpointIO, resume_point
from reasonbench.util.errors import MachineError

from .conftest import QUIET, call_cli

QUICK = ["run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke", "--trainer.max_steps", "4", *QUIET]
RUN_DIR = Path("transformer/sudoku/smoke/seed0")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # SLURM: Lightning's requeue


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reasonbench", "run", "--model", "transformer", "--task", "sudoku",
                             "--preset", "smoke", "--out", str(out), *QUIET, *extra],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def step_of(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


# --- reruns -----------------------------------------------------------------------------------

def test_a_rerun_refuses_to_replace_a_record_unless_told(tmp_path: Path) -> None:
    assert call_cli(*QUICK, "--out", str(tmp_path)).returncode == 0
    record = tmp_path / RUN_DIR.with_suffix(".json")
    before = record.read_bytes()
    again = call_cli(*QUICK, "--out", str(tmp_path))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert f"record {record} exists" in again.stderr and "--overwrite" in again.stderr
    assert record.read_bytes() == before
    replaced = call_cli(*QUICK, "--out", str(tmp_path), "--overwrite", "--trainer.max_steps", "3")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(record.read_text())["cost"]["train_steps"] == 3
    # the replaced run's checkpoints went with it: the new run's are the only ones
    assert step_of(tmp_path / RUN_DIR / "checkpoints" / "last.ckpt") == 3


def test_an_unfinished_run_is_neither_restarted_nor_overwritten_silently(tmp_path: Path) -> None:
    last = tmp_path / RUN_DIR / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"steps of an interrupted run")
    result = call_cli(*QUICK, "--out", str(tmp_path))
    assert result.returncode == 2 and "unfinished run" in result.stderr and "--resume" in result.stderr
    assert last.read_bytes() == b"steps of an interrupted run"


def test_python_api_refuses_a_rerun_and_records_its_overrides(tmp_path: Path, capsys) -> None:
    import reasonbench as rb

    fast = {"trainer.max_steps": 2, "trainer.enable_progress_bar": False}
    record = rb.run("transformer", "sudoku", preset="smoke", out=str(tmp_path), **fast)
    assert "'trainer.max_steps': 2" in record["provenance"]["command"]
    printed = capsys.readouterr().out  # the summary, as the command prints it
    assert "exact accuracy" in printed and f"record: {record['_path']}" in printed
    rb.run("transformer", "sudoku", preset="smoke", out=str(tmp_path), resume=True, quiet=True, **fast)
    assert capsys.readouterr().out == ""
    with pytest.raises(rb.UserError, match="exists"):
        rb.run("transformer", "sudoku", preset="smoke", out=str(tmp_path), **fast)
    assert rb.run("transformer", "sudoku", preset="smoke", out=str(tmp_path), overwrite=True, **fast)["cost"]["train_steps"] == 2


# --- interrupts and the cost of every attempt ---------------------------------------------------

def interrupt(out: Path, signum: signal.Signals, *extra: str) -> tuple[int, str]:
    """Start a long run (or resume one), let it train a moment, send ``signum``."""
    ledger = out / RUN_DIR / "attempts.json"
    attempts = len(json.loads(ledger.read_text())["attempts"]) if ledger.exists() else 0
    # validation every 3 steps: a signal often lands in one, which must not stop it half-way unsaved
    proc = start(out, "--trainer.max_steps", "100000", "--checkpoint_every", "100000", "--trainer.val_check_interval",
                 "3", "--trainer.check_val_every_n_epoch", "null", *extra)
    deadline = time.monotonic() + 180
    while not ledger.exists() or len(json.loads(ledger.read_text())["attempts"]) == attempts:  # training begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.5)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=180)
    return proc.returncode, stderr


def test_interrupts_save_the_step_reached_and_the_record_counts_every_attempt(tmp_path: Path) -> None:
    last = tmp_path / RUN_DIR / "checkpoints" / "last.ckpt"
    steps = []
    for signum, extra in ((signal.SIGINT, ()), (signal.SIGTERM, ("--resume",))):
        code, stderr = interrupt(tmp_path, signum, *extra)
        assert code == 130, stderr
        lines = stderr.splitlines()
        assert lines[-1].startswith("reasonbench: interrupted: at step ") and "checkpoint saved" in lines[-1]
        # no periodic checkpoint was due (every 100,000 steps): the interrupt wrote this one
        steps.append(step_of(last))
        assert f"at step {steps[-1]};" in lines[-1]
        assert not (tmp_path / RUN_DIR.with_suffix(".json")).exists()
    assert 0 < steps[0] < steps[1]

    done = call_cli(*QUICK, "--out", str(tmp_path), "--resume", "--trainer.max_steps", str(steps[1] + 3))
    assert done.returncode == 0, done.stderr
    assert f"resuming from {last} (step {steps[1]})" in done.stderr
    record = json.loads((tmp_path / RUN_DIR.with_suffix(".json")).read_text())
    attempts = record["provenance"]["attempts"]
    assert [a["outcome"] for a in attempts] == ["interrupted", "interrupted", "completed"]
    assert [a["from_step"] for a in attempts] == [0, steps[0], steps[1]]
    assert [r["step"] for r in record["provenance"]["resumed"]] == steps
    cost = record["cost"]
    # each interrupted attempt trained >= 1.5 s: all three are in the time, not only the last
    assert cost["train_seconds"] == pytest.approx(sum(a["seconds"] for a in attempts), abs=0.01)
    assert all(a["seconds"] >= 1.5 for a in attempts[:2])
    assert cost["device_hours"] == pytest.approx(
        (cost["train_seconds"] + cost["eval_seconds"] + cost["measure_seconds"]) / 3600, rel=1e-3)
    assert cost["train_steps"] == steps[1] + 3


def test_an_unfinished_runs_ledger_is_not_taken_for_a_record(tmp_path: Path) -> None:
    from reasonbench import leaderboard

    write_atomic(tmp_path / "results" / RUN_DIR / "attempts.json", json.dumps({"attempts": []}))
    site = leaderboard.build(tmp_path / "results", tmp_path / "site")
    assert site.records == 0 and not site.skipped


def test_a_killed_attempt_is_marked_and_its_time_kept(tmp_path: Path) -> None:
    proc = start(tmp_path, "--trainer.max_steps", "100000", "--checkpoint_every", "20")
    last = tmp_path / RUN_DIR / "checkpoints" / "last.ckpt"
    wait_for(last, proc)
    time.sleep(1.0)
    proc.kill()
    proc.communicate()
    ledger = json.loads((tmp_path / RUN_DIR / "attempts.json").read_text())["attempts"]
    assert ledger[0]["outcome"] == "running" and ledger[0]["seconds"] > 0  # updated at each checkpoint
    done = call_cli(*QUICK, "--out", str(tmp_path), "--resume", "--trainer.max_steps", str(step_of(last) + 2))
    assert done.returncode == 0, done.stderr
    attempts = json.loads((tmp_path / RUN_DIR.with_suffix(".json")).read_text())["provenance"]["attempts"]
    assert [a["outcome"] for a in attempts] == ["killed", "completed"]


# --- checkpoints on disk ----------------------------------------------------------------------

def test_atomic_writer_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    write_atomic(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic_writer(path) as handle:
            handle.write(b"half of the new one")
            raise RuntimeError("the disk went away")
    assert path.read_bytes() == b"old" and not stale_temporaries(tmp_path, "last.ckpt")
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_kill_9_mid_write_leaves_the_previous_checkpoint_and_resume_cleans_up(tmp_path: Path) -> None:
    """A process killed while writing a checkpoint: the old one loads, the temporary sits in the
    same folder (never in the system's temporary folder), and the resume removes it."""
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    state = {"state_dict": {"w": torch.ones(2)}, "global_step": 7, "epoch": 0, "loops": {},
             "optimizer_states": [], "callbacks": {}}
    AtomicCheckpointIO().save_checkpoint(state, last)
    child = ("import os, signal, sys; from reasonbench.util.atomic import atomic_writer\n"
             "with atomic_writer(sys.argv[1]) as f:\n"
             "    f.write(b'x' * 100000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", child, str(last)], env=ENV)
    assert killed.returncode == -signal.SIGKILL
    assert step_of(last) == 7
    (stale,) = stale_temporaries(last.parent, "last.ckpt")
    point = resume_point(run_dir)
    assert point is not None and point.path == last and point.step == 7
    assert not stale.exists()


def test_resume_falls_back_to_the_newest_readable_checkpoint(tmp_path: Path) -> None:
    args = [*QUICK[:-len(QUIET)], "--trainer.max_steps", "12", "--trainer.val_check_interval", "5",
            "--trainer.check_val_every_n_epoch", "null", *QUIET]
    assert call_cli(*args, "--out", str(tmp_path)).returncode == 0
    run_dir = tmp_path / RUN_DIR
    (tmp_path / RUN_DIR.with_suffix(".json")).unlink()  # as if the run died before its record
    last, (best,) = run_dir / "checkpoints" / "last.ckpt", list((run_dir / "checkpoints").glob("best*.ckpt"))
    last.write_bytes(last.read_bytes()[:1000])
    resumed = call_cli(*args, "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped checkpoint {last}: unreadable" in resumed.stderr
    assert f"resuming from {best} (step {step_of(best)})" in resumed.stderr
    record = json.loads((tmp_path / RUN_DIR.with_suffix(".json")).read_text())
    assert record["provenance"]["resumed"][0]["checkpoint"] == str(best)
    assert record["cost"]["train_steps"] == 12


def test_a_full_disk_mid_checkpoint_keeps_the_previous_one_and_exits_1(tmp_path: Path) -> None:
    """A real full disk (a small tmpfs, as root): the checkpoint that fails leaves the one before
    it whole and no temporary; exit 1 (the machine's fault), one line; a resume after space is
    freed continues from the checkpoint kept."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        proc = start(disk, "--trainer.max_steps", "100000", "--checkpoint_every", "5")
        last = disk / RUN_DIR / "checkpoints" / "last.ckpt"
        wait_for(last, proc)
        filler = disk / "filler"
        with open(filler, "wb") as handle:  # fill what is left
            try:
                while True:
                    handle.write(b"\0" * (1 << 16))
                    handle.flush()
            except OSError:
                pass
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 1, stderr
        lines = stderr.splitlines()
        assert len(lines) == 1 and "No space left on device" in lines[0] and "checkpoint kept whole" in lines[0], stderr
        kept = step_of(last)  # loads: whole
        assert kept >= 5 and not list(disk.rglob("*.tmp"))
        assert not (disk / RUN_DIR.with_suffix(".json")).exists()
        filler.unlink()
        done = call_cli(*QUICK, "--out", str(disk), "--resume", "--trainer.max_steps", str(kept + 2))
        assert done.returncode == 0, done.stderr
        assert f"(step {kept})" in done.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_checkpoint_that_cannot_be_written_is_one_machine_error(tmp_path: Path, monkeypatch) -> None:
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(MachineError, match="No space left on device"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "x.ckpt")
    assert not list(tmp_path.iterdir())


# --- measuring --------------------------------------------------------------------------------

def test_fixed_cost_models_count_forward_flops_on_one_example_and_records_name_the_cpu(tmp_path: Path) -> None:
    assert call_cli(*QUICK, "--out", str(tmp_path)).returncode == 0
    record = json.loads((tmp_path / RUN_DIR.with_suffix(".json")).read_text())
    cost, cpu = record["cost"], record["provenance"]["cpu"]
    assert cpu["model"] and cpu["threads"] >= 1 and cpu["torch_capability"]  # a cross-machine difference shows
    assert cost["flops_per_example_forward"]["examples"] == 1
    assert cost["flops_per_example_forward"]["mean"] == cost["flops_per_example_forward"]["p95"] > 0
    assert cost["measure_seconds"] >= 0


def test_a_record_the_disk_will_not_take_is_said_in_one_line_with_its_numbers(tmp_path: Path, monkeypatch) -> None:
    from reasonbench.record import schema as rec

    def full(record, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rec, "write_record", full)
    result = call_cli(*QUICK, "--out", str(tmp_path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "record not written" in result.stderr and "No space left on device" in result.stderr
    assert "exact accuracy 0.0 of 64 test examples" in result.stderr
    assert f"the weights are in {tmp_path / RUN_DIR / 'final.pt'}" in result.stderr


def test_a_full_disk_in_the_test_pass_is_one_line_naming_it(tmp_path: Path, monkeypatch) -> None:
    """TensorBoard's writer meets a full disk while the test metrics are logged: Lightning wraps
    it as "you tried to log 0.0"; the line says the real fault, exit 1, and no record is written
    (the trained weights are kept)."""
    from torch.utils.tensorboard import SummaryWriter

    real = SummaryWriter.add_scalar

    def full_when_testing(self, tag, *args, **kwargs):
        if str(tag).startswith("test/"):
            raise OSError(28, "No space left on device", str(tmp_path / "events"))
        return real(self, tag, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_when_testing)
    result = call_cli(*QUICK, "--out", str(tmp_path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"testing stopped: cannot write {tmp_path / 'events'}: No space left on device" in result.stderr
    assert "log 0.0" not in result.stderr
    assert f"the trained weights are in {tmp_path / RUN_DIR / 'final.pt'}" in result.stderr
    assert not (tmp_path / RUN_DIR.with_suffix(".json")).exists() and (tmp_path / RUN_DIR / "final.pt").is_file()


def test_any_os_error_in_the_test_pass_is_one_line_whatever_the_logger(tmp_path: Path, monkeypatch) -> None:
    from lightning.pytorch.loggers import CSVLogger

    def broken(self, metrics, step=None):
        if any(str(k).startswith("test/") for k in metrics):
            raise RuntimeError("the logger failed") from OSError(13, "Permission denied", "metrics.csv")

    monkeypatch.setattr(CSVLogger, "log_metrics", broken)
    result = call_cli(*QUICK, "--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path / "csv"),
                      "--out", str(tmp_path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "testing stopped: Permission denied (metrics.csv); no record written" in result.stderr
