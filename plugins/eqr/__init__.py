"""``eqr``: Equilibrium Reasoners."""

from .model import EqRModel

__all__ = ["EqRModel"]
