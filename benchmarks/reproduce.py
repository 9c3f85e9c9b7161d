"""Re-run one committed leaderboard record and require the same result: the CI check that a
row of the mini track is reproduced, not only built from committed files.

    python -m reasonbench_benchmarks.reproduce leaderboard/results/trm/sudoku/mini/seed0.json

The record is data from outside (records arrive in pull requests): it is read as the leaderboard
reads one (a regular file, size and depth capped, strict JSON, the record schema, consistent
counts), and re-run from its data, never from its command line: its model, task, preset and seed,
and its settings beyond the preset (``provenance.overrides``; for a record made before that field,
the options its command gave), each checked first: a setting of an allowed family
(``ALLOWED_SETTINGS``), no value that names a path, a class or a config file, then validated
against the model's and task's signatures. The run goes into a temporary folder of its own.

The test split's exact count, the OOD split's and the data fingerprint are compared. Exit 0 when
they agree, 1 when not (both figures printed) or when the machine fails, 2 for a record that
cannot be re-run (one line saying why). The re-run uses the record's torch thread count
(``provenance.cpu.threads``): a float32 sum split over another number of threads rounds
differently, and over 2,000 steps that can move the count. TRM on Sudoku mini reproduces across
CPUs (its data is exact integer work; its training, float32 on the CPU, has reproduced bit for
bit on AVX2 and AVX-512 machines)."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reasonbench.util.errors import MachineError, UserError
from reasonbench.leaderboard.load import parse_untrusted, read_untrusted
from reasonbench.leaderboard.tracks import command_settings
from reasonbench.util.untrusted import InvalidJSON, UntrustedInput, load_yaml, printable

# the setting families a record may ask a re-run for: the model's and task's own arguments
# (validated against their signatures), the optimizer, and the trainer's schedule and numerics
ALLOWED_SETTINGS = ("model.", "task.", "optim.", "trainer.max_steps", "trainer.max_epochs", "trainer.min_steps",
                    "trainer.min_epochs", "trainer.precision", "trainer.accumulate_grad_batches",
                    "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm", "trainer.val_check_interval",
                    "trainer.check_val_every_n_epoch", "trainer.limit_train_batches", "trainer.limit_val_batches",
                    "trainer.limit_test_batches", "trainer.num_sanity_val_steps", "trainer.deterministic",
                    "trainer.benchmark")
SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
# a setting whose last part says it is a place (task.path, a cache folder, a file, an address)
PLACE_NAME = re.compile(r"(^|_)(path|paths|dir|dirs|folder|file|files|root|cache|url|uri|config|logger|callbacks)(_|$)")
DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
MAX_THREADS = 1024


def compared(record: dict) -> dict:
    metrics = record["metrics"] or {}
    return {"exact_correct": metrics.get("exact_correct"), "n_test_examples": metrics.get("n_test_examples"),
            "ood_exact_correct": (metrics.get("ood") or {}).get("exact_correct"),
            "data_fingerprint": record["provenance"]["data_fingerprint"]}


def read_committed(path: Path) -> dict[str, Any]:
    """The record at ``path`` as the leaderboard would take it; UntrustedInput (one line) when not."""
    where = printable(path)
    try:
        record = parse_untrusted(read_untrusted(path), str(path))
    except UserError as exc:  # the schema's message names the file already
        raise UntrustedInput(printable(exc)) from None
    except InvalidJSON as exc:
        raise UntrustedInput(f"{where}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise UntrustedInput(f"{where}: {printable(exc)}") from None
    except OSError as exc:
        raise UntrustedInput(f"{where}: cannot read: {exc.strerror or printable(exc)}") from None
    if record["mode"] != "train":
        raise UntrustedInput(f"{where}: a {printable(record['mode'])} record: reproduce re-runs training records")
    return record


def _refusal(name: str, value: Any) -> str | None:
    """Why the setting ``name`` = ``value`` from a record is not re-run, or None."""
    if not SETTING_NAME.fullmatch(name) or not any(name == a or (a.endswith(".") and name.startswith(a))
                                                   for a in ALLOWED_SETTINGS):
        return "not a setting reproduce re-runs (model.*, task.*, optim.* and the trainer's schedule and numerics)"
    if any(PLACE_NAME.search(part) for part in name.split(".")[1:]):
        return "names a place (a path, a folder, a file or an address): the re-run's data and output are its own"
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if {"class_path", "init_args", "__path__"} & set(item):
                return "names a class: no class is chosen by a record"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if any(mark in item for mark in ("/", "\\", "~", "://")):
                return "holds a path: the re-run's data and output are its own"
            if DOTTED_NAME.fullmatch(item):
                return "names a module or class: no code is chosen by a record"
    return None


def recorded_overrides(record: dict[str, Any], where: str) -> dict[str, Any]:
    """The record's settings beyond its preset, as data, each checked (``_refusal``); an
    UntrustedInput naming the first refused one."""
    overrides = record["provenance"].get("overrides")
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:  # a record made before overrides were data: the values its command gave, read as YAML scalars
        items = []
        for name, text in command_settings(record):
            try:
                items.append((name, load_yaml(text, f"{where}: setting {name}")))
            except UntrustedInput:
                items.append((name, text))
    checked = {}
    for name, value in items:
        why = _refusal(name, value)
        if why:
            raise UntrustedInput(f"{where}: setting {printable(name, 80)}={printable(value, 80)}: {why}")
        checked[name] = value
    return checked


def rerun(committed: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The record's run (its preset, seed and ``overrides``) in a temporary folder; the new record."""
    from reasonbench.config import resolve as config
    from reasonbench.execution import execute as execute_module

    with tempfile.TemporaryDirectory(prefix="reasonbench-reproduce-") as out:
        argv = ["--model", committed["model"], "--task", committed["task"], "--preset", committed["preset"],
                "--seed", str(committed["seed"]), "--out", out, "--trainer.enable_progress_bar", "false"]
        cfg, _ = config.resolve(argv, prog="reasonbench run", overrides=overrides or None)
        if cfg.out != out:  # nothing given after the options above may move it
            raise UntrustedInput(f"the re-run's output folder would be {printable(cfg.out)}, not its own")
        command = "python -m reasonbench_benchmarks.reproduce"
        record = execute_module.execute(cfg, mode="train", command=command)
        record.pop("_path", None)
        return record


def _threads(committed: dict[str, Any], where: str) -> int:
    threads = (committed["provenance"].get("cpu") or {}).get("threads")
    if threads is None:
        return torch.get_num_threads()
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
        raise UntrustedInput(f"{where}: provenance/cpu/threads {printable(threads, 40)}: expected 1..{MAX_THREADS}")
    return threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a committed record (train mode)")
    args = parser.parse_args(argv)
    where = printable(args.record)
    threads_before = torch.get_num_threads()
    try:
        committed = read_committed(args.record)
        overrides = recorded_overrides(committed, where)
        torch.set_num_threads(_threads(committed, where))
        start = time.perf_counter()
        again = rerun(committed, overrides)
        threads_used = torch.get_num_threads()
    except UserError as exc:
        print(f"reproduce: {printable(exc, 500)}", file=sys.stderr)
        return 2
    except MachineError as exc:
        print(f"reproduce: {printable(exc, 500)}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(threads_before)
    want, got = compared(committed), compared(again)
    print(f"reproduce {where}: committed {want}, re-run {got} ({time.perf_counter() - start:.0f} s, "
          f"CPU {printable(again['provenance'].get('cpu', {}).get('model', '?'))}, {threads_used} torch threads)")
    if got != want:
        print("reproduce: the re-run differs from the committed record", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
