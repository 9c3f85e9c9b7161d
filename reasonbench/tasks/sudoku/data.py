"""Sudoku-Extreme encoding and the reference CSV layout (``source,question,answer,rating``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reasonbench.util.errors import UserError
from reasonbench.tasks.reference_csv import parse_rating, read_rows, write_rows
from reasonbench.tasks.sudoku.grid import format_grid, is_consistent, is_solved_grid, parse_grid

VOCAB_SIZE = 11  # pad 0, blank 1, digits 1-9 -> 2-10
SEQ_LEN = 81
DIGIT_IDS = tuple(range(2, VOCAB_SIZE))  # digits 1-9


def digit_shifts() -> tuple[tuple[int, ...], ...]:
    """The 9 cyclic shifts of the digits (ids 2-10), identity first; pad and blank stay."""
    return tuple(tuple(i if i < 2 else (i - 2 + k) % 9 + 2 for i in range(VOCAB_SIZE)) for k in range(9))


def encode(grids: np.ndarray) -> np.ndarray:
    """Grids (0 = blank, 1-9) -> token ids (blank 1, digit d -> d + 1), int64."""
    return grids.astype(np.int64) + 1


def decode(ids: np.ndarray) -> np.ndarray:
    """Token ids -> grids (0 = blank); the pad id 0 and out-of-range ids decode to blank."""
    grids = np.asarray(ids, dtype=np.int64) - 1
    return np.where((grids >= 1) & (grids <= 9), grids, 0).astype(np.int8)


@dataclass
class SudokuRows:
    """Parsed puzzles of one CSV file."""

    questions: np.ndarray  # int8 [N, 81]
    answers: np.ndarray  # int8 [N, 81]
    ratings: np.ndarray  # int64 [N]
    sources: list[str]
    skipped: int = 0


# rows parsed and validated together: a Python check per row costs ~70 us, minutes on the
# 3.8M-row reference training file
_CHUNK_ROWS = 65536


def read_csv(path: Path, skip_invalid: bool = False) -> SudokuRows:
    """Read and validate a reference-layout CSV; a bad row raises UserError naming file:line."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    sources: list[str] = []
    skipped = 0
    chunk: list[tuple[int, list[str]]] = []

    def flush() -> None:
        nonlocal skipped
        (questions, answers, ratings), ok = _check_rows([row for _, row in chunk])
        for i in np.flatnonzero(~ok):  # the vectorised checks only flag; the row's own check says why
            line, row = chunk[i]
            try:
                questions[i], answers[i], ratings[i] = _parse_row(row)
                ok[i] = True
            except ValueError as exc:
                if not skip_invalid:
                    raise UserError(f"{path}:{line}: {exc} (use --task.skip_invalid true to skip bad rows)") from None
                skipped += 1
        parts.append((questions[ok], answers[ok], ratings[ok]))
        sources.extend(chunk[i][1][0] for i in np.flatnonzero(ok))
        chunk.clear()

    for line, row in read_rows(path):
        chunk.append((line, row))
        if len(chunk) == _CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    if not sources:
        raise UserError(f"{path}: no valid puzzles")
    questions, answers, ratings = (np.concatenate(a) for a in zip(*parts))
    return SudokuRows(questions, answers, ratings, sources, skipped)


def _parse_row(row: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """One row's (question, answer, rating); ValueError saying what is wrong."""
    if len(row) != 4:
        raise ValueError(f"expected 4 fields, got {len(row)}")
    _, q_text, a_text, r_text = row
    question, answer = parse_grid(q_text), parse_grid(a_text)
    if not is_solved_grid(answer):
        raise ValueError("answer is not a solved Sudoku grid")
    if not is_consistent(question, answer):
        raise ValueError("answer contradicts a clue of the question")
    return question, answer, parse_rating(r_text)


def _check_rows(rows: list[list[str]]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The checks of ``_parse_row`` on many rows at once: (questions, answers, ratings) and
    which rows passed (the others are left to ``_parse_row``)."""
    fields = [row if len(row) == 4 else ["", "", "", ""] for row in rows]
    ratings = np.zeros(len(rows), dtype=np.int64)
    ok = np.array([len(row) == 4 for row in rows], dtype=bool)
    for i, row in enumerate(fields):
        try:
            ratings[i] = int(row[3]) if row[3].strip() else 0
        except (ValueError, OverflowError):
            ok[i] = False
    questions, q_ok = _parse_grids([r[1] for r in fields])
    answers, a_ok = _parse_grids([r[2] for r in fields])
    ok &= q_ok & a_ok & _solved(answers) & ((questions == 0) | (questions == answers)).all(axis=1)
    return (questions, answers, ratings), ok


def _parse_grids(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``parse_grid`` over many texts: (int8 grids [N, 81], which texts parsed)."""
    stripped = [t.strip() for t in texts]
    ok = np.array([len(t) == 81 for t in stripped], dtype=bool)
    # one character per cell: a non-ASCII one becomes '?', which is refused below
    raw = "".join(t if good else "." * 81 for t, good in zip(stripped, ok)).encode("ascii", "replace")
    codes = np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 81)
    blank, digit = codes == ord("."), (codes >= ord("0")) & (codes <= ord("9"))
    ok &= (blank | digit).all(axis=1)
    grids = np.where(digit, codes - ord("0"), 0).astype(np.int8)
    return grids, ok


def _solved(grids: np.ndarray) -> np.ndarray:
    """``is_solved_grid`` over int8 grids [N, 81]: every row, column and box holds 1..9."""
    board = grids.reshape(-1, 9, 9).astype(np.int16)
    boxes = board.reshape(-1, 3, 3, 3, 3).transpose(0, 1, 3, 2, 4).reshape(-1, 9, 9)
    units = np.concatenate([board, board.transpose(0, 2, 1), boxes], axis=1)
    bits = np.where((units >= 1) & (units <= 9), np.left_shift(1, units.clip(0, 9)), 0)
    return (np.bitwise_or.reduce(bits, axis=2) == 0b1111111110).all(axis=1)


def write_csv(path: Path, questions: np.ndarray, answers: np.ndarray, ratings: np.ndarray,
              source: str = "reasonbench") -> None:
    """Write puzzles in the reference layout (so data built here also feeds the reference code)."""
    write_rows(path, [format_grid(q) for q in questions], [format_grid(a) for a in answers], ratings, source)


def render(question: np.ndarray, prediction: np.ndarray | None = None, answer: np.ndarray | None = None) -> str:
    """A 9x9 picture; with a prediction and an answer, wrong cells are marked with '*'."""
    lines = []
    for r in range(9):
        if r and r % 3 == 0:
            lines.append("------+-------+------")
        cells = []
        for c in range(9):
            i = r * 9 + c
            if prediction is not None:
                mark = "*" if answer is not None and prediction[i] != answer[i] else ""
                text = f"{prediction[i]}{mark}" if prediction[i] else "."
            else:
                text = str(question[i]) if question[i] else "."
            cells.append(text.ljust(1))
            if c in (2, 5):
                cells.append("|")
        lines.append(" ".join(cells))
    return "\n".join(lines)
