"""``cmm``: the Contraction Mapping Model, TRM's recursion as a neural ODE/SDE."""

from .model import CMMModel

__all__ = ["CMMModel"]
