"""``aug-hrm``: HRM with easier training copies and a relabelling vote at inference."""

from .model import AugmentedHRMModel

__all__ = ["AugmentedHRMModel"]
