"""The result record: one versioned JSON per run, the single source of truth for pages,
tables and comparisons. Schema: ``record_schema.json`` beside this file."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from reasonbench.util.atomic import write_atomic  # noqa: F401  (re-exported: records, manifests and the site use it)
from reasonbench.util.errors import UserError

SCHEMA_VERSION = 1
SWEEP_MANIFEST_NAME = "sweep.json"  # reasonbench sweep's list of runs beside their records, not a record
LEDGER_NAME = "attempts.json"  # a run folder's account of its training attempts (reasonbench.clock), not a record

# settings that name, place, resume, log or depth-test a run, or only measure it: not settings
# beyond the preset (a budget and a test-time depth are tracks of their own on the leaderboard)
NEUTRAL_SETTINGS = ("model.name", "task.name", "preset", "seed", "out", "resume", "overwrite", "flops", "checkpoint",
                    "eval_max_steps", "budget", "checkpoint_every", "measure", "trainer.enable_progress_bar",
                    "trainer.enable_model_summary", "trainer.log_every_n_steps", "trainer.logger")


def is_neutral(key: str) -> bool:
    """Whether the dotted setting ``key`` leaves a run's result as it is (``NEUTRAL_SETTINGS``)."""
    return any(key == name or key.startswith(name + ".") for name in NEUTRAL_SETTINGS)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("reasonbench.record").joinpath("record_schema.json").read_text())


@lru_cache(maxsize=1)
def validator() -> Any:
    """One validator for every record (the leaderboard checks thousands)."""
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def validate(record: dict[str, Any], source: str = "record") -> None:
    """Raise UserError naming the first schema violation (field path and reason)."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator().iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise UserError(f"{source}: invalid record at {where}: {error.message}")


@dataclass
class ResultRecord:
    """One run's result as ``record_schema.json`` describes it (fields in the file's order);
    ``as_dict`` is what is written and what ``reasonbench.run`` returns."""

    model: str
    task: str
    preset: str
    seed: int
    mode: str  # train, or eval (a checkpoint tested)
    status: str  # completed or diverged
    status_detail: str | None
    metrics: dict[str, Any] | None  # None when diverged
    cost: dict[str, Any]
    provenance: dict[str, Any]
    task_metadata: dict[str, Any]
    checkpoint: str | None
    budget: dict[str, Any] | None = None  # only for a run under --budget
    submission: str | None = None  # a task's answers file (ARC), beside the record
    examples: dict[str, Any] | None = None  # a solved and a failed test example, for the pictures
    test_time_compute: dict[str, Any] | None = None  # depth x breadth of a recursive model's test pass
    training: dict[str, Any] | None = None  # steps the weights had against the planned ones
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        data = {"schema_version": self.schema_version, **{f.name: getattr(self, f.name) for f in fields(self)
                                                          if f.name != "schema_version"}}
        for optional in ("budget", "submission", "examples", "test_time_compute", "training"):
            if data[optional] is None:
                del data[optional]
        return data


def record_path(out: str | Path, model: str, task: str, preset: str, seed: int, mode: str = "train") -> Path:
    suffix = "" if mode == "train" else f".{mode}"
    return Path(out) / model / task / preset / f"seed{seed}{suffix}.json"


def write_record(record: dict[str, Any], path: Path) -> Path:
    validate(record, str(path))
    write_atomic(path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """The record at ``path``, read as untrusted (``untrusted.load_json``: a regular file, size
    and depth capped, strict JSON) and validated; a one-line UserError naming the file otherwise."""
    from reasonbench.util.untrusted import load_json

    record = load_json(path)
    if not isinstance(record, dict):
        raise UserError(f"{path}: not a record: a JSON {type(record).__name__}, not an object")
    validate(record, str(path))
    return record


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout reasonbench runs from; (None, None) outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


def versions() -> dict[str, str]:
    import lightning
    import torch

    from reasonbench.util.version import __version__

    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "lightning": lightning.__version__, "reasonbench": __version__}
