"""Sudoku-Extreme: reference CSV reading, generation, augmentation and rendering.

``SudokuTask`` is imported when first used: the generator's worker processes import
``grid`` alone (numpy only), not Lightning."""

from __future__ import annotations

from typing import Any

__all__ = ["SudokuTask"]


def __getattr__(name: str) -> Any:
    if name == "SudokuTask":
        from reasonbench.tasks.sudoku.task import SudokuTask

        return SudokuTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
