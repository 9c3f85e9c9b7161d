"""``reasonbench list`` and ``reasonbench info``: what is installed, and a model's size on a task."""

from __future__ import annotations

import dataclasses

from reasonbench.config.commandline import command_parser, parse

LIST_SUMMARY = "Every installed model and task, one line each"
INFO_SUMMARY = "A model's parameters on a task (instant); --flops: forward FLOPs per example"


def list_command(argv: list[str]) -> int:
    """Every registered model and task: its name, whether it loads, its class and its origin."""
    from reasonbench.config import registry

    parse(command_parser("reasonbench list", LIST_SUMMARY + ": its name, whether it loads (a broken plugin "
                         "is marked, not fatal), its class and where it comes from."), argv)

    for kind in ("model", "task"):
        for name, entry in registry.entries(kind).items():
            origin = "built-in" if entry.builtin else f"from {entry.dist}"
            status = "conflict: " + entry.conflict if entry.conflict else entry.status()
            print(f"{kind:5s}  {name:14s}  {status:6s}  {entry.target} ({origin})")
            for loser in entry.shadowed:
                print(f"{kind:5s}  {name:14s}  ignored: duplicate name from {loser}; the built-in wins")
    return 0


def info_command(argv: list[str]) -> int:
    """A model's parameter count on a task from shapes alone (no data built); with ``--flops``
    its forward FLOPs per example on a synthetic batch."""
    import torch

    from reasonbench.config import resolve as config
    from reasonbench.record import measure
    from reasonbench.execution.build import build_model, make_task
    from reasonbench.execution.trainer import quiet_lightning

    cfg, _ = config.resolve(argv, prog="reasonbench info")
    quiet_lightning()
    task = make_task(cfg)
    meta, exact_ids = task.planned_metadata()
    with torch.device("meta"):  # shapes only: instant even at paper size, no data built
        params, extra = measure.count_parameters(build_model(cfg, task, meta))
    own = config.model_preset_file(cfg.model, cfg.task, cfg.preset, cfg.model_cls) is not None
    settings = "" if own else ": none for this task, the model's own defaults"
    print(f"model       {cfg.model} (preset {cfg.preset}{settings})")
    print(f"task        {cfg.task}: vocab {meta.vocab_size}, length {meta.seq_len}, "
          f"{'' if exact_ids else 'at most '}{meta.num_puzzle_ids:,} puzzle ids")
    print(f"parameters  {params:,}")
    print(f"extra       {'' if exact_ids else 'at most '}{extra:,} (puzzle embeddings and other per-puzzle state)")
    if not cfg.flops:
        print("forward     (add --flops to count FLOPs per example on a synthetic batch of the task's shape)")
        return 0
    torch.manual_seed(cfg.seed)
    # no data is built or fetched: a forward pass costs the same on any ids of the task's shape
    # (the model's own halting aside), and the per-puzzle table's rows do not change it, so one
    # row spares a paper-size allocation
    model = build_model(cfg, task, dataclasses.replace(meta, num_puzzle_ids=1))
    uniform = getattr(model, "uniform_eval_cost", False)
    examples = 1 if uniform else cfg.measure.flops_examples
    flops = measure.forward_flops_per_example(model, measure.synthetic_split(meta, examples, cfg.seed), examples)
    counted = f"{flops.examples} synthetic example{'s' if flops.examples != 1 else ''} of length {meta.seq_len}"
    print(f"forward     {flops.mean:,.0f} FLOPs per example (mean; p95 {flops.p95:,.0f}; {counted}, untrained weights)")
    if not uniform:
        print("            this model's cost depends on the data: a run's record counts it on the test examples")
    return 0
