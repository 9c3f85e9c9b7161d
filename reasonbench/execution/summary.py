"""The short table ``reasonbench run`` and ``eval`` print for a record, and its status in words."""

from __future__ import annotations

from typing import Any


PRESET_MEANING = {
    "smoke": "a seconds-long check that everything runs; its accuracy means nothing (--preset mini: numbers that "
             "mean something)",
    "mini": "small settings sized for a CPU: shows that a model learns, not its paper figure",
    "paper": "the paper's settings and data, sized for GPUs",
    "tiny": "a paper's small variant on the paper data",
}


def status_text(record: dict[str, Any]) -> str:
    """A completed record's status in words: "completed" only for weights trained the planned
    steps; a run the budget stopped, or an evaluation of unfinished weights, says so."""
    training = record.get("training") or {}
    steps, planned = training.get("steps"), training.get("planned_steps")
    of = f" of {planned:,}" if planned is not None else ""
    if training.get("stopped_by") == "budget":
        return f"stopped by the budget at step {steps:,}{of} (the record goes to the budget track)"
    if training.get("finished") is False:
        what = "evaluated weights from" if record["mode"] == "eval" else "stopped at"
        return f"{what} step {steps:,}{of}: training unfinished (the record goes to a partial track)"
    if record["mode"] == "eval" and steps is not None:
        return f"completed (weights trained {steps:,}{of} steps)"
    return record["status"]


def summary(record: dict[str, Any]) -> str:
    """A short table for the terminal."""
    m, c = record["metrics"] or {}, record["cost"]
    if record["status"] != "completed":
        return (f"{record['model']} / {record['task']} / {record['preset']} (seed {record['seed']}): "
                f"{record['status']}: {record['status_detail']}")
    lo, hi = m.get("exact_accuracy_ci95", [0, 0])
    rows = [("model / task / preset", f"{record['model']} / {record['task']} / {record['preset']} (seed {record['seed']})"),
            ("status", status_text(record))]
    if record["preset"] in PRESET_MEANING:
        rows.append(("preset means", PRESET_MEANING[record["preset"]]))
    if record["provenance"].get("model_preset") is False:
        rows.append(("model settings", f"the model's own defaults: it has no '{record['preset']}' preset for "
                                       f"{record['task']} (the data is the task's '{record['preset']}' preset)"))
    if record.get("_data"):
        rows.append(("data", record["_data"]))
    if m.get("pass@2") is not None:
        rows.append(("tasks solved", f"pass@1 {100 * m['pass@1']:.1f}%, pass@2 {100 * m['pass@2']:.1f}% "
                                     f"of {m.get('n_tasks', '?')} tasks (below: per test variant)"))
    rows += [
        ("exact accuracy", f"{100 * m.get('exact_accuracy', 0):.2f}%  (95% CI {100 * lo:.1f}-{100 * hi:.1f}%, "
                           f"n={m.get('n_test_examples', 0)})"),
        ("token accuracy", f"{100 * m.get('token_accuracy', 0):.2f}%"),
    ]
    ood = m.get("ood") or {}
    if ood.get("n_test_examples"):
        rows.append(("out of distribution", f"{100 * ood['exact_accuracy']:.2f}% exact (n={ood['n_test_examples']}: "
                                            f"{ood.get('definition') or '?'})"))
    compute = record.get("test_time_compute") or {}
    if compute.get("breadth", 1) > 1:
        oracle = m.get("oracle_any_trajectory_exact")
        rows.append(("test-time compute", f"depth {compute['depth']} x breadth {compute['breadth']}, "
                                          f"answer by {compute['select']}"
                     + (f"; any trajectory right: {100 * oracle:.2f}% (reads the labels)" if oracle is not None else "")))
    if m.get("mean_steps") is not None:
        rows.append(("mean reasoning steps", f"{m['mean_steps']:.2f}"))
    if m.get("halting_accuracy") is not None:
        rows.append(("halting accuracy", f"{100 * m['halting_accuracy']:.2f}%"))
    rows += [
        ("parameters", f"{c['params']:,}" + (f" (+{c['params_extra']:,} extra)" if c["params_extra"] else "")),
        ("forward FLOPs / example", f"{c['flops_per_example_forward']['mean']:.3g}"),
    ]
    if c.get("train_flops"):
        rows.append(("training FLOPs", f"{c['train_flops']:.3g} over {c['train_steps']} steps"))
    rows += [
        ("train / eval time", f"{c['train_seconds']:.1f} s / {c['eval_seconds']:.1f} s on {c['device']}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
