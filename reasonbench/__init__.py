"""reasonbench: one protocol for small recursive reasoning models.

    import reasonbench as rb
    rb.list_models(); rb.list_tasks()
    task = rb.create_task("sudoku", preset="smoke")
    model = rb.create_model("transformer", task=task, preset="smoke", hidden_size=64)
    record = rb.run("transformer", "sudoku", preset="smoke", seed=0)
"""

from __future__ import annotations

from typing import Any

from reasonbench.util.version import __version__
from reasonbench.util.errors import UserError  # noqa: E402
from reasonbench.config.registry import default_preset  # noqa: E402
from reasonbench.config.registry import list_models, list_tasks  # noqa: E402

# The subpackage reasonbench.run loads here, before the function ``run`` below takes its name:
# Python makes a subpackage an attribute of its parent when it first loads it, so loaded later
# (by the first ``run()``) it would replace the function.
import reasonbench.run as _run_layer  # noqa: E402,F401


def _resolve(model: str, task: str, preset: str, seed: int = 0, config: list[str] | None = None,
             overrides: dict[str, Any] | None = None):  # noqa: ANN202
    from reasonbench.config import resolve as cfgmod

    argv = ["--model", model, "--task", task, "--preset", preset or default_preset(), "--seed", str(seed)]
    for path in config or []:
        argv += ["--config", str(path)]
    return cfgmod.resolve(argv, prog="reasonbench", overrides=overrides)[0]


def create_task(name: str, preset: str | None = None, **task_args: Any):
    """A task built from its preset plus overrides, its data ready."""
    from reasonbench.tools.dataops import task_from_argv

    argv = ["--task", name, "--preset", preset or default_preset()]
    task, _ = task_from_argv(argv, "reasonbench.create_task", overrides={"task": task_args})
    task.setup("fit")
    return task


def create_model(name: str, task: Any, preset: str | None = None, **model_args: Any):
    """A model for ``task`` (a name or a built task) from its preset plus overrides."""
    from reasonbench.run.build import build_model, build_task

    task_name = task if isinstance(task, str) else task.name
    cfg = _resolve(name, task_name, preset, overrides={"model": model_args})
    built = build_task(cfg) if isinstance(task, str) else task
    return build_model(cfg, built)


def run(model: str, task: str, preset: str | None = None, seed: int = 0, out: str = "results",
        config: list[str] | None = None, overwrite: bool = False, resume: bool = False, quiet: bool = False,
        **overrides: Any) -> dict[str, Any]:
    """Train and test like ``reasonbench run``; returns the record (also written to ``out``) and,
    unless ``quiet``, prints the summary and the record's path as the command does. An existing
    record is replaced only with ``overwrite=True``; ``resume=True`` continues an interrupted run
    (and returns a finished one's record as it is).

    Overrides use dotted keys as on the command line, e.g. ``**{"trainer.max_steps": 50}``,
    or nested dicts: ``trainer={"max_steps": 50}``."""
    from reasonbench.run.execute import execute
    from reasonbench.run.summary import summary

    preset = preset or default_preset()
    cfg = _resolve(model, task, preset, seed, config, {"out": out, **overrides})
    given = [repr(model), repr(task), f"preset={preset!r}", f"seed={seed!r}", f"out={out!r}"]
    given += [f"config={config!r}"] if config else []
    given += [f"{k}={v!r}" for k, v in (("overwrite", overwrite), ("resume", resume)) if v]
    given += [f"**{overrides!r}"] if overrides else []
    record = execute(cfg, command=f"reasonbench.run({', '.join(given)})", resume=resume, overwrite=overwrite)
    if not quiet and record:
        print(f"finished already, nothing run: {record['_path']}" if record.get("_kept") else
              f"{summary(record)}\nrecord: {record['_path']}")
    return record


__all__ = ["__version__", "UserError", "list_models", "list_tasks", "create_task", "create_model", "run"]
