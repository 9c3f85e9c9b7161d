"""Tasks: one subpackage per benchmark, each a ReasoningTask (LightningDataModule).

The names are imported when first used, so that a module deep inside (e.g. the Sudoku
generator, which worker processes import) does not pull in Lightning with its package."""

from __future__ import annotations

from typing import Any

__all__ = ["ReasoningTask", "Split", "TaskMetadata"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from reasonbench.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
