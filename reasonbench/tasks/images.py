"""Puzzle pictures as RGB arrays (for TensorBoard and the leaderboard pages) and a PNG
writer, with numpy and the standard library only: no plotting or imaging dependency."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

# 3x5 bitmaps of the digits 0-9, rows top to bottom
_DIGITS = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
           "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111"]
FONT = np.array([[int(b) for b in d] for d in _DIGITS], dtype=bool).reshape(10, 5, 3)

WHITE, BLACK, GREY, RED, GREEN = (255, 255, 255), (20, 20, 20), (160, 160, 160), (220, 40, 40), (40, 160, 70)


def grid_image(colours: np.ndarray, digits: np.ndarray | None = None, wrong: np.ndarray | None = None,
               cell: int = 12, digit_colour: np.ndarray | None = None, block: int = 0) -> np.ndarray:
    """An [H*cell+1, W*cell+1, 3] uint8 picture of a grid.

    colours: [H, W, 3] cell fill; digits: [H, W] digit to draw (-1 for none); wrong: [H, W]
    cells outlined in red; digit_colour: [H, W, 3] per-cell ink; block: thicker lines every
    ``block`` cells (3 for Sudoku boxes).
    """
    h, w = colours.shape[:2]
    img = np.full((h * cell + 1, w * cell + 1, 3), 200, dtype=np.uint8)
    scale = max(1, (cell - 4) // 5)
    for r in range(h):
        for c in range(w):
            y, x = r * cell + 1, c * cell + 1
            img[y:y + cell - 1, x:x + cell - 1] = colours[r, c]
            if digits is not None and digits[r, c] >= 0:
                glyph = np.kron(FONT[int(digits[r, c])], np.ones((scale, scale), dtype=bool))
                gy, gx = y + (cell - 1 - glyph.shape[0]) // 2, x + (cell - 1 - glyph.shape[1]) // 2
                ink = BLACK if digit_colour is None else digit_colour[r, c]
                img[gy:gy + glyph.shape[0], gx:gx + glyph.shape[1]][glyph] = ink
            if wrong is not None and wrong[r, c]:
                img[y:y + cell - 1, [x, x + cell - 2]] = RED
                img[[y, y + cell - 2], x:x + cell - 1] = RED
    if block:
        for k in range(0, h + 1, block):
            img[max(0, k * cell - 1):k * cell + 1] = 60
        for k in range(0, w + 1, block):
            img[:, max(0, k * cell - 1):k * cell + 1] = 60
    return img


def side_by_side(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Panels left to right on a white background, top-aligned."""
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for image in images:
        out[:image.shape[0], x:x + image.shape[1]] = image
        x += image.shape[1] + gap
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an [H, W, 3] uint8 array as PNG (8-bit RGB, no filtering)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    Path(path).write_bytes(png_bytes(rgb))
