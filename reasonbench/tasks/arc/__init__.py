"""ARC-AGI (1 and 2): reference encoding, per-task augmentation, voting and pass@K scoring."""

from reasonbench.tasks.arc.task import ArcTask

__all__ = ["ArcTask"]
