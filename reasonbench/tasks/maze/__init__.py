"""Maze-Hard: reference CSV reading, batched generation, path checking and rendering."""

from .task import MazeTask

__all__ = ["MazeTask"]
