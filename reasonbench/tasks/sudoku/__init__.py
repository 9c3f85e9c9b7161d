"""Sudoku-Extreme: reference CSV reading, generation, augmentation and rendering."""

from .task import SudokuTask

__all__ = ["SudokuTask"]
