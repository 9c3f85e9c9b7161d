"""Result records -> leaderboard rows. A record is data from outside: each one is read only if
it is a regular file (a FIFO or a device is never opened) and at most 16 MiB, parsed strictly (no
NaN or infinities), validated against the record schema and checked for what a schema cannot say
(``consistency_problems``: counts, accuracies and intervals that agree, numbers of a measurable
size); a bad one is skipped with a one-line reason, the rest are used."""

from __future__ import annotations

import json
import math
import shlex
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reasonbench.record import schema as rec
from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import MAX_JSON_BYTES, loads_json, read_bytes
from reasonbench.util.untrusted import printable as one_line  # noqa: F401  (pages, plots and reported print with it)

MAX_RECORD_BYTES = MAX_JSON_BYTES

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
        noise = compute.get("noise")
        return (f"{base}{DEPTH_TRACK_SEPARATOR}depth {compute.get('depth') or depth or compute.get('trained_depth')} x "
                f"breadth {breadth} ({compute.get('select')}" + (f", noise {noise:g})" if noise not in (None, 1.0)
                                                                else ")"))
    if record["mode"] == "eval" and depth:
        # trained checkpoints evaluated deeper than they were trained: a test-time depth study
        return f"{base}{DEPTH_TRACK_SEPARATOR}{depth} steps"
    return base


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _share_problems(where: str, part: dict[str, Any]) -> list[str]:
    """Counts and the accuracy and interval made of them, in one part of the metrics (the test
    split, the OOD split, a difficulty bucket)."""
    problems = []
    n, correct = part.get("n_test_examples"), part.get("exact_correct")
    accuracy = part.get("exact_accuracy")
    if _is_number(n) and _is_number(correct):  # integers, or floats the schema takes for them (5.0)
        if correct > n:
            problems.append(f"{where}exact_correct {_show(correct)} is larger than n_test_examples {_show(n)}")
        elif _is_number(accuracy):
            if n == 0 and accuracy != 0:
                problems.append(f"{where}exact_accuracy {_show(accuracy)} of no test examples")
            elif n and abs(accuracy * n - correct) >= 0.5:  # the accuracy names another count
                problems.append(f"{where}exact_accuracy {_show(accuracy)} is not {_show(correct)} of {_show(n)} "
                                f"({correct / n:.6g})")
    # every share with an interval beside it (exact_accuracy_ci95, and tasks' own: valid_path_ci95)
    for key, interval in part.items():
        share = part.get(key.removesuffix("_ci95"))
        if not key.endswith("_ci95") or not _is_number(share):
            continue
        if not (isinstance(interval, list) and len(interval) == 2 and all(map(_is_number, interval))):
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
    if isinstance(halted, list) and all(map(_is_number, halted)) and math.fsum(halted) > 1 + SHARE_SLACK:
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
        problems.append(f"not JSON data: {one_line(exc, 100)}")
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
            if _is_number(metrics[key]) and not 0 <= metrics[key] <= 1:
                problems.append(f"metrics: {key} {_show(metrics[key])} is not a share between 0 and 1")
        n_tasks = metrics.get("n_tasks")
        if n_tasks is not None and not (isinstance(n_tasks, int) and not isinstance(n_tasks, bool) and n_tasks >= 0):
            problems.append(f"metrics: n_tasks {_show(n_tasks)} is not a count of tasks")
        difficulty = metrics.get("by_difficulty")
        if isinstance(difficulty, dict) and isinstance(difficulty.get("buckets"), list):
            buckets = [b for b in difficulty["buckets"] if isinstance(b, dict)]
            for b in buckets:
                problems += _share_problems(f"metrics/by_difficulty bucket {one_line(b.get('name'), 40)!r}: ", b)
            names = [b.get("name") for b in buckets]
            repeated = sorted({str(name) for name in names if names.count(name) > 1})
            if repeated:
                problems.append(f"metrics/by_difficulty: bucket {one_line(repeated[0], 40)!r} appears more than once")
            # the buckets part the test split: together they hold no more examples, nor right answers
            for key in ("n_test_examples", "exact_correct"):
                total = sum(b[key] for b in buckets if _is_number(b.get(key)))
                whole = metrics.get(key)
                if _is_number(whole) and total > whole:
                    problems.append(f"metrics/by_difficulty: the buckets' {key} sum to {_show(total)}, "
                                    f"more than the test split's {_show(whole)}")
    cost = record.get("cost")
    if isinstance(cost, dict):
        flops, per_step, steps = cost.get("train_flops"), cost.get("train_flops_per_step"), cost.get("train_steps")
        if all(map(_is_number, (flops, per_step, steps))) and \
                abs(flops - per_step * steps) > 1e-6 * max(abs(flops), abs(per_step * steps)):
            problems.append(f"cost: train_flops {_show(flops)} is not train_flops_per_step {_show(per_step)} "
                            f"times train_steps {_show(steps)}")
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
        return [f"metrics/exact_by_example: unreadable ({one_line(exc, 80)})"]
    problems = []
    if n != metrics.get("n_test_examples"):
        problems.append(f"metrics/exact_by_example: {n} outcomes for {_show(metrics.get('n_test_examples'))} test examples")
    if bits.bit_count() != metrics.get("exact_correct"):
        problems.append(f"metrics/exact_by_example: {bits.bit_count()} right, exact_correct says "
                        f"{_show(metrics.get('exact_correct'))}")
    return problems


def read_untrusted(path: Path) -> bytes:
    """The bytes of the record file at ``path`` (``untrusted.read_bytes``: a regular file only,
    at most MAX_RECORD_BYTES); ValueError or OSError when it is not one to read."""
    return read_bytes(path, MAX_RECORD_BYTES)


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
            skipped.append(Skipped(one_line(path), one_line(str(exc).removeprefix(f"{name}: "))))
            continue
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(one_line(path), one_line(getattr(exc, "strerror", None) or exc)))
            continue
        except Exception as exc:  # noqa: BLE001 (what no check above foresaw: this record's, not the site's)
            skipped.append(Skipped(one_line(path), f"cannot be read: {error_line(exc)}"))
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


def aggregate(records: list[dict[str, Any]], skipped: list[Skipped] | None = None,
              results: Path | None = None) -> list[dict[str, Any]]:
    """One row per (task, track, model, preset, mode, settings given beyond the preset): the seeds'
    accuracies as mean and sample std, the 95% Wilson interval pooled over every test example of
    every seed, and the cost. With ``skipped``, a group of records that cannot be made a row is left
    out and its records added there with the reason (names under ``results``); without, the error is
    raised."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        name = track(r)
        if name is not None:
            groups[(r["task"], name, r["model"], r["preset"], r["mode"], settings_text(r))].append(r)
    rows = []
    for key, group in groups.items():
        try:
            rows.append(_row(key, group))
        except Exception as exc:  # noqa: BLE001 (one group's records, not the leaderboard)
            if skipped is None:
                raise
            reason = f"cannot be aggregated: {error_line(exc)}"
            skipped.extend(Skipped(one_line((results or Path()) / r["_file"]), reason) for r in group)
    mark_other_test_data(rows)
    rows.sort(key=lambda r: (r["task"], track_sort_key(r["track"]), -accuracy(r), r["model"], r["preset"], r["mode"],
                             r["settings"]))
    rank_rows(rows)
    return rows


def rank_rows(rows: list[dict[str, Any]]) -> None:
    """Each row's ``rank`` [best, worst] within its task and track: a range where its
    ``rank_interval`` overlaps others' (``stats.rank_ranges``). Pairs are told apart from these
    ranks alone (``track_verdicts``)."""
    from reasonbench.record.stats import rank_ranges

    for group in _tracks(rows).values():
        for row, rank in zip(group, rank_ranges([r["rank_interval"] for r in group])):
            row["rank"] = list(rank) if rank else None


def _tracks(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    tracks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        tracks[(row["task"], row["track"])].append(row)
    return tracks


def track_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task and track, once: its rows (indices into ``rows``) and the pairs told apart,
    [better, worse] as indices into ``rows`` (``stats.told_apart``: their rank ranges are
    disjoint); every other pair of the track is not told apart. Stored once per track, never
    copied into each row."""
    from reasonbench.record.stats import told_apart

    index = {id(row): i for i, row in enumerate(rows)}
    verdicts = []
    for (task, track_name), group in _tracks(rows).items():
        ranked = sorted((r for r in group if r.get("rank")), key=lambda r: r["rank"][0])
        apart = [[index[id(row)], index[id(other)]] for i, row in enumerate(ranked) for other in ranked[i + 1:]
                 if told_apart(row["rank"], other["rank"])]
        verdicts.append({"task": task, "track": track_name, "rows": [index[id(r)] for r in group],
                         "told_apart": apart})
    return verdicts


def error_line(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    return one_line(f"{type(exc).__name__}: {exc}", 200)


def _row(key: tuple, group: list[dict[str, Any]]) -> dict[str, Any]:
    from reasonbench.record.stats import rank_interval, wilson_interval

    task, track_name, model, preset, mode, settings = key
    group.sort(key=lambda r: (r["seed"], r["_file"]))
    done = [r for r in group if r["status"] == "completed"]
    headline = headline_metric(done)
    first = (done or group)[0]
    accs = [r["metrics"]["exact_accuracy"] for r in done]
    correct = sum(r["metrics"]["exact_correct"] for r in done)
    n = sum(r["metrics"]["n_test_examples"] for r in done)
    train_flops = [r["cost"]["train_flops"] for r in done if r["cost"]["train_flops"] is not None]
    commits = sorted({r["provenance"]["git_commit"] for r in group} - {None})
    return {
        "task": task, "track": track_name, "model": model, "preset": preset, "mode": mode, "settings": settings,
        "seeds": [r["seed"] for r in done], "diverged": len(group) - len(done),
        "exact_accuracy_mean": statistics.fmean(accs) if accs else None,
        "exact_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
        "exact_accuracy_ci95": list(wilson_interval(correct, n)) if n else None,
        # the one interval that ranks the row, draws its error bar and tells it apart from others
        "rank_interval": list(interval) if (interval := rank_interval(*headline_counts(done, headline))) else None,
        # what ranks the row (ARC: pass@2) and its mean over seeds; rank_interval is of this mean
        "headline": headline,
        "headline_mean": statistics.fmean(r["metrics"][headline] for r in done) if done else None,
        **{f"{k}_mean": statistics.fmean(r["metrics"][k] for r in done) for k in PASS_AT if headline == "pass@2"},
        "exact_correct": correct, "n_test_examples": n,
        "token_accuracy_mean": statistics.fmean(r["metrics"]["token_accuracy"] for r in done) if done else None,
        "params": first["cost"]["params"], "params_extra": first["cost"]["params_extra"],
        "flops_per_example_forward": first["cost"]["flops_per_example_forward"]["mean"],
        "train_flops": statistics.fmean(train_flops) if train_flops else None,
        "device_hours": statistics.fmean(r["cost"]["device_hours"] for r in group),
        "device": first["cost"]["device"], "device_count": first["cost"]["device_count"],
        "machines": sorted({machine_text(r) for r in group}),
        "git_commit": commits[0] if len(commits) == 1 else None,
        "git_commits": commits,
        "finished": max(r["provenance"]["finished"] for r in group),
        "files": [r["_file"] for r in group],
        "test_data": sorted({r["provenance"].get("test_data_fingerprint") for r in done} - {None}),
        **depth_and_difficulty(done),
    }


PASS_AT = ("pass@2", "pass@1")


def headline_metric(done: list[dict[str, Any]]) -> str:
    """What ranks a row: ``pass@2`` where every seed's record scored whole tasks (ARC: the
    papers' figure), else ``exact_accuracy``."""
    if done and all(all(_is_number(r["metrics"].get(k)) for k in (*PASS_AT, "n_tasks"))
                    and r["metrics"]["n_tasks"] > 0 for r in done):
        return "pass@2"
    return "exact_accuracy"


def headline_counts(done: list[dict[str, Any]], headline: str) -> tuple[list[float], list[int]]:
    """Per seed: what it got right of the headline and out of how many (tasks for pass@2, whose
    partial credit makes the count fractional; test examples for exact accuracy)."""
    if headline == "pass@2":
        return ([r["metrics"]["pass@2"] * r["metrics"]["n_tasks"] for r in done],
                [r["metrics"]["n_tasks"] for r in done])
    return [r["metrics"]["exact_correct"] for r in done], [r["metrics"]["n_test_examples"] for r in done]


def machine_text(record: dict[str, Any]) -> str:
    """Where a record ran, from its own fields: the device (and how many), and for a CPU run the
    CPU model and cores of ``provenance.cpu``."""
    cost = record["cost"]
    device = ("" if cost["device_count"] == 1 else f"{cost['device_count']} x ") + str(cost["device"])
    cpu = record["provenance"].get("cpu")
    if str(cost["device"]).startswith("cpu") and isinstance(cpu, dict) and cpu.get("model"):
        cores = cpu.get("cores")
        device += f" ({cpu['model']}" + (f", {cores} cores)" if isinstance(cores, int) else ")")
    return one_line(device, 120)


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
    """The row's headline (mean exact accuracy, or pass@2 for ARC); rows without one (all seeds
    diverged) rank last."""
    value = row.get("headline_mean", row["exact_accuracy_mean"])
    return -1.0 if value is None else value


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats: none is as cheap or
    cheaper and as accurate or more, one of them strictly. Ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    for i in order:
        if not front or points[i][1] > points[front[-1]][1]:
            front.append(i)
    return front
