"""``reasonbench data``: inspect, build, export and show a task's data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reasonbench.config.resolve import collapse_whitespace, resolve_task
from reasonbench.util.errors import UserError, cannot_write
from reasonbench.tasks.base import OOD_SPLIT, SPLITS, ReasoningTask


# action: (what it does, its own options {name: (type, default, help)}), for the parser
ACTIONS: dict[str, tuple[str, dict[str, tuple[Any, Any, str]]]] = {
    "info": ("Sources, split sizes, encoding, fingerprint, cache file, where the data came from", {}),
    "build": ("Build (generate, or fetch from the Hub) and cache the data",
              {"out": (str | None, None, "cache folder (default: the data cache)")}),
    "export": ("Write a split in the reference CSV layout",
               {"split": (str, "test", "train, val, test or ood"),
                "limit": (int | None, None, "at most this many rows (default: all)"),
                "out": (str | None, None, "the CSV file to write (required)")}),
    "show": ("Render one puzzle and its answer",
             {"split": (str, "test", "train, val, test or ood"), "index": (int, 0, "which example")}),
}


def task_from_argv(argv: list[str], prog: str, extra: dict[str, tuple[Any, Any, str]] | None = None,
                   overrides: dict[str, Any] | None = None) -> tuple[ReasoningTask, dict]:
    """A task from its preset, ``--config`` files and ``--task.*`` overrides (data commands and
    ``reasonbench.create_task``); returns (task, resolved config)."""
    task_cls, cfg = resolve_task(argv, prog, extra, overrides)
    args = {k: v for k, v in cfg["task"].items() if k != "name"}
    try:
        task = task_cls(**args)
    except (TypeError, ValueError) as exc:
        raise UserError(collapse_whitespace(exc)) from None
    return task, cfg


def info(argv: list[str]) -> None:
    task, cfg = task_from_argv(argv, "reasonbench data info", ACTIONS["info"][1])
    for line in task.describe():
        print(line)
    start = time.perf_counter()
    sizes = task.sizes()
    meta = task.metadata
    print(f"preset       {cfg['preset']}: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
          + f" (built or loaded in {time.perf_counter() - start:.1f} s)")
    if task.ood_definition():
        print(f"ood          {task.ood_definition()}")
    _print_skipped(task, "skipped      ")
    print(f"encoding     vocab {meta.vocab_size}, length {meta.seq_len}, grid {meta.grid_shape[0]}x{meta.grid_shape[1]}, "
          f"{meta.num_puzzle_ids:,} puzzle ids")
    print(f"fingerprint  {task.fingerprint}")
    print(f"cache        {task.cache_path()}")


def build(argv: list[str]) -> None:
    task, cfg = task_from_argv(argv, "reasonbench data build", ACTIONS["build"][1])
    if cfg["out"]:
        task.cache_dir = Path(cfg["out"])
        _check_writable_folder("--out", Path(cfg["out"]))  # before the build, not after it
    start = time.perf_counter()
    sizes = task.sizes()
    if cfg["out"] and not task.cache_path().is_file():  # the cache is best effort; --out is not
        raise UserError(f"--out {cfg['out']}: cannot write: {task.cache_path()} was not written")
    print(f"built {task.name} in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    _print_skipped(task, "skipped     ")
    print(f"fingerprint {task.fingerprint}")
    print(f"cached at   {task.cache_path()}")


def export(argv: list[str]) -> None:
    task, cfg = task_from_argv(argv, "reasonbench data export", ACTIONS["export"][1])
    split, limit, out = cfg["split"], cfg["limit"], cfg["out"]
    _check_split(split)
    if limit is not None and limit < 1:  # 0 would write a header alone; leave --limit out for all rows
        raise UserError(f"--limit {limit}: must be >= 1 (leave --limit out to export the whole split)")
    if not out:
        raise UserError("--out FILE.csv is required")
    task.setup()  # data (and its cache) first: an OSError below is about --out only
    _check_built(task, split)
    try:
        count = task.export_csv(split, Path(out), limit)
    except OSError as exc:  # a missing folder, no permission, a full disk
        raise UserError(cannot_write("--out", out, exc)) from None
    print(f"wrote {count:,} {task.name} {split} puzzles to {out}")


def _print_skipped(task: ReasoningTask, label: str) -> None:
    """The count of invalid CSV rows the build skipped (tasks that read CSV files say it)."""
    report = getattr(task, "skipped_report", None)
    line = report() if report is not None else None
    if line:
        print(label + line)


def _check_split(split: str) -> None:
    if split not in (*SPLITS, OOD_SPLIT):
        raise UserError(f"--split must be one of {', '.join((*SPLITS, OOD_SPLIT))}, got '{split}'")


def _check_built(task: ReasoningTask, split: str) -> None:
    """The out-of-distribution split exists only where the task was asked to build one."""
    if split not in task.splits:
        raise UserError(f"--split {split}: task {task.name} built no {split} split with these settings "
                        f"(the sudoku and maze tasks build one with --task.num_ood N)")


def _check_writable_folder(option: str, folder: Path) -> None:
    """A UserError unless ``folder`` is, or can be made, a writable folder; creates nothing."""
    from reasonbench.util.atomic import probe_folder

    try:
        probe_folder(folder)
    except OSError as exc:
        raise UserError(cannot_write(option, folder, exc, folder=True)) from None


def show(argv: list[str]) -> None:
    task, cfg = task_from_argv(argv, "reasonbench data show", ACTIONS["show"][1])
    split, index = cfg["split"], cfg["index"]
    _check_split(split)
    task.setup()
    _check_built(task, split)
    data = task.splits[split]
    if not 0 <= index < len(data):
        raise UserError(f"--index {index} out of range: the {split} split has {len(data)} examples")
    print(f"{task.name} {split} #{index}: puzzle")
    print(task.render(data.inputs[index]))
    print("answer")
    print(task.render(data.labels[index]))

