"""``reasonbench run`` and ``reasonbench eval``: train and/or test a model into a result record."""

from __future__ import annotations

import shlex
import sys

RUN_SUMMARY = "Train, test and write a result record (--resume continues an interrupted run)"
EVAL_SUMMARY = "Test a checkpoint and write a result record"


def run_command(argv: list[str], mode: str) -> int:
    """``mode`` "train" (``reasonbench run``) or "eval" (the checkpoint's stored configuration
    first, the command line over it); ``--print_config`` prints the resolved configuration."""
    from reasonbench.config import resolve as config

    loaded = None
    if mode == "eval":
        from reasonbench.execution.build import checkpoint_config_argv

        stored_config, loaded = checkpoint_config_argv(argv)
        argv = stored_config + argv
    cfg, print_config = config.resolve(argv, prog="reasonbench " + ("run" if mode == "train" else mode))
    if print_config:
        print(config.dump(cfg.config), end="")
        return 0
    from reasonbench.execution.execute import execute
    from reasonbench.execution.summary import summary

    record = execute(cfg, mode=mode, command=shlex.join(["reasonbench", *sys.argv[1:]]),
                     loaded_checkpoint=loaded, resume=cfg.resume, overwrite=cfg.overwrite)
    if record.get("_kept"):
        print(f"finished already, nothing run: {record['_path']} (status {record['status']})")
    elif record:
        print(summary(record))
        for depth, one in record.get("_depths", []):  # one test pass read several depths
            metrics, flops = one["metrics"] or {}, one["cost"]["flops_per_example_forward"]["mean"]
            print(f"depth {depth:>3}: exact {100 * metrics.get('exact_accuracy', 0):6.2f}%, "
                  f"forward FLOPs / example {flops:.3g}, record: {one['_path']}")
        if not record.get("_depths"):
            print(f"record: {record['_path']}")
    return 0


def train_command(argv: list[str]) -> int:
    """``reasonbench run``."""
    return run_command(argv, "train")


def eval_command(argv: list[str]) -> int:
    """``reasonbench eval``."""
    return run_command(argv, "eval")
