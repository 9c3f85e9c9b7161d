"""Tasks: one subpackage per benchmark, each a ReasoningTask (LightningDataModule)."""

from .base import ReasoningTask, Split, TaskMetadata

__all__ = ["ReasoningTask", "Split", "TaskMetadata"]
