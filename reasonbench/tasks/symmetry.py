"""The 8 symmetries of the square, numbered as in the HRM/TRM reference data builders, on the
last two axes of an array (so a batch of grids transforms at once; views, no copies)."""

from __future__ import annotations

import numpy as np


def _t(g: np.ndarray) -> np.ndarray:
    return np.swapaxes(g, -1, -2)


_DIHEDRAL = (
    lambda g: g,
    lambda g: _t(g[..., :, ::-1]),  # rotate 90 degrees (np.rot90 k=1)
    lambda g: g[..., ::-1, ::-1],  # rotate 180
    lambda g: _t(g)[..., :, ::-1],  # rotate 270
    lambda g: g[..., :, ::-1],  # flip left-right
    lambda g: g[..., ::-1, :],  # flip up-down
    _t,  # transpose
    lambda g: _t(g[..., ::-1, ::-1]),  # anti-transpose
)
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral(grid: np.ndarray, t: int) -> np.ndarray:
    """Symmetry ``t`` (0-7) of ``grid`` over its last two axes."""
    if not 0 <= t < len(_DIHEDRAL):
        raise ValueError(f"dihedral transform id must be in 0..7, got {t}")
    return _DIHEDRAL[t](grid)


def inverse_dihedral(grid: np.ndarray, t: int) -> np.ndarray:
    """Undo :func:`dihedral` ``t``."""
    return dihedral(grid, DIHEDRAL_INVERSE[t])
