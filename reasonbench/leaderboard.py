"""Records -> leaderboard tables. Reads every ``*.json`` record under a folder, validates it,
aggregates seeds per (task, preset, model, mode) and writes ``leaderboard.json`` and
``leaderboard.md``. Smoke runs and diverged runs never appear as accuracies."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .metrics import wilson_interval
from .record import read_record, write_atomic

HIDDEN_PRESETS = {"smoke"}


def collect(results: Path) -> list[dict[str, Any]]:
    """Every valid record under ``results`` (an invalid one raises UserError naming it)."""
    return [read_record(p) for p in sorted(results.rglob("*.json"))]


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["preset"] in HIDDEN_PRESETS:
            continue
        groups[(r["task"], r["preset"], r["model"], r["mode"])].append(r)
    rows = []
    for (task, preset, model, mode), group in sorted(groups.items()):
        done = [r for r in group if r["status"] == "completed"]
        accs = [r["metrics"]["exact_accuracy"] for r in done]
        correct = sum(r["metrics"]["exact_correct"] for r in done)
        n = sum(r["metrics"]["n_test_examples"] for r in done)
        cost = done[0]["cost"] if done else group[0]["cost"]
        rows.append({
            "task": task, "preset": preset, "model": model, "mode": mode,
            "seeds": sorted(r["seed"] for r in done), "diverged": len(group) - len(done),
            "exact_accuracy_mean": statistics.fmean(accs) if accs else None,
            "exact_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
            # pooled over all test examples of all seeds
            "exact_accuracy_ci95": list(wilson_interval(correct, n)) if n else None,
            "token_accuracy_mean": statistics.fmean(r["metrics"]["token_accuracy"] for r in done) if done else None,
            "params": cost["params"], "params_extra": cost["params_extra"],
            "flops_per_example_forward": cost["flops_per_example_forward"]["mean"],
            "train_flops": cost["train_flops"],
            "device_hours": statistics.fmean(r["cost"]["device_hours"] for r in group),
            "device": cost["device"],
            "git_commit": (done or group)[0]["provenance"]["git_commit"],
            "finished": max(r["provenance"]["finished"] for r in group),
        })
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for task, preset in sorted({(r["task"], r["preset"]) for r in rows}):
        lines += [f"## {task} / {preset}", "",
                  "| model | params | FLOPs/example | exact % (mean +- std) | 95% CI | seeds | device-hours | device |",
                  "|---|---:|---:|---:|---|---:|---:|---|"]
        ranked = sorted((r for r in rows if (r["task"], r["preset"]) == (task, preset)),
                        key=lambda r: -(r["exact_accuracy_mean"] or -1))
        for r in ranked:
            std = f" +- {_pct(r['exact_accuracy_std'])}" if r["exact_accuracy_std"] is not None else ""
            ci = "-" if r["exact_accuracy_ci95"] is None else f"{_pct(r['exact_accuracy_ci95'][0])}-{_pct(r['exact_accuracy_ci95'][1])}"
            extra = f" (+{r['params_extra']:,})" if r["params_extra"] else ""
            seeds = f"{len(r['seeds'])}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
            lines.append(f"| {r['model']}{' (eval)' if r['mode'] == 'eval' else ''} | {r['params']:,}{extra} | "
                         f"{r['flops_per_example_forward']:.3g} | {_pct(r['exact_accuracy_mean'])}{std} | {ci} | "
                         f"{seeds} | "
                         f"{r['device_hours']:.3g} | {r['device']} |")
        lines.append("")
    return "\n".join(lines) if lines else "No results yet (smoke runs are not listed).\n"


def build(results: Path, out: Path) -> list[dict[str, Any]]:
    rows = aggregate(collect(results))
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "leaderboard.json", json.dumps(rows, indent=2) + "\n")
    write_atomic(out / "leaderboard.md", "# reasonbench leaderboard\n\n" + markdown(rows))
    return rows
