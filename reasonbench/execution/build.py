"""A run's objects from its resolved config: the task, the model (refused in one line when it
cannot fit in memory), the weights an evaluation loads and the config its checkpoint holds, and
the test-time depth and breadth the test pass runs at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from reasonbench.config.resolve import RunConfig, collapse_whitespace
from reasonbench.model.module import ReasoningModule
from reasonbench.model.testtime import TestTimeCompute
from reasonbench.execution.checkpoints import RUN_KEY, load_checkpoint
from reasonbench.tasks.base import ReasoningTask, TaskMetadata
from reasonbench.util.errors import UserError


def make_task(cfg: RunConfig) -> ReasoningTask:
    """The task object, its data not built yet."""
    try:
        return cfg.task_cls(**cfg.task_args)
    except (TypeError, ValueError) as exc:
        raise UserError(collapse_whitespace(exc)) from None


def build_task(cfg: RunConfig) -> ReasoningTask:
    task = make_task(cfg)
    task.setup("fit")
    return task


def build_model(cfg: RunConfig, task: ReasoningTask, metadata: TaskMetadata | None = None) -> ReasoningModule:
    """The model for ``cfg`` on ``task``. A model too large for this machine is a one-line
    UserError naming its size settings: measured first on the meta device (shapes only, no
    memory), and an allocation that fails all the same is caught too."""
    from reasonbench.tasks.base import physical_memory

    metadata = metadata or task.metadata
    sizes = sorted((v, k) for k, v in cfg.model_args.items() if isinstance(v, int) and not isinstance(v, bool))
    largest = f"the largest size setting: --model.{sizes[-1][1]} {sizes[-1][0]:,}" if sizes else "see the --model.* options"

    def too_large(why: str) -> UserError:
        return UserError(f"model {cfg.model} too large: {why} ({largest})")

    try:
        memory = physical_memory()
        if memory and torch.empty(0).device.type != "meta":  # `info` builds on the meta device itself
            with torch.device("meta"):
                shapes = cfg.model_cls(metadata=metadata, optim=cfg.optim, **cfg.model_args)
            size = sum(t.numel() * t.element_size() for t in (*shapes.parameters(), *shapes.buffers()))
            del shapes
            if size > memory:
                raise too_large(f"its weights alone take {size / 2**30:,.0f} GiB; this machine has "
                                f"{memory / 2**30:,.0f} GiB of memory")
        model = cfg.model_cls(metadata=metadata, optim=cfg.optim, **cfg.model_args)
    except (TypeError, ValueError) as exc:
        raise UserError(collapse_whitespace(exc)) from None
    except MemoryError:
        raise too_large("out of memory while allocating its weights") from None
    except RuntimeError as exc:  # torch: "can't allocate memory", "out of memory", "size ... overflowed"
        if not any(word in str(exc).lower() for word in ("allocate", "out of memory", "overflow")):
            raise
        raise too_large(f"allocating its weights failed ({collapse_whitespace(exc)[:160]})") from None
    return model


def checkpoint_config_argv(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """For ``eval``: the model settings (and preset, seed) stored in a reasonbench checkpoint
    (final.pt, final.safetensors, or a training checkpoint's ``reasonbench`` entry), as a
    leading ``--config``, so a checkpoint evaluates without retyping its architecture; flags
    given on the command line still win. Without ``--task``, the task it was trained on, with
    the settings it was trained with (its own data included). Also returns the loaded
    checkpoint, so that ``execute`` need not read it a second time."""
    path = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--checkpoint"),
                next((a.split("=", 1)[1] for a in argv if a.startswith("--checkpoint=")), None))
    if path is None:
        return [], None
    loaded = load_checkpoint(path)
    loaded["_path"] = path
    stored = loaded.get("config")
    if stored is None and isinstance(loaded.get(RUN_KEY), dict):  # a Lightning .ckpt written by a run
        stored = loaded[RUN_KEY].get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        return [], loaded
    from reasonbench.util.untrusted import MAX_DEPTH, depth

    if depth(stored) > MAX_DEPTH:  # read from a file: never handed on nested beyond any real config
        raise UserError(f"checkpoint {path}: its stored config is nested too deeply (more than {MAX_DEPTH} levels)")
    from reasonbench.config.resolve import _normalise_argv, _scan_names

    asked_names = _scan_names(_normalise_argv(argv)[0])
    trained, asked = stored["model"].get("name"), asked_names.get("model")
    if trained and asked and trained != asked:  # its settings would not even parse for another model
        raise UserError(f"checkpoint {path} holds a {trained} model, not {asked}: "
                        f"use --model {trained} (or leave --model out)")
    keep = {k: stored[k] for k in ("preset", "seed") if k in stored}
    keep["model"] = stored["model"]
    if "task" not in asked_names and isinstance(stored.get("task"), dict) and "name" in stored["task"]:
        keep["task"] = stored["task"]
    return ["--config", json.dumps(keep)], loaded


def load_eval_weights(model: ReasoningModule, cfg: RunConfig,
                      loaded: dict[str, Any] | None) -> tuple[Path, dict[str, Any]]:
    """Put ``cfg.checkpoint``'s weights (the EMA ones where it has them) into ``model``; returns
    the checkpoint's path and what was read from it."""
    if not cfg.checkpoint:
        raise UserError("reasonbench eval: --checkpoint is required")
    if loaded is None or loaded.get("_path") != cfg.checkpoint:
        loaded = load_checkpoint(cfg.checkpoint)
    state = loaded["state_dict"]
    if isinstance(loaded.get("ema_state"), dict):
        # a Lightning checkpoint of an EMA run: the averaged weights are the model
        state = {**state, **loaded["ema_state"]}
    table = state.get("puzzle_embedding.weight")
    own = model.state_dict().get("puzzle_embedding.weight")
    if table is not None and own is not None and table.shape[0] != own.shape[0]:
        # identifiers number one data build's puzzle variants: another build cannot reuse them
        raise UserError(f"checkpoint {cfg.checkpoint} has {table.shape[0]:,} puzzle identifiers, this "
                        f"{cfg.task} build has {own.shape[0]:,}: evaluate on the data build it was trained on")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        lines = str(exc).splitlines()
        raise UserError(f"checkpoint {cfg.checkpoint} does not fit model {cfg.model}: "
                        f"{collapse_whitespace(lines[1] if len(lines) > 1 else exc)}") from None
    if missing or unexpected:
        raise UserError(f"checkpoint {cfg.checkpoint} does not fit model {cfg.model}: "
                        f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return Path(cfg.checkpoint), loaded


def configure_test_time(cfg: RunConfig, model: ReasoningModule) -> None:
    """Set the test-time depth (``--eval-depth``) and breadth (``--breadth``, ``--select``,
    ``--breadth-seed``, ``--breadth-noise``) the test pass runs at. Breadth needs a latent
    state to start from elsewhere: a model without one refuses it."""
    if cfg.eval_max_steps is not None and not hasattr(model, "eval_max_steps"):
        raise UserError(f"option --eval-depth: model {cfg.model} has no reasoning steps to extend")
    if not hasattr(model, "configure_test_time"):
        if cfg.eval_breadth != 1:
            raise UserError(f"option --breadth: model {cfg.model} has no latent state to start trajectories from "
                            f"(test-time breadth needs a recursive model); use --breadth 1")
        return
    if cfg.eval_depths and not (hasattr(model, "reads_depths_in_one_pass") and model.reads_depths_in_one_pass()):
        raise UserError(f"option --eval-depth: model {cfg.model} builds its evaluation its own way and cannot be "
                        f"read at several depths in one pass; evaluate one depth at a time")
    model.configure_test_time(TestTimeCompute(depth=cfg.eval_max_steps, breadth=cfg.eval_breadth,
                                              select=cfg.eval_select, seed=cfg.eval_breadth_seed,
                                              noise=cfg.eval_breadth_noise, readings=cfg.eval_depths))
