"""``loopnet``: the example out-of-tree plugin (a TRM-like latent recursion)."""

from .model import LoopnetModel

__all__ = ["LoopnetModel"]
