"""Reading result records. A record is data from outside: each one is read only if it is a
regular file (a FIFO or a device is never opened) and at most 16 MiB, parsed strictly (no NaN or
infinities), validated against the record schema and checked for what a schema cannot say
(``consistency_problems``: counts, accuracies and intervals that agree, numbers of a measurable
size); a bad one is skipped with a one-line reason, the rest are used."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reasonbench.record import schema as rec
from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import MAX_JSON_BYTES, loads_json, printable, read_bytes

MAX_RECORD_BYTES = MAX_JSON_BYTES


@dataclass
class Skipped:
    """A record left out of the leaderboard, and why."""

    file: str
    reason: str

    def line(self) -> str:
        return f"{self.file}: skipped: {self.reason}"


def collect(results: Path) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Every usable record under ``results`` (each with ``_file``, its path relative to
    ``results``) and the skipped ones with their reasons. Folders reached through a symbolic
    link are not searched (no loops); a link to a record file is read (``read_untrusted``)."""
    records, skipped = [], []
    for path in sorted(results.rglob("*.json")):
        if path.parent.with_suffix(".json").is_file() or path.name in (rec.LEDGER_NAME, rec.SWEEP_MANIFEST_NAME):
            continue  # inside a run's folder (seed0/ beside seed0.json): its submission file or attempts, not a
            # record; nor is the manifest `reasonbench sweep` keeps beside its records
        name = path.relative_to(results).as_posix()
        try:
            record = parse_untrusted(read_untrusted(path), name)
        except UserError as exc:  # the schema's message starts with the file name: said once
            skipped.append(Skipped(printable(path), printable(str(exc).removeprefix(f"{name}: "))))
            continue
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(printable(path), printable(getattr(exc, "strerror", None) or exc)))
            continue
        except Exception as exc:  # noqa: BLE001 (what no check above foresaw: this record's, not the site's)
            skipped.append(Skipped(printable(path), f"cannot be read: {error_line(exc)}"))
            continue
        record.pop("submission", None)  # large and unused here
        record["_file"] = name
        records.append(record)
    return records, skipped


def read_untrusted(path: Path) -> bytes:
    """The bytes of the record file at ``path`` (``untrusted.read_bytes``: a regular file only,
    at most MAX_RECORD_BYTES); ValueError or OSError when it is not one to read."""
    return read_bytes(path, MAX_RECORD_BYTES)


def parse_untrusted(data: bytes, name: str) -> dict[str, Any]:
    """The record in ``data`` (from file ``name``); ValueError or UserError with the reason
    when it is unusable."""
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES >> 20} MiB")
    # NaN and Infinity are refused as words, a literal too large for a float (1e999) as a number,
    # a nesting deeper than any record's before the parser recurses
    record = loads_json(data)
    if not isinstance(record, dict):
        raise ValueError(f"not a record: a JSON {type(record).__name__}, not an object")
    fast = _fast_validator()
    if fast is None or not fast.is_valid(record):
        rec.validate(record, name)  # words the rejection; where the two disagree, jsonschema's verdict stands
    problems = consistency_problems(record)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"inconsistent: {problems[0]}{more}")
    return record


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


def error_line(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    return printable(f"{type(exc).__name__}: {exc}", 200)


# --- what a schema cannot say --------------------------------------------------------------
# Numbers a measurement can have: every number under metrics, cost and budget lies in
# [MIN_MAGNITUDE, MAX_MAGNITUDE] (or is 0), so sums and means over any number of records stay
# finite and every cost has a place on a log axis; a count (an integer) is at most MAX_COUNT, which
# a float (and JavaScript, which sorts the tables) holds exactly.
MAX_MAGNITUDE = 1e30
MIN_MAGNITUDE = 1e-30
MAX_COUNT = 2**53
MAX_SEED = 2**64
SHARE_SLACK = 1e-6  # rounding in a writer's floats (an interval's 2e-19 below an accuracy of 0)


def _show(value: Any) -> str:
    """A number short enough for a one-line reason, however many digits it has."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) if abs(value) < 10**4000 else 4000  # str() of more digits refuses
        return f"{value:,}" if digits <= 21 else f"an integer of {digits}{'+' if digits == 4000 else ''} digits"
    return f"{value:.6g}" if isinstance(value, float) else repr(value)[:40]


def _numbers(value: Any, where: str | None) -> Any:
    """(path, number) of every number in ``value`` (bools are not numbers), without recursion;
    ``where`` None: the paths are not made (quicker) and are None."""
    stack = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((None if path is None else f"{path}/{key}", v) for key, v in item.items())
        elif isinstance(item, list):
            stack.extend((None if path is None else f"{path}/{i}", v) for i, v in enumerate(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            yield path, item


def _number_problem(value: int | float) -> str | None:
    """What is wrong with a number of a measurement, or None."""
    if isinstance(value, int):  # not through float(): 10**400 does not fit one
        return f"{_show(value)} is larger than 2**53" if abs(value) > MAX_COUNT else None
    if not math.isfinite(value):
        return f"is {value}, not a finite number"
    if abs(value) > MAX_MAGNITUDE:
        return f"{_show(value)} is larger than {MAX_MAGNITUDE:g}"
    if 0 < abs(value) < MIN_MAGNITUDE:
        return f"{_show(value)} is smaller than {MIN_MAGNITUDE:g} (and not 0)"
    return None


def _number_problems(record: dict[str, Any]) -> list[str]:
    sections = {section: record.get(section) for section in ("metrics", "cost", "budget")}
    problems = []
    # a quick pass over the numbers alone; the paths are made only for a record that needs them
    if any(abs(v) > MAX_COUNT if isinstance(v, int) else not (v == 0 or MIN_MAGNITUDE <= abs(v) <= MAX_MAGNITUDE)
           for _, v in _numbers(sections, None)):
        for section, value in sections.items():
            problems += [f"{path} {problem}" for path, number in _numbers(value, section)
                         if (problem := _number_problem(number))]
    seed = record.get("seed")
    if isinstance(seed, int) and abs(seed) >= MAX_SEED:
        problems.append(f"seed {_show(seed)} does not fit in 64 bits")
    return problems


def is_number(value: Any) -> bool:
    """An int or a float (a bool is neither here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _share_problems(where: str, part: dict[str, Any]) -> list[str]:
    """Counts and the accuracy and interval made of them, in one part of the metrics (the test
    split, the OOD split, a difficulty bucket)."""
    problems = []
    n, correct = part.get("n_test_examples"), part.get("exact_correct")
    accuracy = part.get("exact_accuracy")
    if is_number(n) and is_number(correct):  # integers, or floats the schema takes for them (5.0)
        if correct > n:
            problems.append(f"{where}exact_correct {_show(correct)} is larger than n_test_examples {_show(n)}")
        elif is_number(accuracy):
            if n == 0 and accuracy != 0:
                problems.append(f"{where}exact_accuracy {_show(accuracy)} of no test examples")
            elif n and abs(accuracy * n - correct) >= 0.5:  # the accuracy names another count
                problems.append(f"{where}exact_accuracy {_show(accuracy)} is not {_show(correct)} of {_show(n)} "
                                f"({correct / n:.6g})")
    # every share with an interval beside it (exact_accuracy_ci95, and tasks' own: valid_path_ci95)
    for key, interval in part.items():
        share = part.get(key.removesuffix("_ci95"))
        if not key.endswith("_ci95") or not is_number(share):
            continue
        if not (isinstance(interval, list) and len(interval) == 2 and all(map(is_number, interval))):
            continue  # a task's own interval in another shape: not read here
        low, high = interval
        if low > high + SHARE_SLACK:
            problems.append(f"{where}{key} [{_show(low)}, {_show(high)}] runs backwards")
        elif not low - SHARE_SLACK <= share <= high + SHARE_SLACK:
            problems.append(f"{where}{key} [{_show(low)}, {_show(high)}] does not contain "
                            f"{key.removesuffix('_ci95')} {_show(share)}")
    return problems


def _by_step_problems(where: str, curves: Any) -> list[str]:
    if not isinstance(curves, dict):
        return []
    lengths = {key: len(curves[key]) for key in ("exact", "token", "halted", "residual")
               if isinstance(curves.get(key), list)}
    problems = []
    if len(set(lengths.values())) > 1:
        problems.append(f"{where}by_step curves of different lengths ("
                        + ", ".join(f"{k} {v}" for k, v in lengths.items()) + ")")
    halted = curves.get("halted")
    if isinstance(halted, list) and all(map(is_number, halted)) and math.fsum(halted) > 1 + SHARE_SLACK:
        problems.append(f"{where}by_step/halted: shares of the examples sum to {math.fsum(halted):.6g}, more than 1")
    return problems


def consistency_problems(record: dict[str, Any]) -> list[str]:
    """What a schema-valid record says against itself, one short line each (empty: nothing):
    a count larger than what it counts, an accuracy that is not its count's share, an interval
    that misses its accuracy, curves of different lengths, difficulty buckets that hold more
    than the test split, training FLOPs that are not FLOPs per step times steps, numbers too
    large or too small to be a measurement, text that is not Unicode."""
    problems = _number_problems(record)
    if problems:
        return problems  # the arithmetic below assumes numbers of a measurable size
    try:
        json.dumps(record, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        problems.append(f"text with a lone surrogate ({ascii(exc.object[exc.start:exc.end])}): not Unicode")
    except RecursionError:
        problems.append("nested too deeply")
    except (TypeError, ValueError) as exc:  # not from JSON (a record built in Python)
        problems.append(f"not JSON data: {printable(exc, 100)}")
    metrics = record.get("metrics")
    if isinstance(metrics, dict):
        problems += _share_problems("metrics: ", metrics)
        problems += _by_step_problems("metrics: ", metrics.get("by_step"))
        ood = metrics.get("ood")
        if isinstance(ood, dict):
            problems += _share_problems("metrics/ood: ", ood)
            problems += _by_step_problems("metrics/ood: ", ood.get("by_step"))
        problems += _outcome_problems(metrics)
        for key in [k for k in metrics if k.startswith("pass@")]:  # task-level shares (ARC)
            if is_number(metrics[key]) and not 0 <= metrics[key] <= 1:
                problems.append(f"metrics: {key} {_show(metrics[key])} is not a share between 0 and 1")
        n_tasks = metrics.get("n_tasks")
        if n_tasks is not None and not (isinstance(n_tasks, int) and not isinstance(n_tasks, bool) and n_tasks >= 0):
            problems.append(f"metrics: n_tasks {_show(n_tasks)} is not a count of tasks")
        problems += _difficulty_problems(metrics)
    cost = record.get("cost")
    if isinstance(cost, dict):
        flops, per_step, steps = cost.get("train_flops"), cost.get("train_flops_per_step"), cost.get("train_steps")
        if all(map(is_number, (flops, per_step, steps))) and \
                abs(flops - per_step * steps) > 1e-6 * max(abs(flops), abs(per_step * steps)):
            problems.append(f"cost: train_flops {_show(flops)} is not train_flops_per_step {_show(per_step)} "
                            f"times train_steps {_show(steps)}")
    return problems


def _difficulty_problems(metrics: dict[str, Any]) -> list[str]:
    """Difficulty buckets (``metrics.by_difficulty``) whose counts disagree, that repeat a name,
    or that hold more examples or right answers than the test split they part."""
    difficulty = metrics.get("by_difficulty")
    if not (isinstance(difficulty, dict) and isinstance(difficulty.get("buckets"), list)):
        return []
    problems = []
    buckets = [b for b in difficulty["buckets"] if isinstance(b, dict)]
    for b in buckets:
        problems += _share_problems(f"metrics/by_difficulty bucket {printable(b.get('name'), 40)!r}: ", b)
    names = [b.get("name") for b in buckets]
    repeated = sorted({str(name) for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"metrics/by_difficulty: bucket {printable(repeated[0], 40)!r} appears more than once")
    # the buckets part the test split: together they hold no more examples, nor right answers
    for key in ("n_test_examples", "exact_correct"):
        total = sum(b[key] for b in buckets if is_number(b.get(key)))
        whole = metrics.get(key)
        if is_number(whole) and total > whole:
            problems.append(f"metrics/by_difficulty: the buckets' {key} sum to {_show(total)}, "
                            f"more than the test split's {_show(whole)}")
    return problems


def _outcome_problems(metrics: dict[str, Any]) -> list[str]:
    """Per-example outcomes that do not add up to the counts they come with."""
    from reasonbench.record.stats import decode_outcomes

    outcomes = metrics.get("exact_by_example")
    if not isinstance(outcomes, dict):
        return []
    try:
        n, bits = decode_outcomes(outcomes)
    except (ValueError, TypeError, KeyError) as exc:
        return [f"metrics/exact_by_example: unreadable ({printable(exc, 80)})"]
    problems = []
    if n != metrics.get("n_test_examples"):
        problems.append(f"metrics/exact_by_example: {n} outcomes for {_show(metrics.get('n_test_examples'))} test examples")
    if bits.bit_count() != metrics.get("exact_correct"):
        problems.append(f"metrics/exact_by_example: {bits.bit_count()} right, exact_correct says "
                        f"{_show(metrics.get('exact_correct'))}")
    return problems
