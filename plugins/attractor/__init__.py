"""``attractor``: TRM with its latent recursion solved to a fixed point."""

from .model import AttractorModel

__all__ = ["AttractorModel"]
