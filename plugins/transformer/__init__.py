"""``transformer``: the non-recursive baseline."""

from .model import TransformerModel

__all__ = ["TransformerModel"]
