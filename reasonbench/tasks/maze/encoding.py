"""Maze-Hard's token encoding: a maze is a flat row-major array of token ids of length
``size * size``: wall ``#`` 1, open cell `` `` 2, start ``S`` 3, goal ``G`` 4, path ``o`` 5
(answers only), pad 0; the dihedral transforms act on such arrays. The generators, the CSV
reader and the unique-path checker all import these ids from here."""

from __future__ import annotations

import numpy as np
import torch

from reasonbench.tasks import symmetry

CHARSET = "# SGo"  # id = position + 1, the reference's char2id
PAD, WALL, OPEN, START, GOAL, PATH = range(6)
VOCAB_SIZE = len(CHARSET) + 1
# identity, and start and goal swapped (a shortest path is one in either direction)
RELABELLINGS = (tuple(range(VOCAB_SIZE)), (0, 1, 2, 4, 3, 5))

ID_OF_BYTE = np.zeros(256, dtype=np.int8)  # unknown characters map to the pad id 0
ID_OF_BYTE[np.frombuffer(CHARSET.encode(), dtype=np.uint8)] = np.arange(1, VOCAB_SIZE)
CHAR_OF_ID = np.frombuffer(("?" + CHARSET).encode(), dtype=np.uint8)
RENDER_OF_ID = np.array(list("?#.SGo"))  # open cells as '.', so a terminal shows them


def encode(text: str) -> np.ndarray:
    """A maze string -> int8 token ids; characters outside ``# SGo`` become the pad id 0."""
    return ID_OF_BYTE[np.frombuffer(text.encode("latin-1", errors="replace"), dtype=np.uint8)]


def decode(ids: np.ndarray | torch.Tensor) -> str:
    """Token ids -> the maze string; ids outside 1..5 (pad, garbage) decode to '?'."""
    arr = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    arr = np.where((arr >= 1) & (arr < VOCAB_SIZE), arr, 0).astype(np.intp)
    return CHAR_OF_ID[arr].tobytes().decode("latin-1")


def dihedral(grids: np.ndarray, size: int, k: int) -> np.ndarray:
    """Symmetry ``k`` of the square (reference numbering, see ``tasks.symmetry``) applied to
    flat mazes ``[..., size * size]``."""
    g = np.asarray(grids).reshape(*np.shape(grids)[:-1], size, size)
    return np.ascontiguousarray(symmetry.dihedral(g, k)).reshape(*np.shape(grids))
