"""`reasonbench sweep`: the manifest, finished runs skipped and the rest run again, bad input
stopping before anything is written, the local executor, and the SLURM executor on a real
single-node cluster (munged, slurmctld, slurmd started by ``tests/slurm_cluster.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasonbench.record.schema import read_record

from . import slurm_cluster
from .conftest import ROOT, call_cli

# the smallest runs that still train, test and write a record: seconds each on a CPU
TINY = ["--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "0",
        "--task.num_train", "64", "--task.num_val", "16", "--task.num_test", "16",
        "--measure.flops_examples", "2", "--measure.train_flop_steps", "1"]


def manifest(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


def runs_by_name(out: Path) -> dict[str, dict]:
    return {run["name"]: run for run in manifest(out)["runs"]}


def plant_bad_checkpoint(out: Path, model: str, seed: int) -> Path:
    """`run --resume` continues from the newest checkpoint: an unreadable one fails that run alone."""
    bad = out / model / "sudoku" / "smoke" / f"seed{seed}" / "checkpoints" / "last.ckpt"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("not a checkpoint")
    return bad


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reasonbench: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --- validation, dry run, status ---------------------------------------------------------------

@pytest.mark.parametrize("extra, fragments", [
    (["--models", "transformer,gpt5"], ["unknown model 'gpt5'", "valid models: "]),
    (["--models", "transformer", "--tasks", "chess"], ["unknown task 'chess'"]),
    (["--models", "transformer", "--preset", "paper"], ["transformer/sudoku/paper", "no preset 'paper'"]),
    (["--models", "transformer", "--model.depth", "3"], ["transformer/sudoku/smoke", "--model.depth"]),
    (["--models", "transformer", "--seeds", "3-1"], ["--seeds '3-1'"]),
    (["--models", "transformer", "--seeds", "0-99999999"], ["--seeds 0-99999999", "more than 10,000 seeds"]),
    (["--models", "transformer", "--seeds", "4294967296"], ["--seeds", "0..4294967295", "4294967296"]),
    (["--models", "../transformer"], ["--models '../transformer'", "not a valid name"]),
    (["--models", "transformer", "--parallel", "0"], ["--parallel 0"]),
    (["--models", "transformer", "--partition", "gpu"], ["--partition is for --executor slurm"]),
    (["--models", "transformer", "--executor", "slurm", "--time", "soon"], ["--time 'soon'"]),
    (["--models", "transformer", "--executor", "slurm", "--mem", "lots"], ["--mem 'lots'"]),
])
def test_bad_input_stops_before_anything_is_written(extra, fragments, tmp_path):
    out = tmp_path / "out"
    result = call_cli("sweep", "--out", str(out), "--tasks", "sudoku", "--seeds", "0", *extra)  # later lists add up
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_dry_run_writes_only_the_manifest(tmp_path):
    out = tmp_path / "out"
    result = call_cli("sweep", "--models", "transformer", "--tasks", "sudoku", "--seeds", "0,2-3", "--out", str(out),
                      "--dry-run", *TINY)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]
    runs = manifest(out)["runs"]
    assert [r["seed"] for r in runs] == [0, 2, 3] and {r["status"] for r in runs} == {"pending"}
    command = runs[0]["command"]
    assert command[:4] == [sys.executable, "-m", "reasonbench", "run"] and command[-1] == "--resume"
    assert command[command.index("--out") + 1] == str(out) and "--trainer.max_steps" in command
    assert runs[0]["record"] == str(out / "transformer" / "sudoku" / "smoke" / "seed0.json")

    before = (out / "sweep.json").stat().st_mtime_ns
    status = call_cli("sweep", "--status", "--out", str(out))
    assert status.returncode == 0, status.stderr
    assert "0 finished, 0 in SLURM, 3 to run" in status.stdout and "transformer/sudoku/smoke/seed3" in status.stdout
    assert (out / "sweep.json").stat().st_mtime_ns == before


def test_slurm_script_takes_its_resources_from_the_preset(tmp_path):
    """Two GPUs asked for by the trainer settings: two processes per run under srun, the GPUs
    requested; the time limit follows the device-time budget (2 h over 2 devices, plus margin)."""
    out = tmp_path / "out"
    result = call_cli("sweep", "--models", "transformer", "--tasks", "sudoku", "--seeds", "0-2", "--out", str(out),
                      "--executor", "slurm", "--partition", "gpu", "--dry-run", "--parallel", "2",
                      "--trainer.accelerator", "gpu", "--trainer.devices", "2", "--budget", "2h")
    assert result.returncode == 0, result.stderr
    script = next((out / "slurm").glob("sweep_*.sbatch")).read_text()
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@90",
                 "#SBATCH --ntasks-per-node=2", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                 "#SBATCH --time=0-01:25:00", 'exec srun "$@"'):
        assert line in script
    commands = next((out / "slurm").glob("sweep_*.commands")).read_text().splitlines()
    assert len(commands) == 3 and commands[2].endswith("--budget 2h --resume")
    assert manifest(out)["submissions"] == []  # a dry run submits nothing

    cpu = call_cli("sweep", "--models", "transformer", "--tasks", "sudoku", "--seeds", "0",
                   "--out", str(tmp_path / "cpu"), "--executor", "slurm", "--dry-run", "--time", "90m")
    script = next((tmp_path / "cpu" / "slurm").glob("sweep_*.sbatch")).read_text()
    assert cpu.returncode == 0 and "#SBATCH --ntasks=1" in script and "--gres" not in script
    assert "#SBATCH --time=0-01:30:00" in script and 'exec "$@"' in script


# --- local executor ----------------------------------------------------------------------------

def test_local_sweep_skips_finished_runs_and_reruns_the_rest(tmp_path):
    out = tmp_path / "out"
    args = ["sweep", "--models", "transformer,trm", "--tasks", "sudoku", "--seeds", "0-1", "--parallel", "2",
            "--out", str(out), *TINY]
    bad = plant_bad_checkpoint(out, "trm", 1)

    first = call_cli(*args)
    assert first.returncode == 1, first.stdout + first.stderr
    runs = runs_by_name(out)
    failed = runs["trm/sudoku/smoke/seed1"]
    assert failed["status"] == "failed" and failed["exit_code"] == 2
    assert "trm/sudoku/smoke/seed1" in first.stderr and failed["log"] in first.stderr
    assert "unreadable" in Path(failed["log"]).read_text()
    for name, run in runs.items():
        if name != failed["name"]:
            assert run["status"] == "completed" and run["exit_code"] == 0
            assert read_record(run["record"])["status"] == "completed"
    # --parallel 2: never three runs at once
    spans = [(run["started"], run["finished"]) for run in runs.values()]
    assert all(sum(s <= start < f for s, f in spans) <= 2 for start, _ in spans)

    # the failed run fixed, one record deleted: exactly those two run again
    bad.unlink()
    Path(runs["transformer/sudoku/smoke/seed0"]["record"]).unlink()
    logs = {name: Path(run["log"]).stat().st_mtime_ns for name, run in runs.items()}
    second = call_cli(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 finished, 0 in SLURM, 2 to run" in second.stdout
    changed = {name for name, run in runs_by_name(out).items() if Path(run["log"]).stat().st_mtime_ns != logs[name]}
    assert changed == {"transformer/sudoku/smoke/seed0", "trm/sudoku/smoke/seed1"}
    assert all(read_record(run["record"])["status"] == "completed" for run in runs_by_name(out).values())

    logs = {name: Path(run["log"]).stat().st_mtime_ns for name, run in runs_by_name(out).items()}
    third = call_cli(*args)
    assert third.returncode == 0 and "4 finished, 0 in SLURM, 0 to run" in third.stdout
    assert "start " not in third.stdout
    assert {name: Path(run["log"]).stat().st_mtime_ns for name, run in runs_by_name(out).items()} == logs


def test_ctrl_c_stops_the_runs_and_leaves_the_manifest_consistent(tmp_path):
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "reasonbench", "sweep", "--models", "transformer", "--tasks",
                              "sudoku", "--seeds", "0-1", "--parallel", "2", "--out", str(out), *TINY,
                              "--trainer.max_steps", "100000"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    logs = [out / "logs" / f"transformer.sudoku.smoke.seed{seed}.log" for seed in (0, 1)]
    deadline = time.monotonic() + 120
    # training under way in both runs (their first checkpoints), then Ctrl-C
    while not all((out / "transformer" / "sudoku" / "smoke" / f"seed{s}" / "tensorboard").is_dir() for s in (0, 1)):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.5)
    sweep.send_signal(signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stdout + stderr
    assert "interrupted: 2 runs stopped" in stderr
    runs = manifest(out)["runs"]
    assert [r["status"] for r in runs] == ["interrupted", "interrupted"]
    assert all(r["exit_code"] is not None and r["finished"] for r in runs)  # the runs ended before the sweep
    assert not any(Path(r["record"]).exists() for r in runs)
    assert all(log.is_file() for log in logs)


# --- SLURM executor on a real single-node cluster ----------------------------------------------

@pytest.fixture(scope="module")
def slurm():
    try:
        cluster = slurm_cluster.start()
    except slurm_cluster.Unavailable as exc:
        pytest.skip(f"SLURM could not start: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_env(slurm, monkeypatch):
    for key, value in slurm.env.items():  # the sweep's sbatch/squeue calls, and the jobs, find the cluster
        monkeypatch.setenv(key, value)
    return slurm


def scontrol_job(job: str) -> dict[str, str]:
    text = subprocess.run(["scontrol", "--oneliner", "show", "job", job], capture_output=True, text=True,
                          check=True).stdout
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def test_slurm_sweep_runs_through_slurmctld_and_reruns_only_failures(tmp_path, slurm_env):
    out = tmp_path / "out"
    args = ["sweep", "--executor", "slurm", "--wait", "--cpus-per-task", "1", "--mem", "1G", "--models", "transformer",
            "--tasks", "sudoku", "--seeds", "0-1", "--out", str(out), *TINY]
    bad = plant_bad_checkpoint(out, "transformer", 1)

    first = call_cli(*args)
    assert first.returncode == 1, first.stdout + first.stderr
    (submission,) = manifest(out)["submissions"]
    job = submission["job_id"]
    runs = runs_by_name(out)
    assert runs["transformer/sudoku/smoke/seed0"]["slurm_job"] == f"{job}_0"
    assert runs["transformer/sudoku/smoke/seed0"]["status"] == "completed"
    failed = runs["transformer/sudoku/smoke/seed1"]
    assert failed["status"] == "failed" and failed["exit_code"] == 2 and failed["log"] in first.stderr
    # the jobs went through slurmctld and slurmd: its records of them, and slurmstepd's output files
    assert scontrol_job(f"{job}_0")["JobState"] == "COMPLETED"
    assert scontrol_job(f"{job}_1")["JobState"] == "FAILED"
    assert sorted(p.name for p in (out / "logs" / "slurm").iterdir()) == [f"{job}_0.out", f"{job}_1.out"]
    if slurm_env.folder:  # our own cluster: the controller's job completion log
        completions = slurm_env.log("jobcomp.log")
        assert f"ArrayJobId={job} ArrayTaskId=0" in completions and "JobState=FAILED" in completions
    assert f"SLURM job {job}_0, restart 0" in Path(runs["transformer/sudoku/smoke/seed0"]["log"]).read_text()
    assert read_record(runs["transformer/sudoku/smoke/seed0"]["record"])["status"] == "completed"

    bad.unlink()
    second = call_cli(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    submissions = manifest(out)["submissions"]
    assert len(submissions) == 2 and submissions[1]["runs"] == ["transformer/sudoku/smoke/seed1"]
    assert runs_by_name(out)["transformer/sudoku/smoke/seed1"]["slurm_job"] == f"{submissions[1]['job_id']}_0"
    assert all(read_record(run["record"])["status"] == "completed" for run in runs_by_name(out).values())

    third = call_cli(*args)
    assert third.returncode == 0 and "2 finished, 0 in SLURM, 0 to run" in third.stdout
    assert len(manifest(out)["submissions"]) == 2 and len(list((out / "slurm").glob("*.sbatch"))) == 2


def test_slurm_requeue_resumes_the_run(tmp_path, slurm_env):
    """USR1 to the batch step (as SLURM sends before the time limit): Lightning checkpoints and
    requeues the task; the requeued task's `run --resume` continues from the checkpoint. The run
    trains for a 20 s budget, longer than the first attempt can last after the signal
    (KillWait 5 s), so the record can only come from the resumed attempt."""
    out = tmp_path / "out"
    args = ["sweep", "--executor", "slurm", "--cpus-per-task", "1", "--mem", "1G", "--models", "transformer",
            "--tasks", "sudoku", "--seeds", "0", "--out", str(out), *TINY,
            "--trainer.max_steps", "1000000", "--budget", "20s", "--checkpoint_every", "5"]
    submitted = call_cli(*args)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    task = f"{manifest(out)['submissions'][0]['job_id']}_0"
    run = manifest(out)["runs"][0]
    checkpoint = out / "transformer" / "sudoku" / "smoke" / "seed0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file():  # training is under way
        assert time.monotonic() < deadline and scontrol_job(task)["JobState"] in ("PENDING", "RUNNING"), \
            Path(run["log"]).read_text() if Path(run["log"]).exists() else scontrol_job(task)
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)
    deadline = time.monotonic() + 240  # its own wait: a slow CPU (kernels without AVX2) took longer
    while scontrol_job(task).get("Restarts") == "0":
        assert time.monotonic() < deadline, scontrol_job(task)
        time.sleep(0.5)

    # again while the task waits in the queue: nothing is submitted, the sweep waits for it
    waited = call_cli(*args, "--wait")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "0 finished, 1 in SLURM, 0 to run" in waited.stdout and len(manifest(out)["submissions"]) == 1
    assert scontrol_job(task)["Restarts"] == "1" and scontrol_job(task)["JobState"] == "COMPLETED"
    log = Path(run["log"]).read_text()
    assert f"SLURM job {task}, restart 0" in log and f"SLURM job {task}, restart 1" in log
    record = read_record(run["record"])
    assert record["status"] == "completed" and record["budget"]["stopped_at_step"] is not None
    (resumed,) = record["provenance"]["resumed"]
    # from Lightning's checkpoint on USR1 (hpc_ckpt_1.ckpt) or a later periodic last.ckpt
    assert resumed["step"] > 0 and Path(resumed["checkpoint"]).is_relative_to(checkpoint.parent.parent)


# --- manifests from outside: validated before use ----------------------------------------------

def _valid_manifest(out: Path) -> dict:
    return {"format": "reasonbench-sweep", "version": 1, "created": "2026-01-01T00:00:00+00:00",
            "arguments": {"models": ["transformer"], "tasks": ["sudoku"], "seeds": [0, 1], "preset": "smoke",
                          "out": str(out), "executor": "local", "parallel": None, "overrides": [], "slurm": None},
            "submissions": [],
            "runs": [{"name": "transformer/sudoku/smoke/seed0", "model": "transformer", "task": "sudoku",
                      "preset": "smoke", "seed": 0, "status": "failed", "exit_code": 1, "slurm_job": None}]}


def _status_of(out: Path, text: str | bytes):
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    result = call_cli("sweep", "--status", "--out", str(out))
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before  # nothing written
    return result


def _set(manifest: dict, path: tuple, value) -> dict:
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return manifest


@pytest.mark.parametrize("path, value, fragment", [
    (("arguments", "models"), "transformer", "arguments/models: 'transformer' is not of type 'array'"),
    (("arguments", "models"), ["../../elsewhere"], "not a valid name"),
    (("arguments", "models"), ["gpt5"], "unknown model 'gpt5'"),
    (("arguments", "seeds"), [2**40], "arguments/seeds/0"),
    (("arguments", "seeds"), "0", "arguments/seeds"),
    (("arguments", "preset"), "../x", "not a valid name"),
    (("arguments",), {"models": ["transformer"]}, "'tasks' is a required property"),
    (("runs",), [{"model": "transformer"}], "runs/0"),
    (("runs", 0, "status"), "\x1b[2J", "runs/0/status: '\\x1b[2J'"),
    (("runs", 0, "slurm_job"), "1; rm -rf /", "runs/0/slurm_job"),
    (("version",), 2, "version"),
])
def test_a_hostile_manifest_is_one_line(path, value, fragment, tmp_path):
    out = tmp_path / "out"
    result = _status_of(out, json.dumps(_set(_valid_manifest(out), path, value)))
    assert_one_line_error(result, str(out / "sweep.json"), fragment)
    assert "\x1b" not in result.stderr


def test_manifests_that_are_not_json_objects_are_one_line(tmp_path):
    out = tmp_path / "out"
    for text, fragment in (("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("{", "not valid JSON"),
                           ('{"format": NaN}', "NaN is not a number"), ("[]", "not a reasonbench sweep manifest")):
        assert_one_line_error(_status_of(out, text), fragment)
    (out / "sweep.json").unlink()
    os.mkfifo(out / "sweep.json")
    assert_one_line_error(call_cli("sweep", "--status", "--out", str(out)), "not a regular file: a FIFO")


def test_a_valid_manifest_and_an_escaping_folder_name_are_shown_safely(tmp_path):
    out = tmp_path / "out\x1b[2J"
    result = _status_of(out, json.dumps(_valid_manifest(out)))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "out\\x1b[2J" in result.stdout
    assert "failed      transformer/sudoku/smoke/seed0  (exit 1; log " in result.stdout  # as last observed
    assert "transformer/sudoku/smoke/seed1" in result.stdout


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=10), st.sampled_from(["../x", "\x1b[2J", "transformer"])),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)
MANIFEST_PATHS = [("arguments", "models"), ("arguments", "tasks"), ("arguments", "seeds"), ("arguments", "preset"),
                  ("arguments", "overrides"), ("arguments",), ("runs",), ("runs", 0), ("runs", 0, "seed"),
                  ("runs", 0, "model"), ("runs", 0, "status"), ("runs", 0, "exit_code"), ("submissions",),
                  ("format",), ("version",)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(MANIFEST_PATHS), json_values), min_size=1, max_size=3))
def test_generated_manifests_are_shown_or_refused_in_one_line(tmp_path_factory, changes):
    out = tmp_path_factory.mktemp("gen") / "out"
    manifest = _valid_manifest(out)
    for path, value in changes:
        try:
            _set(manifest, path, value)
        except (KeyError, IndexError, TypeError):  # a change above replaced the container
            continue
    result = _status_of(out, json.dumps(manifest))
    assert "Traceback" not in result.stderr and "\x1b" not in result.stdout + result.stderr
    if result.returncode != 0:
        assert_one_line_error(result)
