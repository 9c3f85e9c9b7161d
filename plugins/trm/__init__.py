"""``trm``: the Tiny Recursive Model."""

from .model import TRMModel

__all__ = ["TRMModel"]
