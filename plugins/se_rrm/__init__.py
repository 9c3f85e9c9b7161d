"""``se-rrm``: the Symbol-Equivariant Recursive Reasoning Model."""

from .model import SERRMModel

__all__ = ["SERRMModel"]
