"""``reasonbench.run``: a run from Python, as ``reasonbench run`` does it on the command line
(the package re-exports it; the conformance kit calls it from here)."""

from __future__ import annotations

from typing import Any

from reasonbench.config.registry import default_preset

# Lightning and the run machinery are imported on first use: ``import reasonbench`` stays light
# (the tasks' data workers import the package).


def resolve_config(model: str, task: str, preset: str, seed: int = 0, config: list[str] | None = None,
                   overrides: dict[str, Any] | None = None):  # noqa: ANN202
    """The RunConfig ``reasonbench run`` would make of these names, preset, seed, files and overrides."""
    from reasonbench.config import resolve as cfgmod

    argv = ["--model", model, "--task", task, "--preset", preset or default_preset(), "--seed", str(seed)]
    for path in config or []:
        argv += ["--config", str(path)]
    return cfgmod.resolve(argv, prog="reasonbench", overrides=overrides)[0]


def run(model: str, task: str, preset: str | None = None, seed: int = 0, out: str = "results",
        config: list[str] | None = None, overwrite: bool = False, resume: bool = False, quiet: bool = False,
        **overrides: Any) -> dict[str, Any]:
    """Train and test like ``reasonbench run``; returns the record (also written to ``out``) and,
    unless ``quiet``, prints the summary and the record's path as the command does. An existing
    record is replaced only with ``overwrite=True``; ``resume=True`` continues an interrupted run
    (and returns a finished one's record as it is).

    Overrides use dotted keys as on the command line, e.g. ``**{"trainer.max_steps": 50}``,
    or nested dicts: ``trainer={"max_steps": 50}``."""
    from reasonbench.execution.execute import execute
    from reasonbench.execution.summary import summary

    preset = preset or default_preset()
    cfg = resolve_config(model, task, preset, seed, config, {"out": out, **overrides})
    given = [repr(model), repr(task), f"preset={preset!r}", f"seed={seed!r}", f"out={out!r}"]
    given += [f"config={config!r}"] if config else []
    given += [f"{k}={v!r}" for k, v in (("overwrite", overwrite), ("resume", resume)) if v]
    given += [f"**{overrides!r}"] if overrides else []
    record = execute(cfg, command=f"reasonbench.run({', '.join(given)})", resume=resume, overwrite=overwrite)
    if not quiet and record:
        print(f"finished already, nothing run: {record['_path']}" if record.get("_kept") else
              f"{summary(record)}\nrecord: {record['_path']}")
    return record
