"""The reference data layout shared by Sudoku-Extreme and Maze-Hard: CSV files
``source,question,answer,rating``, either a directory with ``train.csv`` and ``test.csv`` or
one file split with the data seed."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import UserError

HEADER = ["source", "question", "answer", "rating"]

# A reader turns one file into equal-length arrays (question, answer, rating, ...) and the
# number of rows it skipped.
Reader = Callable[[Path], tuple[tuple[np.ndarray, ...], int]]


def files_stamp(path: str | None, pattern: str = "*.csv") -> Any:
    """Where data is read from, with sizes and mtimes, so the cache notices edited files."""
    if not path:
        return "generated"
    root = Path(path).resolve()
    files = sorted(root.glob(pattern)) if root.is_dir() else [root]
    return {"path": str(root), "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns]
                                         for f in files if f.is_file()]}


def read_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every data row; the header (line 1) is checked. Unreadable
    files and broken CSV raise UserError naming the file and line. A UTF-8 byte-order mark (as
    spreadsheet programs write) and blank lines are skipped; the line number is the row's last
    physical line (a quoted field may span several)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != HEADER:
                got = ",".join(header or [])
                got = repr(got if len(got) <= 80 else got[:80] + "...")
                raise UserError(f"{path}:{reader.line_num or 1}: expected header {','.join(HEADER)}, got {got}")
            for row in reader:
                if row:  # a blank line
                    yield reader.line_num, row
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError:  # a binary file, or another encoding
            raise UserError(f"{path}:{_first_undecodable_line(path)}: not UTF-8 text (expected a CSV file)") from None


def _first_undecodable_line(path: Path) -> int:
    """The line of the first byte that is not UTF-8 (the reader decodes in chunks, so its own
    line count may lag behind)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    return 1


def parse_rating(text: str) -> int:
    """The rating column: an int64 (empty means 0); ValueError saying what is wrong."""
    stripped = text.strip()
    if not stripped:
        return 0
    shown = stripped if len(stripped) <= 40 else stripped[:40] + "..."
    try:
        rating = int(stripped)
    except ValueError:  # not digits, or more digits than Python converts
        if stripped.lstrip("+-").isdigit():
            raise ValueError(f"rating {shown} is out of range") from None
        raise ValueError(f"rating {shown!r} is not an integer") from None
    if not -2**63 <= rating < 2**63:
        raise ValueError(f"rating {shown} is out of range")
    return rating


def write_rows(path: Path, questions: list[str], answers: list[str], ratings: Any,
               source: str = "reasonbench") -> None:
    """Write rows in the reference layout, so data built here also feeds the reference code.
    Written atomically: a temporary file beside ``path``, renamed once complete (an error or
    Ctrl-C leaves no half-written CSV)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # opened like any file: the umask applies
    try:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for q, a, r in zip(questions, answers, ratings):
                writer.writerow([source, q, a, int(r)])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_splits(path: Path, read: Reader, num_test: int | None, rng: np.random.Generator,
                noun: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], int]:
    """(train arrays, test arrays, rows skipped) from a directory with ``train.csv`` and
    ``test.csv`` (``num_test`` of the test rows sampled with ``rng``; None keeps all) or from one
    file, of which ``num_test`` rows (default a tenth) become the test split."""
    if path.is_dir():
        files = [path / "train.csv", path / "test.csv"]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UserError(f"task.path {path}: missing {', '.join(missing)}")
        (train, skipped_train), (test, skipped_test) = read(files[0]), read(files[1])
        if num_test is not None and num_test < len(test[0]):
            keep = np.sort(rng.permutation(len(test[0]))[:num_test])
            test = tuple(a[keep] for a in test)
        return train, test, skipped_train + skipped_test
    if not path.exists():
        raise UserError(f"task.path {path}: no such file or directory")
    rows, skipped = read(path)
    n_test = num_test or max(1, len(rows[0]) // 10)
    if n_test >= len(rows[0]):
        raise UserError(f"task.path {path}: {len(rows[0])} {noun} cannot give {n_test} test {noun}")
    order = rng.permutation(len(rows[0]))
    return tuple(a[order[n_test:]] for a in rows), tuple(a[order[:n_test]] for a in rows), skipped


def sample_train_val(pool: tuple[np.ndarray, ...], num_train: int, num_val: int, rng: np.random.Generator,
                     noun: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """``num_train`` training and ``num_val`` held-out validation rows sampled from ``pool``."""
    needed = num_train + num_val
    if len(pool[0]) < needed:
        raise UserError(f"task.num_train + task.num_val = {needed} exceeds the {len(pool[0])} training {noun} available")
    order = rng.permutation(len(pool[0]))
    return tuple(a[order[:num_train]] for a in pool), tuple(a[order[num_train:needed]] for a in pool)
