"""Maze-Hard's reference CSV layout (``source,question,answer,rating``), its checks and text
rendering; the token ids are in ``encoding``. An answer is its question with the cells strictly
between S and G on one shortest path turned into ``o``; S and G keep their letters (reference's
charset has them; answers that write them as ``o`` are accepted too, the path being the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reasonbench.util.errors import UserError
from reasonbench.tasks.maze.encoding import (GOAL, OPEN, PATH, START, VOCAB_SIZE, WALL, ID_OF_BYTE, RENDER_OF_ID,
                                             decode, encode)
from reasonbench.tasks.maze.generate import PathCheck, check_paths
from reasonbench.tasks.maze.unique import shortest_path_counts
from reasonbench.tasks.reference_csv import parse_rating, read_rows, write_rows


@dataclass
class MazeRows:
    """Parsed mazes of one CSV file."""

    questions: np.ndarray  # int8 [N, size * size]
    answers: np.ndarray  # int8 [N, size * size]
    ratings: np.ndarray  # int64 [N], the file's rating column (0 when empty)
    path_lengths: np.ndarray  # int64 [N], steps of the shortest path from S to G
    sources: list[str]
    skipped: int = 0


def _parse_grid(text: str, cells: int, size: int, what: str, allowed: str) -> np.ndarray:
    if len(text) != cells:
        raise ValueError(f"{what} has {len(text)} cells, expected {cells} (task.size {size})")
    ids = encode(text)
    bad = np.isin(ids, [ID_OF_BYTE[ord(c)] for c in allowed], invert=True)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what} has {text[i]!r} at cell {i} (row {i // size}, column {i % size}); "
                         f"allowed: {', '.join(repr(c) for c in allowed)}")
    return ids


def _parse_row(row: list[str], size: int) -> tuple[str, np.ndarray, np.ndarray, int]:
    if len(row) != 4:
        raise ValueError(f"expected 4 fields, got {len(row)}")
    source, q_text, a_text, r_text = row
    cells = size * size
    question = _parse_grid(q_text, cells, size, "question", "# SG")
    answer = _parse_grid(a_text, cells, size, "answer", "# SGo")
    for token, name in ((START, "S"), (GOAL, "G")):
        count = int((question == token).sum())
        if count != 1:
            raise ValueError(f"question has {count} '{name}' cells, expected exactly one")
    return source, question, answer, parse_rating(r_text)


def _path_reason(code: int, question: np.ndarray, answer: np.ndarray, shortest: int, marked: int) -> str:

    if code == PathCheck.ALTERED:
        kept = (answer == question) | ((answer == PATH) & np.isin(question, (OPEN, START, GOAL)))
        i = int(np.argmax(~kept))
        size = int(round(len(question) ** 0.5))
        return (f"answer has {decode(answer[i:i + 1])!r} at cell {i} (row {i // size}, column {i % size}) "
                f"where the question has {decode(question[i:i + 1])!r}: only open cells (and S, G) may become 'o'")
    if code == PathCheck.UNSOLVABLE:
        return "G cannot be reached from S"
    if code == PathCheck.WRONG_LENGTH:
        return (f"answer marks {marked} path cells, but a shortest path from S to G has "
                f"{shortest - 1} cells between them ({shortest} steps)")
    if code == PathCheck.DISCONNECTED:
        return "the answer's 'o' cells do not form a path from S to G"
    return f"invalid maze (check code {code})"


def read_csv(path: Path, size: int = 30, skip_invalid: bool = False) -> MazeRows:
    """Read and validate a reference-layout CSV. Every row must hold ``size * size`` cells of
    ``# SG`` (question) / ``# SGo`` (answer), one S and one G, and an answer that is the question
    with one shortest 4-neighbour S-to-G path marked. A bad row raises UserError naming
    ``file:line`` (the header is line 1), or with ``skip_invalid`` is skipped and counted."""

    parsed: list[tuple[int, str, np.ndarray, np.ndarray, int]] = []
    errors: list[tuple[int, str]] = []
    for line, row in read_rows(path):
        try:
            parsed.append((line, *_parse_row(row, size)))
        except ValueError as exc:
            errors.append((line, str(exc)))
    questions = np.stack([p[2] for p in parsed]) if parsed else np.zeros((0, size * size), np.int8)
    answers = np.stack([p[3] for p in parsed]) if parsed else np.zeros((0, size * size), np.int8)
    # the path checks run batched over the whole file, then map back to line numbers
    check = check_paths(torch.from_numpy(questions).long(), torch.from_numpy(answers).long(), size)
    codes, shortest, marked = (t.numpy() for t in (check.codes, check.shortest, check.marked))
    good = codes == PathCheck.OK
    for i in np.nonzero(~good)[0]:
        errors.append((parsed[i][0], _path_reason(int(codes[i]), questions[i], answers[i],
                                                  int(shortest[i]), int(marked[i]))))
    if errors and not skip_invalid:
        line, reason = min(errors)
        raise UserError(f"{path}:{line}: {reason} (use --task.skip_invalid true to skip bad rows)")
    keep = np.nonzero(good)[0]
    if not len(keep):
        raise UserError(f"{path}: no valid mazes")
    return MazeRows(questions=questions[keep], answers=answers[keep],
                    ratings=np.asarray([parsed[i][4] for i in keep], dtype=np.int64),
                    path_lengths=shortest[keep].astype(np.int64),
                    sources=[parsed[i][1] for i in keep], skipped=len(errors))


def write_csv(path: Path, questions: np.ndarray, answers: np.ndarray, ratings: np.ndarray,
              source: str = "reasonbench") -> None:
    """Write mazes in the reference layout, so data built here also feeds the reference code."""
    write_rows(path, [decode(q) for q in questions], [decode(a) for a in answers], ratings, source)


def render(question: np.ndarray, size: int, prediction: np.ndarray | None = None,
           answer: np.ndarray | None = None) -> str:
    """A picture of the maze, one text line per row (walls '#', open '.', path 'o').

    Shows the prediction when given, else the answer, else the question. With both a
    prediction and an answer, wrong cells are marked: '+' a path cell the answer does not
    have, '-' an answer path cell the prediction misses, '!' any other wrong cell.
    """
    shown = prediction if prediction is not None else answer if answer is not None else question
    ids = np.asarray(shown).astype(np.intp)
    chars = RENDER_OF_ID[np.where((ids >= 0) & (ids < VOCAB_SIZE), ids, 0)]
    if prediction is not None and answer is not None:
        pred, ans = np.asarray(prediction), np.asarray(answer)
        wrong = pred != ans
        chars = np.where(wrong, "!", chars)
        chars = np.where(wrong & (pred == PATH), "+", chars)
        chars = np.where(wrong & (ans == PATH) & (pred != PATH), "-", chars)
    return "\n".join("".join(chars[r * size:(r + 1) * size]) for r in range(size))


def read_arrays(folder: Path, size: int = 30, skip_invalid: bool = False, unique: bool = False) -> MazeRows:
    """Read one split of the reference builders' array layout: ``all__inputs.npy`` and
    ``all__labels.npy`` in ``folder`` (EqR's Maze-Unique: ``train/``, ``test/``), token ids in
    this module's encoding, one maze per row. Checked as ``read_csv`` checks its rows (cells,
    one S and one G, the answer one shortest path), and with ``unique`` that the shortest path
    is the only one. A bad row raises UserError naming ``file row i`` (0-based), or with
    ``skip_invalid`` is skipped and counted. Arrays are loaded without pickles."""

    arrays = []
    for name in ("all__inputs.npy", "all__labels.npy"):
        path = folder / name
        try:
            array = np.load(path, allow_pickle=False)
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or 'not a .npy array file'}") from None
        except ValueError as exc:  # an object array (pickles refused) or a malformed header
            raise UserError(f"{path}: not a plain .npy array of token ids ({str(exc).splitlines()[0][:120]})") from None
        if array.ndim != 2 or array.shape[1] != size * size or array.dtype.kind not in "iu":
            raise UserError(f"{path}: expected integer token ids of shape [mazes, {size * size}] (task.size {size}), "
                            f"got {array.dtype} {list(array.shape)}")
        arrays.append(array)
    if arrays[0].shape[0] != arrays[1].shape[0]:
        raise UserError(f"{folder}: all__inputs.npy has {arrays[0].shape[0]} mazes, "
                        f"all__labels.npy {arrays[1].shape[0]}")
    inputs_file = folder / "all__inputs.npy"
    questions = np.clip(arrays[0], -1, VOCAB_SIZE).astype(np.int8)  # out-of-range ids stay out of range
    answers = np.clip(arrays[1], -1, VOCAB_SIZE).astype(np.int8)
    errors: list[tuple[int, str]] = []
    bad_question = ~np.isin(questions, (WALL, OPEN, START, GOAL)).all(1)
    bad_answer = ~np.isin(answers, (WALL, OPEN, START, GOAL, PATH)).all(1)
    ends = [(questions == token).sum(1) for token in (START, GOAL)]
    for i in np.nonzero(bad_question | bad_answer | (ends[0] != 1) | (ends[1] != 1))[0]:
        reason = ("question holds a token id outside 1..4" if bad_question[i] else
                  "answer holds a token id outside 1..5" if bad_answer[i] else
                  f"question has {ends[0][i]} S and {ends[1][i]} G cells, expected exactly one of each")
        errors.append((int(i), reason))
    formed = np.setdiff1d(np.arange(len(questions)), [e[0] for e in errors])
    check = check_paths(torch.from_numpy(questions[formed]).long(), torch.from_numpy(answers[formed]).long(), size)
    codes, shortest, marked = (t.numpy() for t in (check.codes, check.shortest, check.marked))
    for j in np.nonzero(codes != PathCheck.OK)[0]:
        i = int(formed[j])
        errors.append((i, _path_reason(int(codes[j]), questions[i], answers[i], int(shortest[j]), int(marked[j]))))
    good = formed[codes == PathCheck.OK]
    steps = np.full(len(questions), -1, dtype=np.int64)
    steps[formed] = shortest
    if unique and len(good):
        _, count = shortest_path_counts(questions[good], size)
        for i in good[count != 1]:
            errors.append((int(i), "more than one shortest path from S to G: not a Maze-Unique maze"))
        good = good[count == 1]
    if errors and not skip_invalid:
        row, reason = min(errors)
        raise UserError(f"{inputs_file} row {row}: {reason} (use --task.skip_invalid true to skip bad rows)")
    if not len(good):
        raise UserError(f"{folder}: no valid mazes")
    return MazeRows(questions=questions[good], answers=answers[good], ratings=steps[good], path_lengths=steps[good],
                    sources=[str(inputs_file)] * len(good), skipped=len(errors))
