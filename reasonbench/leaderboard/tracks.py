"""Which track and row of the leaderboard a record belongs to. A track is what runs compare
within: the preset's track (``mini``, ``paper``; a budget of device time is a track per budget),
kept apart by the kind of data (generated or real), by weights trained fewer steps than planned
(partial runs) and by test-time depth or breadth. Within a track, a row is a model, preset, mode
and the settings its runs were given beyond the preset (``settings_text``)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any, Callable, Hashable, Iterable, TypeVar

from reasonbench.record import schema as rec

T = TypeVar("T")

# Which track a preset's runs belong to. Smoke runs are never listed; a run with a device-time
# budget is on the budget track whatever its preset; any other preset is a track of its own name.
TRACK_OF_PRESET = {"mini": "mini", "paper": "paper", "tiny": "paper"}
HIDDEN_PRESETS = {"smoke"}
TRACK_ORDER = ("mini", "budget", "paper")
DEPTH_TRACK_SEPARATOR = " at "  # "<track> at K steps": checkpoints of <track> evaluated for K steps


def track(record: dict[str, Any]) -> str | None:
    """The leaderboard track of a record, or None for runs that never appear (smoke)."""
    if record["preset"] in HIDDEN_PRESETS:
        return None
    budget = record.get("budget") or {}
    spec = budget.get("spec") if isinstance(budget, dict) else None
    if spec or record["provenance"]["config"].get("budget"):
        # one track per budget: only runs given the same device time compare
        return f"budget {spec or record['provenance']['config']['budget']}" + data_suffix(record, "budget")
    base = TRACK_OF_PRESET.get(record["preset"], record["preset"])
    base += data_suffix(record, base)
    base += partial_suffix(record)
    depth = record["provenance"]["config"].get("eval_max_steps")
    compute = record.get("test_time_compute")
    breadth = compute.get("breadth") if isinstance(compute, dict) else None
    if isinstance(breadth, int) and breadth > 1:
        # several trajectories per example: only runs at the same depth, breadth and rule compare
        return base + _breadth_suffix(compute, depth)
    if record["mode"] == "eval" and depth:
        # trained checkpoints evaluated deeper than they were trained: a test-time depth study
        return f"{base}{DEPTH_TRACK_SEPARATOR}{depth} steps"
    return base


def _breadth_suffix(compute: dict[str, Any], depth: Any) -> str:
    """" at depth 16 x breadth 8 (vote)": the test-time compute of a record that ran several
    trajectories per example (``test_time_compute``), its noise where not the default 1."""
    steps = compute.get("depth") or depth or compute.get("trained_depth")
    noise = compute.get("noise")
    noise_text = f", noise {noise:g}" if noise not in (None, 1.0) else ""
    return f"{DEPTH_TRACK_SEPARATOR}depth {steps} x breadth {compute['breadth']} ({compute.get('select')}{noise_text})"


# test-time settings: they name a record's track (``track``), not a row within it
TEST_TIME_SETTINGS = ("eval_breadth", "eval_select", "eval_breadth_seed", "eval_breadth_noise")
TEST_TIME_OPTIONS = {"--breadth", "--select", "--breadth-seed", "--breadth-noise"}


PARTIAL_MARK = " (partial"  # "mini (partial: step 72 of 2,000)": weights with fewer steps than planned


def unfinished_steps(record: dict[str, Any]) -> tuple[int | None, int | None] | None:
    """(steps, planned steps) of a completed record whose weights were not trained as far as its
    preset plans (``training.finished`` false: a budget stopped it, or an evaluation of an
    unfinished checkpoint), else None. Records made before ``training`` existed: a training run
    stopped by its budget, or whose ``cost.train_steps`` fall short of its config's
    ``trainer.max_steps``; an old evaluation is not judged (its checkpoint's steps are unknown)."""
    if record["status"] != "completed":
        return None  # a diverged seed counts as a seed without accuracy of its row
    training = record.get("training")
    if isinstance(training, dict):
        return (training["steps"], training["planned_steps"]) if training["finished"] is False else None
    if record["mode"] != "train":
        return None
    trainer = record["provenance"]["config"].get("trainer")
    planned = trainer.get("max_steps") if isinstance(trainer, dict) else None
    steps = record["cost"].get("train_steps")
    budget = record.get("budget") if isinstance(record.get("budget"), dict) else {}
    if budget.get("stopped_at_step") is not None:
        return (steps, planned if isinstance(planned, int) and planned > 0 else None)
    if isinstance(planned, int) and planned > 0 and isinstance(steps, int) and steps < planned:
        return (steps, planned)
    return None


def partial_suffix(record: dict[str, Any]) -> str:
    """" (partial: step 72 of 2,000)" for a record with unfinished weights, else ""."""
    found = unfinished_steps(record)
    if found is None:
        return ""
    steps, planned = found
    if steps is None:
        return f"{PARTIAL_MARK})"
    return f"{PARTIAL_MARK}: step {steps:,}" + (f" of {planned:,})" if planned is not None else ")")


# options of a run's command that name, place, resume or depth-test it: every other option is a
# setting the preset did not give, and runs given other settings are other rows
NEUTRAL_OPTIONS = {"--model", "--task", "--preset", "--seed", "--out", "--resume", "--overwrite", "--checkpoint",
                   "--eval-depth", "--max-steps", "--eval_max_steps", "--budget", "--checkpoint_every",
                   "--trainer.enable_progress_bar", "--trainer.enable_model_summary", "--trainer.log_every_n_steps",
                   "--trainer.logger"}
FLAG_OPTIONS = {"--resume", "--overwrite"}  # take no value


def command_settings(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The settings a run was given on top of its preset, as (dotted name, value as text):
    ``provenance.overrides`` where the record has it (every setting beyond the preset, whatever
    gave it), in name order; for a record made before that field, parsed from its recorded
    command, in order: [("trainer.max_steps", "6000")] for ``... --preset mini
    --trainer.max_steps 6000``, a config file counting as one (("config", "run.yaml")).
    Measurement options (``--measure.*``) change no result and are left out."""
    overrides = record["provenance"].get("overrides")
    if isinstance(overrides, dict):
        return [(name, setting_text(value)) for name, value in sorted(overrides.items())
                if not rec.is_neutral(name) and name not in TEST_TIME_SETTINGS]
    return _settings_from_command(record)


def setting_text(value: Any) -> str:
    """A setting's value as it would be typed: ``6000``, ``bf16-mixed``, ``true``, ``[1, 2]``."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)


def _settings_from_command(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``command_settings`` of a record without ``provenance.overrides``, from its command."""
    try:
        words = shlex.split(record["provenance"].get("command") or "")
    except ValueError:  # unbalanced quotes: read as plain words
        words = (record["provenance"].get("command") or "").split()
    found, i = [], 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("--"):
            continue
        option, has_value, value = word.partition("=")
        if not has_value and option not in FLAG_OPTIONS and i < len(words) and not words[i].startswith("--"):
            value = words[i]
            i += 1
        if option not in NEUTRAL_OPTIONS and option not in TEST_TIME_OPTIONS and not option.startswith("--measure"):
            found.append((option[2:], value))
    return found


def settings_text(record: dict[str, Any]) -> str:
    """``command_settings`` as one string, "" for a run on its preset alone: part of a row's key."""
    return " ".join(f"{name}={value}" for name, value in command_settings(record))


def data_suffix(record: dict[str, Any], base: str) -> str:
    """Generated and real data never share a track: the mini track is generated data, the
    others are the official data sets (hub, local files, packages); a record on the other kind
    (``provenance.data_source.kind``) gets a track of its own. Records made before the field
    existed count as their track's kind."""
    source = record["provenance"].get("data_source")
    kind = source.get("kind") if isinstance(source, dict) else None
    if kind is None or (kind == "generated") == (base == "mini"):
        return ""
    return GENERATED_DATA if kind == "generated" else REAL_DATA


GENERATED_DATA, REAL_DATA = " (generated data)", " (real data)"


def depth_track(name: str) -> tuple[str, str] | None:
    """(base track, "K steps") of a test-time depth track's name, else None."""
    base, _, steps = name.rpartition(DEPTH_TRACK_SEPARATOR)
    return (base, steps) if base and steps.endswith(" steps") else None


# what ``track`` writes after DEPTH_TRACK_SEPARATOR for a test-time evaluation: "8 steps",
# "depth 16 x breadth 8 (vote)"
TEST_TIME_TAIL = re.compile(r"\d+ steps|depth \d+ x breadth \d+ \(.+\)")


def test_time_base(name: str) -> str | None:
    """The track a test-time track's checkpoints were trained on ("mini" of "mini at 8 steps" or
    of "mini at depth 16 x breadth 8 (vote)"); None for any other track."""
    base, _, tail = name.rpartition(DEPTH_TRACK_SEPARATOR)
    return base if base and TEST_TIME_TAIL.fullmatch(tail) else None


def track_sort_key(name: str) -> tuple[int, str]:
    base = name.split(" ", 1)[0]
    return (TRACK_ORDER.index(base) if base in TRACK_ORDER else len(TRACK_ORDER), name)


def row_key(record: dict[str, Any]) -> tuple[str, str, str, str, str, str] | None:
    """The row a record belongs to: (task, track, model, preset, mode, settings given beyond the
    preset); None for a run that is never listed (``track``)."""
    name = track(record)
    if name is None:
        return None
    return (record["task"], name, record["model"], record["preset"], record["mode"], settings_text(record))


def group_by(items: Iterable[T], key: Callable[[T], Hashable | None]) -> dict[Any, list[T]]:
    """``items`` in groups by ``key``, the groups and the items within each in the order first
    met; an item whose key is None is in no group."""
    groups: dict[Any, list[T]] = {}
    for item in items:
        found = key(item)
        if found is not None:
            groups.setdefault(found, []).append(item)
    return groups


def by_track(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows in groups by (task, track), in the order of ``rows``: what is ranked, told apart and
    checked for its test data together."""
    return group_by(rows, lambda row: (row["task"], row["track"]))
