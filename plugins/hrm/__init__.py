"""``hrm``: the Hierarchical Reasoning Model."""

from .model import HRMModel

__all__ = ["HRMModel"]
