"""Maze-Hard: reference CSV reading, batched generation, path checking and rendering."""

from reasonbench.tasks.maze.task import MazeTask

__all__ = ["MazeTask"]
