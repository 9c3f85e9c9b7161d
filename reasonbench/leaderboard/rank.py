"""Leaderboard rows from records: one row per task, track, model, preset, mode and settings,
its seeds aggregated; the interval each row is ranked on, the rank ranges within a track, and
the pairs of rows those ranges tell apart."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from reasonbench.leaderboard.load import Skipped, error_line, is_number
from reasonbench.leaderboard.tracks import by_track, group_by, row_key, track_sort_key
from reasonbench.util.untrusted import printable


def aggregate(records: list[dict[str, Any]], skipped: list[Skipped] | None = None,
              results: Path | None = None) -> list[dict[str, Any]]:
    """One row per (task, track, model, preset, mode, settings given beyond the preset): the seeds'
    accuracies as mean and sample std, the 95% Wilson interval pooled over every test example of
    every seed, and the cost. With ``skipped``, a group of records that cannot be made a row is left
    out and its records added there with the reason (names under ``results``); without, the error is
    raised."""
    rows = []
    for key, group in group_by(records, row_key).items():
        try:
            rows.append(_row(key, group))
        except Exception as exc:  # noqa: BLE001 (one group's records, not the leaderboard)
            if skipped is None:
                raise
            reason = f"cannot be aggregated: {error_line(exc)}"
            skipped.extend(Skipped(printable((results or Path()) / r["_file"]), reason) for r in group)
    mark_other_test_data(rows)
    rows.sort(key=lambda r: (r["task"], track_sort_key(r["track"]), -accuracy(r), r["model"], r["preset"], r["mode"],
                             r["settings"]))
    rank_rows(rows)
    return rows


def _row(key: tuple, group: list[dict[str, Any]]) -> dict[str, Any]:
    """The row of the records in ``group`` (their ``row_key`` is ``key``; put in seed order here)."""
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
    if done and all(all(is_number(r["metrics"].get(k)) for k in (*PASS_AT, "n_tasks"))
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


def mean_curve(curves: list[list[float]]) -> list[float] | None:
    """The step-wise mean of curves of one length (seeds of one row), else None."""
    if not curves or any(len(c) != len(curves[0]) for c in curves):
        return None
    return [statistics.fmean(values) for values in zip(*curves)]


def machine_text(record: dict[str, Any]) -> str:
    """Where a record ran, from its own fields: the device (and how many), and for a CPU run the
    CPU model and cores of ``provenance.cpu``."""
    cost = record["cost"]
    device = ("" if cost["device_count"] == 1 else f"{cost['device_count']} x ") + str(cost["device"])
    cpu = record["provenance"].get("cpu")
    if str(cost["device"]).startswith("cpu") and isinstance(cpu, dict) and cpu.get("model"):
        cores = cpu.get("cores")
        device += f" ({cpu['model']}" + (f", {cores} cores)" if isinstance(cores, int) else ")")
    return printable(device, 120)


def mark_other_test_data(rows: list[dict[str, Any]]) -> None:
    """Set ``test_data_differs`` on the rows that were not scored on their track's test
    examples: the track's test data is the test-split fingerprint that more of its rows carry
    than any other; a row with another, or with several over its seeds, is marked (and on a tie
    every row with a fingerprint is). Records made before the fingerprint existed are not checked."""
    for group in by_track(rows).values():
        counts = Counter(row["test_data"][0] for row in group if len(row["test_data"]) == 1).most_common(2)
        common = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else None
        for row in group:
            row["test_data_differs"] = bool(row["test_data"]) and row["test_data"] != [common]


def accuracy(row: dict[str, Any]) -> float:
    """The row's headline (mean exact accuracy, or pass@2 for ARC); rows without one (all seeds
    diverged) rank last."""
    value = row.get("headline_mean", row["exact_accuracy_mean"])
    return -1.0 if value is None else value


def rank_rows(rows: list[dict[str, Any]]) -> None:
    """Each row's ``rank`` [best, worst] within its task and track: a range where its
    ``rank_interval`` overlaps others' (``stats.rank_ranges``). Pairs are told apart from these
    ranks alone (``track_verdicts``)."""
    from reasonbench.record.stats import rank_ranges

    for group in by_track(rows).values():
        for row, rank in zip(group, rank_ranges([r["rank_interval"] for r in group])):
            row["rank"] = list(rank) if rank else None


def track_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task and track, once: its rows (indices into ``rows``) and the pairs told apart,
    [better, worse] as indices into ``rows`` (``stats.told_apart``: their rank ranges are
    disjoint); every other pair of the track is not told apart. Stored once per track, never
    copied into each row."""
    from reasonbench.record.stats import told_apart

    index = {id(row): i for i, row in enumerate(rows)}
    verdicts = []
    for (task, track_name), group in by_track(rows).items():
        ranked = sorted((r for r in group if r.get("rank")), key=lambda r: r["rank"][0])
        apart = [[index[id(row)], index[id(other)]] for i, row in enumerate(ranked) for other in ranked[i + 1:]
                 if told_apart(row["rank"], other["rank"])]
        verdicts.append({"task": task, "track": track_name, "rows": [index[id(r)] for r in group],
                         "told_apart": apart})
    return verdicts



def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats: none is as cheap or
    cheaper and as accurate or more, one of them strictly. Ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    for i in order:
        if not front or points[i][1] > points[front[-1]][1]:
            front.append(i)
    return front
