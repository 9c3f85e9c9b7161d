"""Result records -> leaderboard rows. A record is data from outside: each one is size-capped,
parsed strictly (no NaN or infinities), validated against the record schema and checked for
what a schema cannot say; a bad one is skipped with a one-line reason, the rest are used."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import record as rec
from ..errors import UserError

MAX_RECORD_BYTES = 16 * 2**20  # a real record is a few kB; an ARC submission adds a few hundred

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
        return f"budget {spec or record['provenance']['config']['budget']}"
    base = TRACK_OF_PRESET.get(record["preset"], record["preset"])
    depth = record["provenance"]["config"].get("eval_max_steps")
    if record["mode"] == "eval" and depth:
        # trained checkpoints evaluated deeper than they were trained: a test-time depth study
        return f"{base}{DEPTH_TRACK_SEPARATOR}{depth} steps"
    return base


def depth_track(name: str) -> tuple[str, str] | None:
    """(base track, "K steps") of a test-time depth track's name, else None."""
    base, _, steps = name.rpartition(DEPTH_TRACK_SEPARATOR)
    return (base, steps) if base and steps.endswith(" steps") else None


def track_sort_key(name: str) -> tuple[int, str]:
    base = name.split(" ", 1)[0]
    return (TRACK_ORDER.index(base) if base in TRACK_ORDER else len(TRACK_ORDER), name)


@dataclass
class Skipped:
    """A record left out of the leaderboard, and why."""

    file: str
    reason: str

    def line(self) -> str:
        return f"{self.file}: skipped: {self.reason}"


def one_line(text: str, limit: int = 300) -> str:
    """Untrusted text made safe for one terminal line: control characters (newlines, escape
    sequences) shown as escapes, and long text cut in the middle (a schema message quotes the
    offending value first and says what is wrong with it last)."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: ascii(m.group())[1:-1], str(text))
    return text if len(text) <= limit else f"{text[:limit // 2]} ... {text[-limit // 2:]}"


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


@lru_cache(maxsize=1)
def _fast_validator() -> Any:
    """The record schema compiled by jsonschema-rs: it accepts a valid record ~30x faster than
    jsonschema (0.02 against 0.5 ms), which is what lets 10,000 records build in seconds.
    Without it every record goes through jsonschema."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(rec.schema())


def parse_untrusted(data: bytes, name: str) -> dict[str, Any]:
    """The record in ``data`` (from file ``name``); ValueError or UserError with the reason
    when it is unusable."""
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES >> 20} MiB")
    # NaN and Infinity are refused as words, a literal too large for a float (1e999) as a number
    try:
        record = json.loads(data, parse_constant=_reject_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {exc.lineno}: not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    fast = _fast_validator()
    if fast is None or not fast.is_valid(record):
        rec.validate(record, name)  # words the rejection; where the two disagree, jsonschema's verdict stands
    if record["status"] == "completed":
        metrics = record["metrics"]
        if metrics["exact_correct"] > metrics["n_test_examples"]:
            raise ValueError("metrics: exact_correct is larger than n_test_examples")
    return record


def collect(results: Path) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Every usable record under ``results`` (each with ``_file``, its path relative to
    ``results``) and the skipped ones with their reasons."""
    records, skipped = [], []
    for path in sorted(results.rglob("*.json")):
        if path.parent.with_suffix(".json").is_file():
            continue  # inside a run's folder (seed0/ beside seed0.json): its submission file, not a record
        name = path.relative_to(results).as_posix()
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:  # before reading it
                raise ValueError(f"larger than {MAX_RECORD_BYTES >> 20} MiB")
            record = parse_untrusted(path.read_bytes(), name)
        except UserError as exc:  # the schema's message starts with the file name: said once
            skipped.append(Skipped(one_line(path), one_line(str(exc).removeprefix(f"{name}: "))))
            continue
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(one_line(path), one_line(getattr(exc, "strerror", None) or exc)))
            continue
        record.pop("submission", None)  # large and unused here
        record["_file"] = name
        records.append(record)
    return records, skipped


def mean_curve(curves: list[list[float]]) -> list[float] | None:
    """The step-wise mean of curves of one length (seeds of one row), else None."""
    if not curves or any(len(c) != len(curves[0]) for c in curves):
        return None
    return [statistics.fmean(values) for values in zip(*curves)]


def depth_and_difficulty(done: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's depth curve (exact accuracy per reasoning step, mean over seeds whose curves
    have the same length) and its accuracy per difficulty bucket and out of distribution,
    pooled over seeds."""
    curves = [r["metrics"]["by_step"]["exact"] for r in done if r["metrics"].get("by_step")]
    buckets: dict[str, list[int]] = {}
    kinds = {r["metrics"]["by_difficulty"]["kind"] for r in done if r["metrics"].get("by_difficulty")}
    if len(kinds) == 1:
        for r in done:
            for b in (r["metrics"].get("by_difficulty") or {}).get("buckets", []):
                counts = buckets.setdefault(b["name"], [0, 0])
                counts[0] += b["n_test_examples"]
                counts[1] += b["exact_correct"]
    ood = [r["metrics"]["ood"] for r in done if r["metrics"].get("ood")]
    n_ood = sum(o["n_test_examples"] for o in ood)
    definitions = {o.get("definition") for o in ood if o["n_test_examples"]}
    return {
        "by_step_exact": mean_curve(curves),
        "ood_by_step_exact": mean_curve([o["by_step"]["exact"] for o in ood if o.get("by_step")]),
        "ood_definition": next(iter(definitions)) if len(definitions) == 1 else None,
        "difficulty_kind": next(iter(kinds)) if len(kinds) == 1 else None,
        "by_difficulty": [{"name": k, "n_test_examples": n, "exact_accuracy": c / n if n else None}
                          for k, (n, c) in buckets.items()] or None,
        "ood_accuracy": sum(o["exact_correct"] for o in ood) / n_ood if n_ood else None,
        "ood_examples": n_ood if ood else None,
    }


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, track, model, preset, mode): the seeds' accuracies as mean and sample
    std, the 95% Wilson interval pooled over every test example of every seed, and the cost."""
    from ..stats import wilson_interval

    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        name = track(r)
        if name is not None:
            groups[(r["task"], name, r["model"], r["preset"], r["mode"])].append(r)
    rows = []
    for (task, track_name, model, preset, mode), group in groups.items():
        group.sort(key=lambda r: (r["seed"], r["_file"]))
        done = [r for r in group if r["status"] == "completed"]
        first = (done or group)[0]
        accs = [r["metrics"]["exact_accuracy"] for r in done]
        correct = sum(r["metrics"]["exact_correct"] for r in done)
        n = sum(r["metrics"]["n_test_examples"] for r in done)
        train_flops = [r["cost"]["train_flops"] for r in done if r["cost"]["train_flops"] is not None]
        rows.append({
            "task": task, "track": track_name, "model": model, "preset": preset, "mode": mode,
            "seeds": [r["seed"] for r in done], "diverged": len(group) - len(done),
            "exact_accuracy_mean": statistics.fmean(accs) if accs else None,
            "exact_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
            "exact_accuracy_ci95": list(wilson_interval(correct, n)) if n else None,
            "exact_correct": correct, "n_test_examples": n,
            "token_accuracy_mean": statistics.fmean(r["metrics"]["token_accuracy"] for r in done) if done else None,
            "params": first["cost"]["params"], "params_extra": first["cost"]["params_extra"],
            "flops_per_example_forward": first["cost"]["flops_per_example_forward"]["mean"],
            "train_flops": statistics.fmean(train_flops) if train_flops else None,
            "device_hours": statistics.fmean(r["cost"]["device_hours"] for r in group),
            "device": first["cost"]["device"], "device_count": first["cost"]["device_count"],
            "git_commit": first["provenance"]["git_commit"],
            "finished": max(r["provenance"]["finished"] for r in group),
            "files": [r["_file"] for r in group],
            "test_data": sorted({r["provenance"].get("test_data_fingerprint") for r in done} - {None}),
            **depth_and_difficulty(done),
        })
    mark_other_test_data(rows)
    rows.sort(key=lambda r: (r["task"], track_sort_key(r["track"]), -accuracy(r), r["model"], r["preset"], r["mode"]))
    return rows


def mark_other_test_data(rows: list[dict[str, Any]]) -> None:
    """Set ``test_data_differs`` on the rows that were not scored on their track's test
    examples: the track's test data is the test-split fingerprint that more of its rows carry
    than any other; a row with another, or with several over its seeds, is marked (and on a tie
    every row with a fingerprint is). Records made before the fingerprint existed are not checked."""
    tracks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        tracks[(row["task"], row["track"])].append(row)
    for group in tracks.values():
        counts = Counter(row["test_data"][0] for row in group if len(row["test_data"]) == 1).most_common(2)
        common = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else None
        for row in group:
            row["test_data_differs"] = bool(row["test_data"]) and row["test_data"] != [common]


def accuracy(row: dict[str, Any]) -> float:
    """Mean exact accuracy; rows without one (all seeds diverged) rank last."""
    return -1.0 if row["exact_accuracy_mean"] is None else row["exact_accuracy_mean"]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats: none is as cheap or
    cheaper and as accurate or more, one of them strictly. Ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    for i in order:
        if not front or points[i][1] > points[front[-1]][1]:
            front.append(i)
    return front
