"""Hostile reference CSV files (Sudoku-Extreme and Maze-Hard layout) from hypothesis: random
text, wrong lengths, unicode, commas, quotes, blank lines, huge fields, byte-order marks, CRLF,
random bytes. Each file either parses into valid data or raises UserError whose one-line
message names the file and, for a row, its line: never another exception."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reasonbench.util.errors import UserError
from reasonbench.tasks.maze import MazeTask
from reasonbench.tasks.maze import data as md
from reasonbench.tasks.maze.generate import PathCheck, check_paths
from reasonbench.tasks.sudoku import SudokuTask
from reasonbench.tasks.sudoku import data as sd
from reasonbench.tasks.sudoku.grid import is_consistent, is_solved_grid

HEADER = "source,question,answer,rating"
SUDOKU_Q = "..............3.85..1.2.......5.7.....4...1...9.......5......73..2.1........4...9"
SUDOKU_A = "987654321246173985351928746128537694634892157795461832519286473472319568863745219"
MAZE_SIZE = 5
MAZE_Q = "S    " "#### " "     " " ####" "    G"  # one shortest path, 16 steps
MAZE_A = "Soooo" "####o" "ooooo" "o####" "ooooG"

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile-csv")


# --- strategies --------------------------------------------------------------------------

def mutated(good: str) -> st.SearchStrategy[str]:
    """``good`` with a few cells replaced, removed or added (any character)."""
    def apply(edits: list[tuple[int, str, str]]) -> str:
        text = good
        for where, kind, char in edits:
            i = where % (len(text) + 1)
            text = (text[:i] + char + text[i + 1:] if kind == "set" else
                    text[:i] + text[i + 1:] if kind == "del" else text[:i] + char + text[i:])
        return text
    return st.lists(st.tuples(st.integers(0, 200), st.sampled_from(["set", "del", "add"]),
                              st.characters(min_codepoint=0, max_codepoint=0x2FFFF, exclude_categories=("Cs",))),
                    min_size=1, max_size=3).map(apply)


def fields(good_q: str, good_a: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(good_q), st.just(good_a), mutated(good_q), mutated(good_a),
        st.text(max_size=40),  # unicode, commas, quotes, newlines, NUL
        st.sampled_from(["", " ", '"', '""', ",", "\r", "\n", "\ufeff", "\x00", "-0", "+7", "1_000", "١٢",
                         "1e3", "nan", str(2**63), str(-2**63), "9" * 5000]),
        st.integers(-2**70, 2**70).map(str),
        st.integers(1, 300_000).map(lambda n: "x" * n),  # past the csv module's field limit
        st.integers(0, 2000).map(lambda n: good_q[: n % (len(good_q) + 1)] * (1 + n // 500)),
    )


def rows(good_q: str, good_a: str) -> st.SearchStrategy[list[str]]:
    good = st.just(["x", good_q, good_a, "3"])
    ratings = st.one_of(st.sampled_from(["", " 7 ", "-0", "+7", "1_000", "١٢", "1e3", "nan", "0x10", str(2**63 - 1),
                                         str(2**63), str(-2**63), str(-2**63 - 1), "9" * 5000]),
                        st.integers(-2**70, 2**70).map(str), st.text(max_size=8))
    column = {0: st.text(max_size=20), 1: st.one_of(mutated(good_q), fields(good_q, good_a)),
              2: st.one_of(mutated(good_a), fields(good_q, good_a)), 3: ratings}
    one_field_off = st.integers(0, 3).flatmap(lambda i: column[i].map(
        lambda value: [value if j == i else f for j, f in enumerate(["x", good_q, good_a, "3"])]))
    any_row = st.lists(fields(good_q, good_a), min_size=0, max_size=6)
    return st.lists(st.one_of(good, good, good, one_field_off, one_field_off, any_row), min_size=0, max_size=6)


@st.composite
def files(draw, good_q: str, good_a: str) -> bytes:
    """A whole file: a header (right, padded, with a BOM, wrong, none), rows written properly
    quoted or joined raw (quotes unbalanced), any line ending, blank lines; or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = draw(st.sampled_from([HEADER] * 4 + ["\ufeff" + HEADER, " source , question,answer,rating ",
                                                  "question,answer", "", "\ufeff\ufeff" + HEADER, HEADER + ",extra"]))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [header]
    for row in draw(rows(good_q, good_a)):
        if draw(st.booleans()):
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator=end).writerow(row)
            lines.append(buffer.getvalue()[: -len(end)])
        else:
            lines.append(",".join(row))
        if draw(st.integers(0, 5)) == 0:
            lines.append("")  # a blank line
    text = end.join(lines) + draw(st.sampled_from([end, "", end + end]))
    return text.encode("utf-8", errors="surrogatepass")


# --- the property ------------------------------------------------------------------------

def check_error(exc: UserError, path: Path, data: bytes) -> None:
    """One line, naming the file, and a line number inside the file where it names one."""
    message = str(exc)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{path}:"), message
    named = re.match(re.escape(str(path)) + r":(\d+): ", message)
    if named is None:  # about the file as a whole
        assert re.match(re.escape(str(path)) + r": no valid (puzzles|mazes)$", message), message
        return
    physical = len(re.split(rb"\r\n|\r|\n", data))
    assert 1 <= int(named.group(1)) <= physical, (message, physical)


def read_or_refuse(path, data, read):
    """``read`` of ``data`` written at ``path``: the rows, or None after checking the refusal."""
    path.write_bytes(data)
    try:
        rows = read(path)
    except UserError as exc:
        event("refused")
        check_error(exc, path, data)
        return None
    event("parsed")
    return rows


@SETTINGS
@given(data=files(SUDOKU_Q, SUDOKU_A), skip_invalid=st.booleans())
def test_sudoku_reader_parses_or_names_file_and_line(folder, data, skip_invalid):
    rows = read_or_refuse(folder / "sudoku.csv", data, lambda path: sd.read_csv(path, skip_invalid=skip_invalid))
    if rows is None:
        return
    n = len(rows.sources)
    assert n >= 1 and rows.questions.shape == rows.answers.shape == (n, 81) and rows.ratings.shape == (n,)
    assert rows.ratings.dtype == np.int64
    for q, a in zip(rows.questions, rows.answers):
        assert is_solved_grid(a) and is_consistent(q, a)


@SETTINGS
@given(data=files(MAZE_Q, MAZE_A), skip_invalid=st.booleans())
def test_maze_reader_parses_or_names_file_and_line(folder, data, skip_invalid):
    rows = read_or_refuse(folder / "maze.csv", data,
                          lambda path: md.read_csv(path, size=MAZE_SIZE, skip_invalid=skip_invalid))
    if rows is None:
        return
    n = len(rows.sources)
    assert n >= 1 and rows.questions.shape == rows.answers.shape == (n, MAZE_SIZE * MAZE_SIZE)
    check = check_paths(torch.from_numpy(rows.questions).long(), torch.from_numpy(rows.answers).long(), MAZE_SIZE)
    assert (check.codes == PathCheck.OK).all()
    assert torch.equal(check.shortest, torch.from_numpy(rows.path_lengths))


@settings(SETTINGS, max_examples=40)
@given(data=files(SUDOKU_Q, SUDOKU_A), maze=st.booleans())
def test_tasks_on_hostile_files_fail_with_one_line_or_build(folder, data, maze):
    """Through the task (a one-file path split into train and test): a UserError of one line
    naming the file or task.path, or data built."""
    path = folder / "task.csv"
    path.write_bytes(data.replace(SUDOKU_Q.encode(), MAZE_Q.encode()).replace(SUDOKU_A.encode(), MAZE_A.encode())
                     if maze else data)
    args = dict(path=str(path), num_train=1, num_val=1, num_test=1, batch_size=1, eval_batch_size=1)
    task = MazeTask(size=MAZE_SIZE, min_path_length=0, **args) if maze else SudokuTask(**args)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REASONBENCH_DATA_CACHE", "off")  # every file is new: nothing to cache
            task.setup()
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message and (message.startswith(str(path)) or "task." in message), message
        return
    assert sum(task.sizes().values()) == 3
