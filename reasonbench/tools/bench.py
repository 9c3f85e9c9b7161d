"""``reasonbench bench``: training and evaluation throughput, peak memory and model-FLOPs
utilisation of every registered model on a preset (``mini`` by default).

For each (model, task) the model is built from its preset exactly as ``reasonbench run`` builds
it and trained by a Lightning ``Trainer`` for a few steps, so a timed step is a real training
step: the module's optimizer and schedule, the per-puzzle sign-SGD, EMA, gradient clipping and
whatever hooks the model has (a curriculum, a balancer cadence). Per step:

* warm-up steps first (allocation, kernel choice, compilation), untimed;
* then the timed steps. The first step of every cost phase (``cost_phase()``: a curriculum's
  depth, a balancer's cadence) runs under the FLOP counter, untimed: a warm-up step where it
  can, else (a phase first seen later, or ``--compile``) a step with the clock paused;
* throughput: examples (batch size x batches) and optimizer steps per second; for the recursive
  models one optimizer step is one supervision segment of every slot of the batch.

The fast path (``reasonbench.model.fastpath``: fused blocks, on by default on CUDA; ``--fast-path`` /
``--no-fast-path`` choose) and ``--compile`` (regional: only the block every recursion repeats,
static shapes; inductor's kernel cache is reused by later runs) are recorded in each row.
``--task.NAME VALUE`` options reach every row's task, as in ``reasonbench run`` (e.g. the recipe
of a data cache built beforehand).

Evaluation: ``model(batch)`` under ``torch.inference_mode()`` on test batches already on the
device (all ``halt_max_steps`` segments for the recursive models). FLOPs: ``measure``'s
counters (training: per step, averaged over the cost phases of the timed steps; evaluation:
per example, one example at a time, untrained weights). MFU (GPU only): FLOPs per second over
the device's dense peak (bf16 with ``--bf16``, else fp32), from a table of known devices.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` (training and evaluation apart). On
the CPU every row runs in a fresh Python process (``--isolate``, the default there), and the
figure is the row's peak resident set size above the RSS after start-up (interpreter, torch,
Lightning; the peak is reset there, Linux's ``/proc/self/clear_refs``); without isolation only
the whole process's peak RSS so far is known.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from reasonbench.config.commandline import command_parser, parse, split_passthrough
from reasonbench.util.errors import UserError

FORMAT = "reasonbench-bench"
VERSION = 1
_RESULT_MARK = "@@reasonbench-bench-row@@"

# Dense peak FLOP/s (no sparsity) per device: (substring of torch.cuda.get_device_name, bf16,
# fp32). fp32 is the CUDA-core figure: PyTorch keeps fp32 matmuls in full precision unless
# TF32 is allowed. First match wins, so the more specific names come first.
PEAK_FLOPS: list[tuple[str, float, float]] = [
    ("GH200", 989.4e12, 66.9e12),
    ("H200", 989.4e12, 66.9e12),       # H200 SXM
    ("H100 NVL", 835.0e12, 60.0e12),
    ("H100 PCIe", 756.0e12, 51.2e12),
    ("H100", 989.4e12, 66.9e12),       # H100 SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0e12, 19.5e12),       # SXM and PCIe, 40 and 80 GB
]


def peak_flops(device_name: str, bf16: bool) -> float | None:
    """The device's dense peak FLOP/s for the compute dtype, or None if not in the table."""
    for key, bf16_peak, fp32_peak in PEAK_FLOPS:
        if key.lower() in device_name.lower():
            return bf16_peak if bf16 else fp32_peak
    return None


# --- options ---------------------------------------------------------------------------------
def _names(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [n for v in values for n in v.split(",") if n]


def _parser() -> Any:
    from jsonargparse import ActionYesNo

    parser = command_parser("reasonbench bench", "Training and evaluation throughput, peak memory, FLOPs and MFU "
                            "of every model. Options --task.KEY VALUE go to every row's task.")
    parser.add_argument("--models", nargs="+", help="models (default: every registered model with the preset)")
    parser.add_argument("--tasks", nargs="+", help="tasks (default: sudoku maze)")
    parser.add_argument("--preset", default="mini", help="preset of every model and task (default: mini)")
    parser.add_argument("--quick", action="store_true",
                        help="a short pass over the default matrix: 1 warm-up + 2 timed training steps, "
                             "1 evaluation batch of at most 64 without warm-up (unless compiling), FLOPs of 1 example")
    parser.add_argument("--steps", type=int, help="timed training steps (default 20; --quick 2)")
    parser.add_argument("--warmup", type=int, help="untimed training steps first (default 3; --quick 1)")
    parser.add_argument("--eval-batches", type=int, help="timed evaluation batches (default 3; --quick 1)")
    parser.add_argument("--eval-batch-size", type=int,
                        help="evaluation batch size (default: the preset's; --quick: at most 64)")
    parser.add_argument("--flops-examples", type=int,
                        help="test examples run one at a time under the FLOP counter (default 8; --quick 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (Lightning's bf16-mixed)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the block every recursion repeats (regional; static shapes; else "
                             "the model's segment or forward)")
    parser.add_argument("--fast-path", action=ActionYesNo(yes_prefix="", no_prefix="no-"), default=None,
                        help="fused blocks (torch's RMSNorm kernel, aligned GEMMs for the MLP mixer; default: on CUDA)")
    parser.add_argument("--isolate", action=ActionYesNo(yes_prefix="", no_prefix="no-"), default=None,
                        help="each row in a fresh process, for a clean peak memory (default: on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench.json", help="JSON file to write (default bench.json)")
    return parser


def parse_args(argv: list[str]) -> Any:
    own, task_options = split_passthrough(argv, ("--task.",))
    args = parse(_parser(), own)
    args.task_options = task_options  # handed to every row's task as `reasonbench run` takes them
    defaults = dict(steps=(2, 20), warmup=(1, 3), eval_batches=(1, 3), flops_examples=(1, 8))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name, low in (("steps", 1), ("warmup", 0), ("eval_batches", 1), ("flops_examples", 1),
                      ("eval_batch_size", 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise UserError(f"reasonbench bench: --{name.replace('_', '-')} must be >= {low}, got {value}")
    return args


# --- one row: model x task -------------------------------------------------------------------
def _compile(model: Any) -> str:
    """torch.compile in place, static shapes (``dynamic=False``: one graph per batch shape,
    halting never changes them): the block every recursion repeats where the model has one
    (``fastpath.compile_blocks``: seconds, not minutes), else the model's unit of work, one
    supervision segment for the recursive models or ``forward``. Returns what was compiled."""
    import torch

    from reasonbench.model.fastpath import compile_blocks, configure_compile_cache
    from reasonbench.model.recursive import RecursiveReasoningModule

    blocks = compile_blocks(model)
    if blocks:
        return "blocks: " + ", ".join(blocks)
    configure_compile_cache()
    name = "segment" if isinstance(model, RecursiveReasoningModule) else "forward"
    setattr(model, name, torch.compile(getattr(model, name), dynamic=False))
    return name


def _rss_peak() -> int:
    import torch

    from reasonbench.record.measure import peak_memory_bytes

    return peak_memory_bytes(torch.device("cpu"))


def _proc_status_bytes(field: str) -> int | None:
    """A ``/proc/self/status`` figure (VmRSS, VmHWM) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_rss_peak() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return _proc_status_bytes("VmHWM") is not None


class _MemoryStart(NamedTuple):
    """Where a row's peak memory is measured from (``_memory_phase``)."""

    peak_reset: bool  # the process's peak RSS was reset to its RSS at the row's start (Linux)
    rss: int | None  # that RSS, when reset
    peak: int  # the process's peak RSS at the row's start


def _memory_start(spec: dict[str, Any]) -> _MemoryStart:
    # in a fresh process: the peak RSS from here on, against the RSS here (imports done)
    peak_reset = bool(spec.get("isolated")) and _reset_rss_peak()
    started_rss = _proc_status_bytes("VmRSS") if peak_reset else None
    return _MemoryStart(peak_reset, started_rss, _rss_peak())


def _row_config(spec: dict[str, Any]) -> Any:
    """The row's configuration, resolved from its preset as ``reasonbench run`` resolves it."""
    from reasonbench.config import resolve as config

    argv = ["--model", spec["model"], "--task", spec["task"], "--preset", spec["preset"], "--seed", str(spec["seed"])]
    argv += spec.get("task_options") or []
    if spec.get("eval_batch_size"):
        argv += ["--task.eval_batch_size", str(spec["eval_batch_size"])]
    cfg, _ = config.resolve(argv, prog="reasonbench bench")
    cap = spec.get("eval_batch_cap")
    if cap and not spec.get("eval_batch_size") and cfg.task_args.get("eval_batch_size", 0) > cap:
        cfg.task_args["eval_batch_size"] = cap
    return cfg


def _build(spec: dict[str, Any], cfg: Any, device: Any) -> tuple[Any, Any]:
    """The row's task and model, built as ``reasonbench run`` builds them."""
    import lightning as L
    import torch

    from reasonbench.model.fastpath import set_fast_path
    from reasonbench.execution.build import build_model, build_task

    if spec["compile"]:
        torch._dynamo.reset()  # a fresh cache per row: rows share code objects (segment, forward)
    if device.type == "cuda":  # what earlier rows of this process left behind is freed first
        gc.collect()
        torch.cuda.empty_cache()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = build_task(cfg)
    model = build_model(cfg, task)
    if spec.get("fast_path") is not None:  # else the device's default, applied when the fit starts
        set_fast_path(model, spec["fast_path"])
    return task, model


def _row_head(spec: dict[str, Any], task: Any, model: Any, device: Any) -> tuple[dict[str, Any], float | None]:
    """The row's first fields (what ran, its size and settings) and the device's peak FLOP/s."""
    from reasonbench.record.measure import count_parameters, device_name

    params, params_extra = count_parameters(model)
    name = device_name(device)
    peak = peak_flops(name, spec["bf16"]) if device.type == "cuda" else None
    row: dict[str, Any] = {
        "model": spec["model"], "task": spec["task"], "preset": spec["preset"], "status": "ok",
        "params": params, "params_extra": params_extra,
        "batch_size": task.batch_size, "eval_batch_size": task.eval_batch_size,
        "dtype": "bf16-mixed" if spec["bf16"] else "fp32", "compiled": None, "device": name,
    }
    return row, peak


def _train_phase(spec: dict[str, Any], cfg: Any, task: Any, model: Any, device: Any,
                 peak: float | None) -> tuple[dict[str, Any], int | None]:
    """Training: a real fit of warm-up + timed steps (+ counted steps, + the closing batch).
    Returns the row's training figures and the fit's peak CUDA memory (None off CUDA)."""
    import lightning as L
    import torch

    from reasonbench.tools.bench_clock import StepClock

    clock = StepClock(spec["warmup"], spec["steps"], device, count_in_warmup=not spec["compile"])
    keep = {k: v for k, v in cfg.trainer_args.items()
            if k in ("gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches") and v is not None}
    # the schedule's length (the LR schedule, a curriculum's progress): the planned batches and
    # a few more for FLOP-counted steps; the clock stops the fit after the timed steps
    max_steps = spec["warmup"] + spec["steps"] + 3
    trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed" if spec["bf16"] else "32-true", max_steps=max_steps, max_epochs=-1,
                        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock], **keep)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(model, datamodule=task)
    train_peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    accumulate = int(keep.get("accumulate_grad_batches", 1))
    return _train_figures(spec, clock, accumulate, peak), train_peak


def _train_figures(spec: dict[str, Any], clock: Any, accumulate: int, peak: float | None) -> dict[str, Any]:
    """The row's ``train`` entry from the step clock of the fit."""
    seconds = clock.seconds
    flops_step = clock.flops_per_step
    steps_per_s = clock.optimizer_steps / seconds if seconds > 0 else None
    batches_per_s = clock.timed_batches / seconds if seconds > 0 else None
    compile_train = None
    if spec["compile"] and batches_per_s and spec["warmup"]:
        compile_train = max(0.0, clock.warmup_seconds - spec["warmup"] / batches_per_s)
    return {
        "warmup_steps": spec["warmup"], "timed_batches": clock.timed_batches,
        "optimizer_steps": clock.optimizer_steps, "accumulate_grad_batches": accumulate,
        "seconds": round(seconds, 4),
        "examples_per_s": clock.examples / seconds if seconds > 0 else None,
        "steps_per_s": steps_per_s,
        "flops_per_step": flops_step,
        "flop_phases": {str(p): v for p, v in clock.flops.items()},
        "mfu": (flops_step * batches_per_s / peak) if peak and flops_step and batches_per_s else None,
        "warmup_seconds": round(clock.warmup_seconds, 4),
        "compile_seconds": None if compile_train is None else round(compile_train, 3),
    }


def _eval_batches(spec: dict[str, Any], task: Any, device: Any) -> tuple[list[dict], dict[tuple, dict]]:
    """The timed evaluation batches, already on the device (the test split's first batches,
    repeated if few), and one batch of each shape to run first (each is a graph when compiled)."""
    loader = task.test_dataloader()  # pinned when the trainer ran on a GPU
    source = list(itertools.islice(loader, spec["eval_batches"]))
    batches = [{k: v.to(device, non_blocking=True) for k, v in b.items()}
               for b in itertools.islice(itertools.cycle(source), spec["eval_batches"])]
    shapes: dict[tuple, dict] = {}
    if spec.get("eval_warmup", True):
        for b in batches:
            shapes.setdefault(tuple(b["inputs"].shape), b)
    return batches, shapes


def _eval_phase(spec: dict[str, Any], task: Any, model: Any, device: Any, eval_flops: Any,
                peak: float | None) -> dict[str, Any]:
    """Evaluation: ``model(batch)`` under inference_mode on batches already on the device, one
    batch of each shape first (untimed apart). Returns the row's ``eval`` entry."""
    import torch

    from reasonbench.tools.bench_clock import sync_device

    model.to(device)  # Lightning's teardown moves the model back to the CPU
    model.eval()
    batches, shapes = _eval_batches(spec, task, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec["bf16"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode(), autocast:
        sync_device(device)
        t0 = time.perf_counter()
        for b in shapes.values():
            model(b)
        sync_device(device)
        eval_warmup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in batches:
            model(b)
        sync_device(device)
        eval_seconds = time.perf_counter() - t0
    examples = sum(int(b["inputs"].shape[0]) for b in batches)
    eval_rate = examples / eval_seconds if eval_seconds > 0 else None
    compile_eval = None
    if spec["compile"] and eval_rate and shapes:
        compile_eval = max(0.0, eval_warmup - sum(b["inputs"].shape[0] for b in shapes.values()) / eval_rate)
    return {
        "batches": len(batches), "examples": examples, "seconds": round(eval_seconds, 4),
        "examples_per_s": eval_rate,
        "flops_per_example": eval_flops.mean, "flops_examples": eval_flops.examples,
        "mfu": (eval_flops.mean * eval_rate / peak) if peak and eval_rate else None,
        "warmup_batches": len(shapes), "warmup_seconds": round(eval_warmup, 4),
        "compile_seconds": None if compile_eval is None else round(compile_eval, 3),
    }


def _memory_phase(spec: dict[str, Any], device: Any, start: _MemoryStart, train_peak: int | None) -> dict[str, Any]:
    """The row's ``memory`` entry: CUDA's peak allocation of training and evaluation, else the
    peak RSS (a fresh process's above its start, or this process's so far)."""
    import torch

    if device.type == "cuda":
        eval_peak = int(torch.cuda.max_memory_allocated(device))
        return {"peak_bytes": train_peak, "train_peak_bytes": train_peak, "eval_peak_bytes": eval_peak,
                "kind": "cuda_max_memory_allocated"}
    if start.peak_reset:
        peak_rss = _proc_status_bytes("VmHWM")
        return {"peak_bytes": peak_rss - start.rss, "peak_rss_bytes": peak_rss,
                "start_rss_bytes": start.rss, "kind": "row_peak_rss_above_start"}
    if spec.get("isolated"):  # no resettable peak (not Linux): above the start-up peak
        return {"peak_bytes": _rss_peak() - start.peak, "peak_rss_bytes": _rss_peak(),
                "start_rss_bytes": start.peak, "kind": "row_peak_rss_above_startup_peak"}
    return {"peak_bytes": _rss_peak(), "kind": "process_peak_rss_so_far"}


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Benchmark one (model, task) in this process; returns the row of the JSON. The model and
    task are built from their presets, then the training, evaluation and memory phases run."""
    import torch

    from reasonbench.model.fastpath import fast_path_on
    from reasonbench.record.measure import forward_flops_per_example
    from reasonbench.execution.trainer import quiet_lightning
    from reasonbench.tools import bench_clock  # noqa: F401  (imported before the row's memory start)

    start = _memory_start(spec)
    quiet_lightning()
    device = torch.device(spec["device"])
    cfg = _row_config(spec)
    task, model = _build(spec, cfg, device)
    row, peak = _row_head(spec, task, model, device)
    # evaluation FLOPs per example, before compiling (the counter runs eagerly, untrained weights)
    model.to(device)
    eval_flops = forward_flops_per_example(model, task.splits["test"], spec["flops_examples"], device)
    if spec["compile"]:
        row["compiled"] = _compile(model)
    model.train()  # Lightning keeps the modes it finds; the FLOP count left the model in eval mode
    train, train_peak = _train_phase(spec, cfg, task, model, device, peak)
    row["fast_path"] = fast_path_on(model)
    if model.diverged:
        row["status"] = "diverged"
        row["error"] = model.diverged
    row["train"] = train
    row["eval"] = _eval_phase(spec, task, model, device, eval_flops, peak)
    row["memory"] = _memory_phase(spec, device, start, train_peak)
    row["peak_flops"] = peak
    if peak is None:
        row["mfu_note"] = ("no MFU on the CPU" if device.type != "cuda" else f"device '{row['device']}' not in "
                           "the peak-FLOP/s table (reasonbench.tools.bench.PEAK_FLOPS)")
    return row


# --- the matrix ----------------------------------------------------------------------------
def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # the child sees the same modules (and plugins added to sys.path) as this process
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _run_isolated(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "reasonbench.tools.bench", "--worker"], input=json.dumps(spec),
                          capture_output=True, text=True, env=_child_env())
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            result = json.loads(line[len(_RESULT_MARK):])
            if "user_error" in result:
                raise UserError(result["user_error"])
            return result
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"model": spec["model"], "task": spec["task"], "preset": spec["preset"], "status": "error",
            "error": f"worker process failed (exit status {proc.returncode}): {last}"}


def _row(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["isolated"]:
        return _run_isolated(spec)
    try:
        return run_row(spec)
    except UserError:
        raise
    except Exception as exc:  # one broken model must not stop the others
        return {"model": spec["model"], "task": spec["task"], "preset": spec["preset"], "status": "error",
                "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"}


def _worker() -> int:
    """Run one row from a JSON spec on stdin; print the row after a marker on stdout."""
    spec = json.loads(sys.stdin.read())
    # imported before the row's start-up memory is read, so that the row's figure leaves them out
    import lightning  # noqa: F401
    import torch  # noqa: F401

    from reasonbench.config import resolve as config
    from reasonbench.record import measure
    # and with it, every module a run loads
    from reasonbench.execution import execute  # noqa: F401

    try:
        result = run_row(spec)
    except UserError as exc:
        result = {"user_error": str(exc)}
    except Exception as exc:
        import traceback

        traceback.print_exc()
        result = {"model": spec["model"], "task": spec["task"], "preset": spec["preset"], "status": "error",
                  "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"}
    sys.stdout.write("\n" + _RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def plan(models: list[str] | None, tasks: list[str] | None, preset: str) -> tuple[list[tuple[str, str]], list[dict]]:
    """(model, task) pairs to run and those skipped (no preset) with the reason."""
    from reasonbench.config import resolve as config, registry

    for kind, names in (("model", models), ("task", tasks)):
        for n in names or []:
            registry.check(kind, n)
    models = models if models is not None else registry.list_models()
    tasks = tasks if tasks is not None else [t for t in ("sudoku", "maze") if t in registry.list_tasks()]
    pairs, skipped = [], []
    for task in tasks:
        for model in models:
            try:
                config.preset_files(model, task, preset, registry.get_model(model))
                if config.model_preset_file(model, task, preset, registry.get_model(model)) is None:
                    raise UserError(f"no preset '{preset}' for model '{model}' on task '{task}'")
            except UserError as exc:
                if "no preset" not in str(exc):
                    raise
                skipped.append({"model": model, "task": task, "reason": str(exc)})
                continue
            pairs.append((model, task))
    if not pairs:
        reasons = "; ".join(s["reason"] for s in skipped[:2])
        raise UserError(f"reasonbench bench: nothing to run with preset '{preset}' ({reasons})")
    return pairs, skipped


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["model", "task", "params", "train ex/s", "steps/s", "eval ex/s", "peak MB", "FLOPs/step", "MFU"]
    lines = []
    for r in rows:
        if r.get("status") == "error":
            lines.append([r["model"], r["task"], f"error: {r.get('error', '')}"])
            continue
        t, e, m = r["train"], r["eval"], r.get("memory") or {}
        mfu = t.get("mfu")
        lines.append([r["model"], r["task"], f"{r['params']:,}", _fmt(t["examples_per_s"]), _fmt(t["steps_per_s"], 2),
                      _fmt(e["examples_per_s"]), _fmt(m["peak_bytes"] / 2**20 if m.get("peak_bytes") is not None else None),
                      f"{t['flops_per_step']:.3g}" if t.get("flops_per_step") else "-",
                      f"{100 * mfu:.1f}%" if mfu is not None else "-"])
    full = [line for line in lines if len(line) == len(head)]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *full)]

    def fmt(line: list[str]) -> str:
        if len(line) != len(head):
            return f"{line[0].ljust(widths[0])}  {line[1].ljust(widths[1])}  {line[2]}"
        return "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths)))

    return "\n".join([fmt(head)] + [fmt(line) for line in lines])


def _spec(args: Any, model: str, task: str, device: str, isolate: bool) -> dict[str, Any]:
    """What ``run_row`` (here or in a worker process) needs to run one (model, task)."""
    return {"model": model, "task": task, "preset": args.preset, "device": device, "bf16": args.bf16,
            "compile": args.compile, "fast_path": args.fast_path, "task_options": args.task_options,
            "steps": args.steps, "warmup": args.warmup,
            "eval_batches": args.eval_batches, "eval_batch_size": args.eval_batch_size,
            "flops_examples": args.flops_examples, "seed": args.seed, "isolated": isolate,
            "eval_batch_cap": 64 if args.quick else None, "eval_warmup": args.compile or not args.quick}


def _timed_row(spec: dict[str, Any]) -> dict[str, Any]:
    """One row with its wall time, reported on stderr as it finishes."""
    t0 = time.perf_counter()
    row = _row(spec)
    row["wall_seconds"] = round(time.perf_counter() - t0, 2)
    print(f"  {spec['model']} / {spec['task']}: {row['status']} ({row['wall_seconds']:.1f} s)",
          file=sys.stderr, flush=True)
    return row


def _result(argv: list[str], args: Any, device: str, isolate: bool, rows: list[dict], skipped: list[dict],
            wall: float) -> dict[str, Any]:
    """The JSON written to ``--out``: the machine, the versions, the settings and the rows."""
    import torch

    from reasonbench.record import schema as rec
    from reasonbench.record.measure import cpu_name, device_name

    commit, dirty = rec.git_state()
    return {
        "format": FORMAT, "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["reasonbench", "bench", *argv]),
        "device": device_name(torch.device(device)), "device_type": device, "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "versions": rec.versions(), "git_commit": commit, "git_dirty": dirty,
        "settings": {"preset": args.preset, "quick": args.quick, "steps": args.steps, "warmup": args.warmup,
                     "eval_batches": args.eval_batches, "eval_batch_size": args.eval_batch_size,
                     "flops_examples": args.flops_examples, "bf16": args.bf16, "compile": args.compile,
                     "fast_path": args.fast_path, "task_options": args.task_options,
                     "isolated": isolate, "seed": args.seed, "eval_batch_cap": 64 if args.quick else None,
                     "eval_warmup": args.compile or not args.quick},
        "wall_seconds": round(wall, 2),
        "rows": rows, "skipped": skipped,
    }


_MEMORY_NOTES = {
    "row_peak_rss_above_start": "peak MB: the row's peak RSS in a fresh process, above its RSS "
                                "after start-up (interpreter, torch, Lightning)",
    "row_peak_rss_above_startup_peak": "peak MB: the row's peak RSS in a fresh process, above the start-up peak",
    "process_peak_rss_so_far": "peak MB: this process's peak RSS so far (not per row; use --isolate)",
    "cuda_max_memory_allocated": "peak MB: torch.cuda.max_memory_allocated during training",
}


def _notes(rows: list[dict], skipped: list[dict], device: str) -> list[str]:
    """The lines under the table: what the peak memory means, MFU, the pairs skipped."""
    kinds = {r["memory"]["kind"] for r in rows if r.get("memory")}
    notes = [_MEMORY_NOTES[k] for k in sorted(kinds)]
    if device == "cpu":
        notes.append("MFU: GPU only")
    elif any(r.get("mfu_note") for r in rows):
        notes.append(next(r["mfu_note"] for r in rows if r.get("mfu_note")))
    for s in skipped:
        notes.append(f"skipped {s['model']} / {s['task']}: {s['reason']}")
    return notes


def main(argv: list[str]) -> int:
    """``reasonbench bench``: every (model, task) row, the JSON to ``--out``, the table and its
    notes on stdout; 1 if a row failed."""
    from reasonbench.record import schema as rec

    args = parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("reasonbench bench: --device cuda: no CUDA device available")
    isolate = args.isolate if args.isolate is not None else device == "cpu"
    pairs, skipped = plan(_names(args.models), _names(args.tasks), args.preset)
    from reasonbench.execution.trainer import quiet_lightning

    quiet_lightning()
    out = Path(args.out)
    started = time.perf_counter()
    rows = [_timed_row(_spec(args, model, task, device, isolate)) for model, task in pairs]
    wall = time.perf_counter() - started
    result = _result(argv, args, device, isolate, rows, skipped, wall)
    rec.write_atomic(out, json.dumps(result, indent=2) + "\n")
    print(table(rows))
    for note in _notes(rows, skipped, device):
        print(f"({note})")
    fast = ", fast path" if any(r.get("fast_path") for r in rows) else ""
    print(f"{len(rows)} rows in {wall:.0f} s on {result['device']} ({'bf16' if args.bf16 else 'fp32'}{fast}"
          f"{', compiled' if args.compile else ''}) -> {out}")
    return 1 if any(r.get("status") == "error" for r in rows) else 0


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker())
