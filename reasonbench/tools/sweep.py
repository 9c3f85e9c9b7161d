"""``reasonbench sweep``: models x tasks x seeds under one preset, each run a
``reasonbench run --resume``, launched here (``--executor local``, at most ``--parallel`` at
once) or as one SLURM job array (``--executor slurm``, a generated sbatch script).

``DIR/sweep.json`` lists every run: its command, record, log and last observed status. What
is finished is decided from the records on disk at every invocation: a valid record (status
completed or diverged) is skipped, everything else runs again, so repeating the command
finishes a sweep. Runs still queued or running in SLURM are left alone.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reasonbench.config.commandline import command_parser, parse, split_passthrough
from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import load_json, printable, schema_error
from reasonbench.record.schema import SWEEP_MANIFEST_NAME, read_record, record_path, write_atomic
from reasonbench.config.registry import default_preset

MANIFEST = SWEEP_MANIFEST_NAME
MANIFEST_FORMAT = "reasonbench-sweep"
FINISHED = ("completed", "diverged")
# options handed unchanged to every run (resolved against each model and task before anything is written)
PASSTHROUGH = ("--model.", "--task.", "--optim.", "--trainer.", "--measure.", "--checkpoint_every", "--budget")
LOCAL_POLL_SECONDS = 0.5  # how often the local runs are looked at
POLL_SECONDS = 2.0  # how often the SLURM queue is looked at (--wait)
STOP_GRACE_SECONDS = 30  # after Ctrl-C, time for the runs to stop cleanly before they are killed
# at most this many seeds, and runs, in one sweep: a range such as 0-99999999 is refused before it is built
MAX_SEEDS = 10_000
MAX_RUNS = 100_000
RUN_STATUSES = ("pending", "running", "completed", "diverged", "failed", "interrupted")
_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
_TEXT_OR_NULL = {"type": ["string", "null"], "maxLength": 200}
# what a manifest must be before anything in it is used (a manifest is a file anyone may have edited)
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["format", "version", "arguments", "runs", "submissions"],
    "properties": {
        "format": {"const": MANIFEST_FORMAT},
        "version": {"const": 1},
        "created": {"type": "string", "maxLength": 64},
        "updated": {"type": "string", "maxLength": 64},
        "arguments": {
            "type": "object",
            "required": ["models", "tasks", "seeds", "preset", "overrides"],
            "properties": {
                "models": {"type": "array", "items": _NAME, "minItems": 1, "maxItems": 1000},
                "tasks": {"type": "array", "items": _NAME, "minItems": 1, "maxItems": 1000},
                "seeds": {"type": "array", "minItems": 1, "maxItems": MAX_SEEDS,
                          "items": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}},
                "preset": _NAME,
                "out": {"type": "string", "maxLength": 4096},
                "executor": {"enum": ["local", "slurm"]},
                "parallel": {"type": ["integer", "null"], "minimum": 1},
                "overrides": {"type": "array", "items": {"type": "string", "maxLength": 10_000}, "maxItems": 1000},
                "slurm": {"type": ["object", "null"]},
            },
        },
        "submissions": {"type": "array", "maxItems": 100_000, "items": {"type": "object"}},
        "runs": {
            "type": "array", "maxItems": MAX_RUNS,
            "items": {"type": "object", "required": ["model", "task", "preset", "seed"],
                      "properties": {"model": _NAME, "task": _NAME, "preset": _NAME,
                                     "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                                     "status": {"enum": list(RUN_STATUSES)},
                                     "exit_code": {"type": ["integer", "null"]},
                                     "slurm_job": {"type": ["string", "null"], "pattern": "^[0-9]+(_[0-9]+)?$"},
                                     "started": _TEXT_OR_NULL, "finished": _TEXT_OR_NULL}},
        },
    },
}
# SLURM sends USR1 this long before the time limit: Lightning checkpoints and requeues the run
SIGNAL_LEAD_SECONDS = 90
# without a budget in the preset: a limit per attempt; longer runs continue in requeued attempts
DEFAULT_TIME = "04:00:00"
# (factor, seconds): a budget covers training only; data building, the test pass and FLOP counting
# come on top of it
BUDGET_MARGIN = 1.25, 600


@dataclass
class SlurmOptions:
    """Per-array-task resources. GPUs and processes come from the resolved trainer settings."""

    partition: str | None = None
    time: str | None = None  # SLURM's format; None: from the preset's budget, else DEFAULT_TIME
    cpus_per_task: int = 2  # the data is in memory: the trainer process and its torch threads
    mem: str = "8G"  # per node, SLURM's form
    wait: bool = False


@dataclass
class Run:
    model: str
    task: str
    preset: str
    seed: int
    command: list[str]
    record: str
    log: str
    status: str = "pending"  # pending, running, completed, diverged, failed, interrupted
    exit_code: int | None = None
    slurm_job: str | None = None  # "<array job id>_<index>" of the latest submission
    started: str | None = None
    finished: str | None = None

    @property
    def name(self) -> str:
        return f"{self.model}/{self.task}/{self.preset}/seed{self.seed}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def sweep(models: list[str], tasks: list[str], seeds: list[int], preset: str | None = None, out: str | Path = "results",
          executor: str = "local", parallel: int | None = None, overrides: list[str] | None = None,
          slurm: SlurmOptions | None = None, dry_run: bool = False) -> int:
    """Run (or submit) every run of the sweep that has no finished record; 0 when all are
    finished (or, for SLURM without ``wait``, submitted), 1 when any failed. Everything is
    validated, every (model, task, preset) resolved, before anything is written."""
    preset = preset or default_preset()
    overrides = list(overrides or [])
    slurm = slurm or SlurmOptions()
    _check_names(models, tasks, seeds)
    if executor not in ("local", "slurm"):
        raise UserError(f"--executor {executor!r}: expected local or slurm")
    if parallel is not None and parallel < 1:
        raise UserError(f"--parallel {parallel}: must be >= 1")
    resolved = _resolve_all(models, tasks, preset, overrides)
    if executor == "slurm":
        _check_slurm_options(slurm)
        if not dry_run and shutil.which("sbatch") is None:
            raise UserError("--executor slurm: sbatch not found on PATH (run on a SLURM login node)")
    out = Path(out).absolute()
    arguments = {"models": models, "tasks": tasks, "seeds": seeds, "preset": preset, "out": str(out),
                 "executor": executor, "parallel": parallel, "overrides": overrides,
                 "slurm": asdict(slurm) if executor == "slurm" else None}
    with _locked(out):
        runs, submissions = _load_runs(out, models, tasks, seeds, preset, overrides)
        todo = _observe(runs)
        save = _manifest_writer(out, arguments, runs, submissions)
        _print_plan(runs, todo, out, models, tasks, seeds, preset)
        if executor == "slurm" and todo:
            script, commands = _write_sbatch(out, todo, _slurm_resources(resolved, slurm), parallel)
            print(f"sbatch script: {printable(script)} (commands: {printable(commands)})")
            if not dry_run:  # a failed sbatch removes the script and leaves the manifest as it was
                submissions.append(_submit(script, commands, todo))
                print(f"submitted SLURM job array {submissions[-1]['job_id']} ({len(todo)} runs); "
                      f"logs in {printable(out / 'logs')}")
        save()
        if dry_run:
            return 0
        if todo and executor == "local":
            _run_local(todo, parallel or 1, save)
        if executor == "slurm":
            if not slurm.wait:
                return 0
            _wait_slurm(runs, save, out)  # this submission's runs and any still queued from earlier ones
    return _report(runs)


def status(out: str | Path) -> int:
    """Print the table of the sweep in ``out`` (statuses refreshed from the records and the
    SLURM queue); launches and writes nothing."""
    out = Path(out).absolute()
    manifest = _read_manifest(out / MANIFEST)
    if manifest is None:
        raise UserError(f"{out / MANIFEST}: no sweep manifest (start one with reasonbench sweep --out {out} ...)")
    args = manifest["arguments"]
    try:
        from reasonbench.config.resolve import check_name

        _check_names(args["models"], args["tasks"], args["seeds"])
        check_name("preset", args["preset"])
    except UserError as exc:
        raise UserError(f"{printable(out / MANIFEST)}: arguments: {exc}") from None
    runs, _ = _load_runs(out, args["models"], args["tasks"], args["seeds"], args["preset"], args["overrides"])
    todo = _observe(runs)
    _print_plan(runs, todo, out, args["models"], args["tasks"], args["seeds"], args["preset"])
    return 0


# --- validation --------------------------------------------------------------------------------

def _check_names(models: list[str], tasks: list[str], seeds: list[int]) -> None:
    """Registered model and task names (each a plain name, never a path), seeds in numpy's range,
    at most MAX_RUNS runs."""
    from reasonbench.config import registry
    from reasonbench.config.resolve import SEED_MAX, check_name

    for option, values in (("--models", models), ("--tasks", tasks), ("--seeds", seeds)):
        if not values:
            raise UserError(f"{option}: give at least one")
    for kind, names in (("model", models), ("task", tasks)):
        for name in names:
            if not isinstance(name, str):
                raise UserError(f"--{kind}s: {printable(repr(name), 80)} is not a name")
            check_name(f"--{kind}s", name)
            registry.check(kind, name)
    if any(isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX for seed in seeds):
        bad = next(s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX)
        raise UserError(f"--seeds: must be integers in 0..{SEED_MAX} (numpy's seed range), got {printable(bad, 40)}")
    if len(models) * len(tasks) * len(seeds) > MAX_RUNS:
        raise UserError(f"{len(models)} models x {len(tasks)} tasks x {len(seeds)} seeds: more than {MAX_RUNS:,} runs "
                        "in one sweep")


def _resolve_all(models: list[str], tasks: list[str], preset: str, overrides: list[str]) -> list[Any]:
    """Each (model, task)'s resolved config: a missing preset or a bad override stops the sweep
    here, naming the run, instead of in one of its runs hours later."""
    from reasonbench.config import resolve as config

    for option in overrides:
        if option.split("=", 1)[0] in ("--model.name", "--task.name"):
            raise UserError(f"{option.split('=', 1)[0]}: choose models and tasks with --models and --tasks")
    resolved = []
    for model in models:
        for task in tasks:
            try:
                cfg, _ = config.resolve(["--model", model, "--task", task, "--preset", preset, *overrides],
                                        prog="reasonbench sweep")
            except UserError as exc:
                raise UserError(f"{model}/{task}/{preset}: {exc}") from None
            # a sweep makes board rows: each model on its own settings, never silently on its defaults
            if config.model_preset_file(model, task, preset, cfg.model_cls) is None:
                raise UserError(f"{model}/{task}/{preset}: no preset '{preset}' for model '{model}' on task '{task}' "
                                "(a sweep runs models on their own presets; reasonbench run runs one on its defaults)")
            resolved.append(cfg)
    return resolved


def _check_slurm_options(slurm: SlurmOptions) -> None:
    if slurm.partition is not None and not re.fullmatch(r"[\w.-]+(,[\w.-]+)*", slurm.partition):
        raise UserError(f"--partition {slurm.partition!r}: expected a partition name (or a comma list)")
    if slurm.time is not None:
        slurm.time = _slurm_time(slurm.time)
    if slurm.cpus_per_task < 1:
        raise UserError(f"--cpus-per-task {slurm.cpus_per_task}: must be >= 1")
    if not re.fullmatch(r"\d+[KMGT]?", slurm.mem):
        raise UserError(f"--mem {slurm.mem!r}: expected SLURM's form, e.g. 8G or 16000M")


def _slurm_time(text: str) -> str:
    """SLURM's own forms (minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S) as they are; a duration
    with a unit (90m, 4h, 1.5d) converted."""
    if re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", text):
        return text
    if re.fullmatch(r"\d+(\.\d+)?[smhd]", text):
        from reasonbench.config.resolve import parse_duration

        return _format_minutes(parse_duration(text, "--time") / 60)
    raise UserError(f"--time {text!r}: expected SLURM's form (minutes, HH:MM:SS, D-HH:MM) "
                    "or a duration such as 90m, 4h")


def _format_minutes(minutes: float) -> str:
    total = max(1, math.ceil(minutes))
    days, rest = divmod(total, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


# --- runs and the manifest ---------------------------------------------------------------------

def _load_runs(out: Path, models: list[str], tasks: list[str], seeds: list[int], preset: str,
               overrides: list[str]) -> tuple[list[Run], list[dict[str, Any]]]:
    """The sweep's runs, with what the previous manifest observed (status, SLURM job)."""
    previous = _read_manifest(out / MANIFEST) or {"runs": [], "submissions": []}
    before = {(r["model"], r["task"], r["preset"], r["seed"]): r for r in previous["runs"]}
    runs = []
    for model in models:
        for task in tasks:
            for seed in seeds:
                command = [sys.executable, "-m", "reasonbench", "run", "--model", model, "--task", task,
                           "--preset", preset, "--seed", str(seed), "--out", str(out), *overrides, "--resume"]
                run = Run(model, task, preset, seed, command, str(record_path(out, model, task, preset, seed)),
                          str(out / "logs" / f"{model}.{task}.{preset}.seed{seed}.log"))
                old = before.get((model, task, preset, seed))
                if old is not None:
                    for key in ("status", "exit_code", "slurm_job", "started", "finished"):
                        setattr(run, key, old.get(key))
                runs.append(run)
    return runs, list(previous["submissions"])


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path`` (None when there is none), read as untrusted and validated by
    ``MANIFEST_SCHEMA``: a one-line UserError naming the file and the first problem otherwise."""
    if not (path.exists() or path.is_symlink()):
        return None
    where = f"{printable(path)}: sweep manifest"
    data = load_json(path, where)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{printable(path)}: not a reasonbench sweep manifest")
    problem = schema_error(data, MANIFEST_SCHEMA, where)
    if problem:
        raise UserError(problem)
    return data


def _manifest_writer(out: Path, arguments: dict[str, Any], runs: list[Run],
                     submissions: list[dict[str, Any]]) -> Callable[[], None]:
    """A function writing the manifest as it is now (atomically: a reader never sees half of it)."""
    created = (_read_manifest(out / MANIFEST) or {}).get("created", _now())

    def save() -> None:
        data = {"format": MANIFEST_FORMAT, "version": 1, "created": created, "updated": _now(),
                "arguments": arguments, "submissions": submissions,
                "runs": [{"name": r.name, **asdict(r)} for r in runs]}
        write_atomic(out / MANIFEST, json.dumps(data, indent=2) + "\n")

    return save


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One sweep at a time per folder: two would launch the same runs twice."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another reasonbench sweep is working in {out}; wait for it to end") from None
        yield
    finally:
        os.close(fd)


def _record_status(run: Run) -> str | None:
    """'completed' or 'diverged' for a valid record of a finished run; None otherwise."""
    path = Path(run.record)
    if not path.is_file():
        return None
    try:
        found = read_record(path).get("status")
    except UserError:  # a broken record is no finished run; its rerun's log says why
        return None
    return found if found in FINISHED else None


def _observe(runs: list[Run], queue: dict[str, str] | None = None) -> list[Run]:
    """Refresh every run's status from its record and the SLURM queue (``_slurm_queue()``,
    looked up unless given); returns the runs to do."""
    if queue is None:
        queue = _slurm_queue() if any(r.slurm_job for r in runs) else {}
    gone = {r.name for r in runs if r.slurm_job and r.slurm_job not in queue and r.status in ("pending", "running")}
    ended = _slurm_ended({r.slurm_job.split("_")[0] for r in runs if r.name in gone})
    todo = []
    for run in runs:
        if run.name in gone:  # its task ended since last looked at; None if slurmctld forgot it already
            run.exit_code = ended.get(run.slurm_job)
        finished = _record_status(run)
        if finished:
            run.status = finished
        elif run.slurm_job in queue:
            run.status = queue[run.slurm_job]
        else:
            if run.name in gone:  # left the queue without a record
                run.status = "failed"
            elif run.status in FINISHED + ("running",):  # record deleted, or a local sweep that was killed
                run.status = "pending"
            todo.append(run)
    return todo


def _print_plan(runs: list[Run], todo: list[Run], out: Path, models: list[str], tasks: list[str],
                seeds: list[int], preset: str) -> None:
    finished = sum(r.status in FINISHED for r in runs)
    queued = len(runs) - finished - len(todo)
    shape = " x ".join(f"{len(v)} {k}{'s' * (len(v) != 1)}" for k, v in (("model", models), ("task", tasks),
                                                                           ("seed", seeds)))
    print(f"sweep {printable(out / MANIFEST)}: {len(runs)} runs ({shape}, preset {preset}): {finished} finished, "
          f"{queued} in SLURM, {len(todo)} to run")
    for run in runs:
        print(f"  {run.status:11s} {run.name}{_detail(run)}")


def _detail(run: Run) -> str:
    parts = []
    if run.status == "failed":
        parts.append("exit code unknown" if run.exit_code is None else f"exit {run.exit_code}")
        parts.append(f"log {printable(run.log)}")
    if run.slurm_job and run.status in ("pending", "running"):
        parts.append(f"SLURM job {run.slurm_job}")
    return f"  ({'; '.join(parts)})" if parts else ""


def _report(runs: list[Run]) -> int:
    counts = {s: sum(r.status == s for r in runs) for s in dict.fromkeys(r.status for r in runs)}
    print(f"sweep: {len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    unfinished = [r for r in runs if r.status not in FINISHED]
    for run in unfinished:
        print(f"reasonbench sweep: {run.status}: {run.name}{_detail(run)}", file=sys.stderr)
    return 1 if unfinished else 0


# --- local executor ----------------------------------------------------------------------------

def _run_local(todo: list[Run], parallel: int, save: Callable[[], None]) -> None:
    """At most ``parallel`` runs at once, each a subprocess writing to its log. Ctrl-C stops
    them (the runs save no partial record) and leaves them 'interrupted' in the manifest."""
    waiting, running = list(todo), {}
    env = dict(os.environ)
    # N runs side by side would each start one torch thread per core: share the cores instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // min(parallel, len(todo)))))
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                run = waiting.pop(0)
                running[_start_local(run, env)] = run
                save()
            time.sleep(LOCAL_POLL_SECONDS)
            for proc in [p for p in running if p.poll() is not None]:
                run = running.pop(proc)
                run.exit_code, run.finished = proc.returncode, _now()
                run.status = (_record_status(run) if proc.returncode == 0 else None) or "failed"
                print(f"{run.status:9s} {run.name}{_detail(run)}", flush=True)
                save()
    except KeyboardInterrupt:
        _stop_local(running)
        for proc, run in running.items():
            run.status, run.exit_code, run.finished = _record_status(run) or "interrupted", proc.returncode, _now()
        save()
        raise KeyboardInterrupt(f"{len(running)} runs stopped; the same command continues the sweep") from None


def _start_local(run: Run, env: dict[str, str]) -> subprocess.Popen:
    log = Path(run.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    run.status, run.exit_code, run.slurm_job, run.started, run.finished = "running", None, None, _now(), None
    print(f"start     {run.name}  (log {printable(log)})", flush=True)
    with open(log, "a") as handle:
        handle.write(f"== reasonbench sweep: attempt at {run.started}: {shlex.join(run.command)}\n")
        handle.flush()
        # a session of its own: a terminal's Ctrl-C reaches the sweep, which stops the runs in order
        return subprocess.Popen(run.command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def _stop_local(running: dict[subprocess.Popen, Run]) -> None:
    for proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Lightning stops training; the run writes no record
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- SLURM executor ----------------------------------------------------------------------------

def _device_count(devices: Any) -> int:
    """Processes a run starts for Lightning's ``devices``: a count, a list or '0,1' of device
    ids; 'auto' and -1 (all) count as one (give ``--trainer.devices N`` for more)."""
    if isinstance(devices, list):
        return max(1, len(devices))
    text = str(devices).strip()
    if "," in text:
        return max(1, len([d for d in text.split(",") if d.strip()]))
    return int(text) if text.isdigit() and int(text) > 0 else 1


def _slurm_resources(resolved: list[Any], slurm: SlurmOptions) -> dict[str, Any]:
    """One array shares one shape: the largest any of its runs needs."""
    from reasonbench.config.resolve import parse_duration

    tasks, gpus, budget_minutes = 1, 0, 0.0
    for cfg in resolved:
        count = _device_count(cfg.trainer_args.get("devices", "auto"))
        tasks = max(tasks, count)
        if str(cfg.trainer_args.get("accelerator") or "auto") in ("gpu", "cuda"):
            gpus = max(gpus, count)
        if cfg.budget:  # a device-time budget: wall time is that over the devices, plus the rest of the run
            factor, extra = BUDGET_MARGIN
            budget_minutes = max(budget_minutes, (parse_duration(cfg.budget) / count * factor + extra) / 60)
    limit = slurm.time or (_format_minutes(budget_minutes) if budget_minutes else DEFAULT_TIME)
    return {"tasks": tasks, "gpus": gpus, "time": limit, "cpus_per_task": slurm.cpus_per_task,
            "mem": slurm.mem, "partition": slurm.partition}


def _write_sbatch(out: Path, todo: list[Run], res: dict[str, Any], parallel: int | None) -> tuple[Path, Path]:
    """``out/slurm/sweep_<time>.sbatch``, one array task per run, and beside it the commands
    file: line i+1 is array task i's log file and command."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    script, commands = out / "slurm" / f"sweep_{stamp}.sbatch", out / "slurm" / f"sweep_{stamp}.commands"
    (out / "logs" / "slurm").mkdir(parents=True, exist_ok=True)
    write_atomic(commands, "".join(shlex.join([r.log, *r.command]) + "\n" for r in todo))
    throttle = f"%{parallel}" if parallel else ""
    lines = ["#!/bin/bash",
             f"# reasonbench sweep {out / MANIFEST}: {len(todo)} runs, one array task each.",
             f"# Array task i runs line i+1 of {commands.name}: its log file, then its command.",
             "#SBATCH --job-name=reasonbench-sweep",
             f"#SBATCH --array=0-{len(todo) - 1}{throttle}",
             # preemption and Lightning's requeue on USR1 both start the task again: --resume continues it
             "#SBATCH --requeue",
             f"#SBATCH --signal=B:USR1@{SIGNAL_LEAD_SECONDS}",
             f"#SBATCH --ntasks-per-node={res['tasks']}" if res["tasks"] > 1 else "#SBATCH --ntasks=1",
             "#SBATCH --nodes=1",
             f"#SBATCH --cpus-per-task={res['cpus_per_task']}",
             f"#SBATCH --mem={res['mem']}",
             f"#SBATCH --time={res['time']}",
             *([f"#SBATCH --gres=gpu:{res['gpus']}"] if res["gpus"] else []),
             *([f"#SBATCH --partition={res['partition']}"] if res["partition"] else []),
             f"#SBATCH --chdir={Path.cwd()}",
             f"#SBATCH --output={out / 'logs' / 'slurm' / '%A_%a.out'}",
             "set -euo pipefail",
             f'line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(commands))})',
             'eval "set -- $line"',
             'log=$1; shift',
             'export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}',
             'echo "== reasonbench sweep: SLURM job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}, restart '
             '${SLURM_RESTART_COUNT:-0}, on $(hostname) at $(date -Is): $*" >> "$log"',
             "# exec: the run becomes the batch step's process, so USR1 reaches Lightning's handler, which",
             "# checkpoints and requeues this task; the requeued task runs the same --resume command",
             # several devices: one process per device, started by srun (which forwards USR1)
             'exec srun "$@" >> "$log" 2>&1' if res["tasks"] > 1 else 'exec "$@" >> "$log" 2>&1']
    write_atomic(script, "\n".join(lines) + "\n")
    return script, commands


def _submit(script: Path, commands: Path, todo: list[Run]) -> dict[str, Any]:
    result = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:  # nothing was queued: the script is no submission
        script.unlink(missing_ok=True)
        commands.unlink(missing_ok=True)
        raise UserError(f"sbatch {script.name}: {' '.join(result.stderr.split()) or f'exit {result.returncode}'}")
    job_id = result.stdout.strip().split(";")[0]
    for index, run in enumerate(todo):
        run.status, run.exit_code, run.slurm_job = "pending", None, f"{job_id}_{index}"
        run.started = run.finished = None
    return {"job_id": job_id, "script": str(script), "runs": [r.name for r in todo], "submitted": _now()}


def _slurm_queue() -> dict[str, str]:
    """Array tasks in the queue -> 'pending' or 'running' (a requeued task is pending again)."""
    if shutil.which("squeue") is None:
        return {}
    result = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T"], capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise UserError(f"squeue: {' '.join(result.stderr.split()) or f'exit {result.returncode}'}")
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition(" ")
        states[job] = "running" if state in ("RUNNING", "COMPLETING") else "pending"
    return states


def _slurm_ended(job_ids: set[str]) -> dict[str, int]:
    """Exit codes of ended array tasks that slurmctld still remembers (``MinJobAge``)."""
    codes: dict[str, int] = {}
    for job_id in sorted(job_ids) if shutil.which("scontrol") else []:
        result = subprocess.run(["scontrol", "--oneliner", "show", "job", job_id], capture_output=True, text=True,
                                timeout=120)
        for line in result.stdout.splitlines() if result.returncode == 0 else []:
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if fields.get("ArrayTaskId", "").isdigit() and "ExitCode" in fields:
                code, _, sig = fields["ExitCode"].partition(":")
                codes[f"{job_id}_{fields['ArrayTaskId']}"] = 128 + int(sig) if sig.strip("0") else int(code)
    return codes


def _wait_slurm(runs: list[Run], save: Callable[[], None], out: Path) -> None:
    """Until none of the sweep's array tasks is in the queue any more (a requeued one is in it
    again), printing each run as it ends."""
    watched = [r for r in runs if r.slurm_job and r.status in ("pending", "running")]
    try:
        while True:
            queue = _slurm_queue()
            before = [(r.status, r.exit_code) for r in watched]
            _observe(watched, queue)
            for run, (status, _) in zip(watched, before):
                if run.status != status and run.status not in ("pending", "running"):
                    print(f"{run.status:9s} {run.name}{_detail(run)}", flush=True)
            if before != [(r.status, r.exit_code) for r in watched]:
                save()
            if not any(r.slurm_job in queue for r in watched):
                return
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        save()
        raise KeyboardInterrupt(f"stopped waiting; the jobs stay in SLURM (reasonbench sweep --status --out {out} "
                                "shows them)") from None


# --- command line ------------------------------------------------------------------------------

def _split(values: list[str]) -> list[str]:
    """'a,b' and repeated options -> ['a', 'b'], duplicates dropped."""
    return list(dict.fromkeys(v.strip() for value in values for v in value.split(",") if v.strip()))


def _seeds(values: list[str]) -> list[int]:
    """'0,1,2' and ranges '0-4' -> seeds; more than MAX_SEEDS is refused before any list is built."""
    seeds: dict[int, None] = {}
    for item in _split(values):
        match = re.fullmatch(r"(\d{1,20})(?:-(\d{1,20}))?", item)
        if not match or (match[2] is not None and int(match[2]) < int(match[1])):
            raise UserError(f"--seeds {printable(item, 80)!r}: expected seeds such as 0,1,2 or a range 0-4")
        first, last = int(match[1]), int(match[2] or match[1])
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise UserError(f"--seeds {printable(item, 80)}: more than {MAX_SEEDS:,} seeds in one sweep (the cap)")
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


def command(argv: list[str]) -> int:
    """``reasonbench sweep ...``: parse, then :func:`sweep` (or :func:`status`)."""
    # run options pass through to every run (each resolved before anything starts)
    own, overrides = split_passthrough(argv, PASSTHROUGH)
    parser = command_parser("reasonbench sweep",
                            description="Runs every model x task x seed not finished yet. Run options "
                                        f"({', '.join(p + ('*' if p.endswith('.') else '') for p in PASSTHROUGH)}) "
                                        "go to every run.")
    parser.add_argument("--models", type=str, action="append", default=[], help="model names: a,b or repeated")
    parser.add_argument("--tasks", type=str, action="append", default=[], help="task names: a,b or repeated")
    parser.add_argument("--seeds", type=str, action="append", default=[], help="seeds: 0,1,2 or a range 0-4")
    parser.add_argument("--preset", type=str, default=default_preset(), help="preset name (the task's and the model's presets/ folders)")
    parser.add_argument("--out", type=str, default="results", help="folder of records, logs and sweep.json")
    parser.add_argument("--executor", type=str, default="local", help="local (here) or slurm (one job array)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="local: runs at once (default 1); slurm: array tasks at once (default no limit)")
    parser.add_argument("--partition", type=str | None, default=None, help="slurm: partition")
    parser.add_argument("--time", type=str | None, default=None,
                        help=f"slurm: limit per attempt, e.g. 4:00:00 or 90m (default from the preset's budget, "
                             f"else {DEFAULT_TIME}; a run past it is checkpointed and requeued)")
    parser.add_argument("--cpus-per-task", type=int, default=SlurmOptions.cpus_per_task,
                        help="slurm: CPUs per process")
    parser.add_argument("--mem", type=str, default=SlurmOptions.mem, help="slurm: memory per node, e.g. 8G")
    parser.add_argument("--wait", action="store_true", help="slurm: wait for the array and report")
    parser.add_argument("--dry-run", action="store_true", help="write the manifest (and sbatch script); run nothing")
    parser.add_argument("--status", action="store_true", help="print the sweep in --out; run and write nothing")
    args = parse(parser, own)
    if args.status:
        if args.models or args.tasks or args.seeds or overrides:
            raise UserError("--status shows the sweep in --out as its manifest describes it: give only --out")
        return status(args.out)
    slurm_only = {"--partition": args.partition, "--time": args.time, "--wait": args.wait or None,
                  "--cpus-per-task": args.cpus_per_task if args.cpus_per_task != SlurmOptions.cpus_per_task else None,
                  "--mem": args.mem if args.mem != SlurmOptions.mem else None}
    given = [k for k, v in slurm_only.items() if v is not None]
    if args.executor == "local" and given:
        raise UserError(f"{given[0]} is for --executor slurm")
    return sweep(_split(args.models), _split(args.tasks), _seeds(args.seeds), preset=args.preset, out=args.out,
                 executor=args.executor, parallel=args.parallel, overrides=overrides,
                 slurm=SlurmOptions(partition=args.partition, time=args.time, cpus_per_task=args.cpus_per_task,
                                    mem=args.mem, wait=args.wait),
                 dry_run=args.dry_run)
