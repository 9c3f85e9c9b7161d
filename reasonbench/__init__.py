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
from reasonbench.execution.python_api import resolve_config, run  # noqa: E402


def create_task(name: str, preset: str | None = None, **task_args: Any):
    """A task built from its preset plus overrides, its data ready."""
    from reasonbench.tools.dataops import task_from_argv

    argv = ["--task", name, "--preset", preset or default_preset()]
    task, _ = task_from_argv(argv, "reasonbench.create_task", overrides={"task": task_args})
    task.setup("fit")
    return task


def create_model(name: str, task: Any, preset: str | None = None, **model_args: Any):
    """A model for ``task`` (a name or a built task) from its preset plus overrides."""
    from reasonbench.execution.build import build_model, build_task

    task_name = task if isinstance(task, str) else task.name
    cfg = resolve_config(name, task_name, preset, overrides={"model": model_args})
    built = build_task(cfg) if isinstance(task, str) else task
    return build_model(cfg, built)


__all__ = ["__version__", "UserError", "list_models", "list_tasks", "create_task", "create_model", "run"]
