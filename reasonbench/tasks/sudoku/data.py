"""Sudoku-Extreme encoding and the reference CSV layout (``source,question,answer,rating``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from ..reference_csv import read_rows, write_rows
from .grid import format_grid, is_consistent, is_solved_grid, parse_grid

VOCAB_SIZE = 11  # pad 0, blank 1, digits 1-9 -> 2-10
SEQ_LEN = 81


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


def read_csv(path: Path, skip_invalid: bool = False) -> SudokuRows:
    """Read and validate a reference-layout CSV; a bad row raises UserError naming file:line."""
    questions, answers, ratings, sources, skipped = [], [], [], [], 0
    for line, row in read_rows(path):
        try:
            if len(row) != 4:
                raise ValueError(f"expected 4 fields, got {len(row)}")
            source, q_text, a_text, r_text = row
            question, answer = parse_grid(q_text), parse_grid(a_text)
            if not is_solved_grid(answer):
                raise ValueError("answer is not a solved Sudoku grid")
            if not is_consistent(question, answer):
                raise ValueError("answer contradicts a clue of the question")
            rating = int(r_text) if r_text.strip() else 0
        except ValueError as exc:
            if skip_invalid:
                skipped += 1
                continue
            raise UserError(f"{path}:{line}: {exc} (use --task.skip_invalid true to skip bad rows)") from None
        questions.append(question)
        answers.append(answer)
        ratings.append(rating)
        sources.append(source)
    if not questions:
        raise UserError(f"{path}: no valid puzzles")
    return SudokuRows(np.stack(questions), np.stack(answers), np.asarray(ratings, dtype=np.int64),
                      sources, skipped)


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
