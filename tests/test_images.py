import struct
import zlib

import numpy as np
import torch

from reasonbench.tasks.images import FONT, RED, grid_image, png_bytes, side_by_side
from reasonbench.tasks.sudoku import SudokuTask


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h = size
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, 3)


def test_png_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(png_bytes(rgb)), rgb)


def test_grid_image_draws_digits_and_outlines_wrong_cells():
    colours = np.full((2, 3, 3), 255, dtype=np.uint8)
    digits = np.array([[1, -1, 7], [-1, -1, -1]])
    wrong = np.zeros((2, 3), bool)
    wrong[1, 2] = True
    img = grid_image(colours, digits, wrong, cell=12)
    assert img.shape == (25, 37, 3)
    inked = (img[1:12, 1:12] < 100).all(-1).sum()
    assert inked == FONT[1].sum()  # 3x5 glyph at scale 1 in a 12-pixel cell
    assert not (img[1:12, 13:24] < 100).all(-1).any()  # no digit
    assert (img[13:24, 25] == RED).all()  # outline of the wrong cell
    assert side_by_side([img, img], gap=4).shape == (25, 78, 3)


def test_sudoku_picture_marks_exactly_the_wrong_cells():
    task = SudokuTask(num_train=2, num_val=1, num_test=1, num_blanks=10)
    task.setup()
    split = task.splits["test"]
    prediction = split.labels[0].clone()
    blank = int(torch.nonzero(split.inputs[0] == 1)[0])
    prediction[blank] = 2 if prediction[blank] != 2 else 3
    img = task.render_image(split.inputs[0], prediction, split.labels[0])
    red = (img == np.array(RED, dtype=np.uint8)).all(-1)
    panel = 9 * 16 + 1
    assert red[:, :panel].sum() == 0 and red[:, 2 * panel:].sum() == 0  # only in the prediction panel
    r, c = divmod(blank, 9)
    assert red[r * 16 + 1:(r + 1) * 16, panel + 8 + c * 16 + 1:panel + 8 + (c + 1) * 16].any()


def test_default_picture_uses_the_task_palette_and_ignores_unsupervised_cells():
    from reasonbench.tasks.maze import MazeTask

    task = MazeTask(size=6, min_path_length=4, num_train=4, num_val=1, num_test=1)
    task.setup()
    inputs, labels = task.splits["test"].inputs[0], task.splits["test"].labels[0]
    img = task.render_image(inputs, labels, labels)
    assert not (img == np.array(RED, dtype=np.uint8)).all(-1).any()  # a right prediction: no outline
    wall = (np.array(task.palette[1]) == img).all(-1).sum()
    assert wall > 0
    masked = labels.clone()
    masked[:] = -100
    assert not (task.render_image(inputs, inputs, masked) == np.array(RED, dtype=np.uint8)).all(-1).any()
