"""``cgar``: TRM with a progressive-depth curriculum and decaying supervision weights."""

from .model import CGARModel

__all__ = ["CGARModel"]
