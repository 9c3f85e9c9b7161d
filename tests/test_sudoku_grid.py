"""Tests for reasonbench.tasks.sudoku.grid: parsing, solver, rating, generation, symmetries."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reasonbench.tasks.sudoku.grid import (
    SolveResult,
    augment,
    augment_batch,
    canonical_form,
    count_solutions,
    format_grid,
    is_consistent,
    is_solved_grid,
    make_puzzle,
    parse_grid,
    random_solved_grid,
    rating,
    solve,
)

# A published 17-clue puzzle and its solution.
P17 = "..............3.85..1.2.......5.7.....4...1...9.......5......73..2.1........4...9"
P17_SOLUTION = "987654321246173985351928746128537694634892157795461832519286473472319568863745219"
# Arto Inkala's 2012 "world's hardest Sudoku": singles alone do not crack it.
INKALA = "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4.."
INKALA_SOLUTION = "812753649943682175675491283154237896369845721287169534521974368438526917796318452"


def reference_shuffle(board: np.ndarray, solution: np.ndarray, rng: np.random.Generator):
    """sapientinc/HRM ``shuffle_sudoku`` transcribed on (9, 9) boards, drawing from ``rng``."""
    digit_map = np.pad(rng.permutation(np.arange(1, 10)), (1, 0))
    transpose_flag = rng.random() < 0.5
    bands = rng.permutation(3)
    row_perm = np.concatenate([b * 3 + rng.permutation(3) for b in bands])
    stacks = rng.permutation(3)
    col_perm = np.concatenate([s * 3 + rng.permutation(3) for s in stacks])
    mapping = np.array([row_perm[i // 9] * 9 + col_perm[i % 9] for i in range(81)])

    def apply(x: np.ndarray) -> np.ndarray:
        if transpose_flag:
            x = x.T
        return digit_map[x.flatten()[mapping].reshape(9, 9).copy()]

    return apply(board.reshape(9, 9)).reshape(81), apply(solution.reshape(9, 9)).reshape(81)


def find_rectangle(solution: np.ndarray) -> list[int]:
    """Cells of an unavoidable rectangle: rows r1, r2 in one band, columns in two stacks,
    holding a b / b a. Blanking exactly these four cells leaves two solutions."""
    board = solution.reshape(9, 9)
    for r1 in range(9):
        for r2 in range(r1 + 1, r1 // 3 * 3 + 3):
            for c1 in range(9):
                for c2 in range(c1 // 3 * 3 + 3, 9):
                    if board[r1, c1] == board[r2, c2] and board[r1, c2] == board[r2, c1]:
                        return [r1 * 9 + c1, r1 * 9 + c2, r2 * 9 + c1, r2 * 9 + c2]
    raise AssertionError("no unavoidable rectangle in this grid")


# --- text form --------------------------------------------------------------------------------


def test_parse_format_round_trip():
    grid = parse_grid(P17)
    assert grid.dtype == np.int8 and grid.shape == (81,)
    assert (grid != 0).sum() == 17
    assert grid[14] == 3 and grid[15] == 0 and grid[80] == 9
    assert format_grid(grid) == P17
    # '0' is a blank too, and comes back as '.'.
    assert format_grid(parse_grid(P17.replace(".", "0"))) == P17
    assert np.array_equal(parse_grid(format_grid(parse_grid(P17_SOLUTION))), parse_grid(P17_SOLUTION))
    # A (9, 9) board formats like its flat form.
    assert format_grid(grid.reshape(9, 9)) == P17


@pytest.mark.parametrize(
    "text, message",
    [
        (P17[:80], "expected 81 cells, got 80"),
        (P17 + "1", "expected 81 cells, got 82"),
        (P17[:5] + "x" + P17[6:], "invalid character 'x' at cell 5"),
        ("-" + P17[1:], "invalid character '-' at cell 0"),
    ],
)
def test_parse_errors(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_grid(text)


def test_format_rejects_bad_grids():
    with pytest.raises(ValueError):
        format_grid(np.zeros(80, dtype=np.int8))
    with pytest.raises(ValueError):
        format_grid(np.full(81, 10, dtype=np.int8))


# --- validity ---------------------------------------------------------------------------------


def test_is_solved_grid():
    solution = parse_grid(P17_SOLUTION)
    assert is_solved_grid(solution)
    assert not is_solved_grid(parse_grid(P17))  # blanks
    swapped = solution.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # rows still fine, two columns broken
    assert not is_solved_grid(swapped)
    # A cyclic Latin square: every row and column is fine, the boxes are not.
    latin = np.array([(r + c) % 9 + 1 for r in range(9) for c in range(9)], dtype=np.int8)
    assert not is_solved_grid(latin)
    assert not is_solved_grid(np.zeros(80, dtype=np.int8))


def test_is_consistent():
    question, answer = parse_grid(P17), parse_grid(P17_SOLUTION)
    assert is_consistent(question, answer)
    assert is_consistent(np.zeros(81, dtype=np.int8), answer)
    wrong = answer.copy()
    clue = int(np.flatnonzero(question)[0])
    wrong[clue] = wrong[clue] % 9 + 1
    assert not is_consistent(question, wrong)
    # A changed blank cell is not a clue, so consistency holds (validity is a separate test).
    blank = int(np.flatnonzero(question == 0)[0])
    other = answer.copy()
    other[blank] = other[blank] % 9 + 1
    assert is_consistent(question, other) and not is_solved_grid(other)


# --- solver and rating ------------------------------------------------------------------------


def test_solve_17_clue_puzzle():
    question = parse_grid(P17)
    result = solve(question)
    assert isinstance(result, SolveResult)
    assert len(result.solutions) == 1  # asked for two, only one exists
    answer = result.solutions[0]
    assert answer.dtype == np.int8 and answer.shape == (81,)
    assert is_solved_grid(answer) and is_consistent(question, answer)
    assert format_grid(answer) == P17_SOLUTION
    assert count_solutions(question) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.guesses = 5  # type: ignore[misc]


def test_solve_does_not_modify_input():
    question = parse_grid(INKALA)
    before = question.copy()
    solve(question)
    assert np.array_equal(question, before)


def test_two_solutions():
    solution = parse_grid(P17_SOLUTION)
    cells = find_rectangle(solution)
    puzzle = solution.copy()
    puzzle[cells] = 0
    assert count_solutions(puzzle, limit=5) == 2
    first, second = solve(puzzle, max_solutions=5).solutions
    assert not np.array_equal(first, second)
    for answer in (first, second):
        assert is_solved_grid(answer) and is_consistent(puzzle, answer)
    assert any(np.array_equal(answer, solution) for answer in (first, second))
    # The limit caps the count; the empty grid has far more than two solutions.
    assert count_solutions(np.zeros(81, dtype=np.int8), limit=2) == 2
    assert count_solutions(np.zeros(81, dtype=np.int8), limit=1) == 1


def test_contradictory_clues_have_no_solution():
    question = parse_grid(P17)
    question[0] = question[1] = 5  # same row
    result = solve(question)
    assert result.solutions == [] and count_solutions(question) == 0
    with pytest.raises(ValueError):
        solve(question, max_solutions=0)


def test_easy_puzzle_rates_zero():
    solution = parse_grid(P17_SOLUTION)
    easy = solution.copy()
    easy[[0, 10, 20, 40, 80]] = 0
    assert rating(easy) == 0
    assert rating(solution) == 0
    assert np.array_equal(solve(easy).solutions[0], solution)


def test_hard_puzzle_rates_above_zero():
    question = parse_grid(INKALA)
    result = solve(question, max_solutions=1)
    assert format_grid(result.solutions[0]) == INKALA_SOLUTION
    assert result.guesses > 0
    assert rating(question) == result.guesses
    # Backtracks are counted only until the first solution, so asking for more changes nothing.
    assert solve(question, max_solutions=2).guesses == result.guesses


# --- generation -------------------------------------------------------------------------------


def test_random_solved_grid():
    grids = [random_solved_grid(np.random.default_rng(seed)) for seed in range(5)]
    for grid in grids:
        assert grid.dtype == np.int8 and grid.shape == (81,)
        assert is_solved_grid(grid)
    assert np.array_equal(grids[0], random_solved_grid(np.random.default_rng(0)))
    assert len({grid.tobytes() for grid in grids}) == 5
    # Not one pattern relabelled and shuffled: the grids lie in different symmetry classes.
    assert len({canonical_form(grid) for grid in grids}) == 5


@pytest.mark.parametrize("seed, num_blanks", [(0, 30), (1, 50), (2, 55)])
def test_make_puzzle_unique(seed: int, num_blanks: int):
    rng = np.random.default_rng(seed)
    solution = random_solved_grid(rng)
    before = solution.copy()
    puzzle = make_puzzle(solution, rng, num_blanks)
    assert np.array_equal(solution, before)
    assert puzzle.dtype == np.int8 and puzzle.shape == (81,)
    assert (puzzle == 0).sum() == num_blanks
    assert is_consistent(puzzle, solution)
    result = solve(puzzle)
    assert len(result.solutions) == 1
    assert np.array_equal(result.solutions[0], solution)


def test_make_puzzle_is_deterministic_and_non_unique_mode():
    solution = random_solved_grid(np.random.default_rng(3))
    first = make_puzzle(solution, np.random.default_rng(9), 40)
    assert np.array_equal(first, make_puzzle(solution, np.random.default_rng(9), 40))
    loose = make_puzzle(solution, np.random.default_rng(9), 75, unique=False)
    assert (loose == 0).sum() == 75 and is_consistent(loose, solution)
    assert count_solutions(loose) == 2
    with pytest.raises(ValueError):
        make_puzzle(solution, np.random.default_rng(0), 82)
    with pytest.raises(ValueError):
        make_puzzle(parse_grid(P17), np.random.default_rng(0), 10)  # not a complete grid


def test_make_puzzle_unreachable_blanks_gives_minimal_puzzle():
    solution = random_solved_grid(np.random.default_rng(4))
    puzzle = make_puzzle(solution, np.random.default_rng(4), 81)
    blanks = int((puzzle == 0).sum())
    assert 45 <= blanks <= 64  # a unique puzzle keeps at least 17 clues
    assert count_solutions(puzzle) == 1 and is_consistent(puzzle, solution)
    # Minimal: removing any remaining clue admits a second solution.
    for cell in np.flatnonzero(puzzle):
        fewer = puzzle.copy()
        fewer[cell] = 0
        assert count_solutions(fewer) == 2


# --- symmetries -------------------------------------------------------------------------------


def test_augment_matches_reference():
    question, answer = parse_grid(INKALA), parse_grid(INKALA_SOLUTION)
    for seed in range(10):
        got_q, got_a = augment(question, answer, np.random.default_rng(seed))
        want_q, want_a = reference_shuffle(question, answer, np.random.default_rng(seed))
        assert np.array_equal(got_q, want_q) and np.array_equal(got_a, want_a)


def test_augment_batch_is_augment_of_each_row_in_turn():
    rng = np.random.default_rng(4)
    answers = np.stack([random_solved_grid(rng) for _ in range(6)])
    questions = np.stack([make_puzzle(a, rng, 40) for a in answers])
    batch_rng = np.random.default_rng(9)
    got_q, got_a = augment_batch(questions, answers, batch_rng)
    one_by_one = np.random.default_rng(9)
    want = [augment(q, a, one_by_one) for q, a in zip(questions, answers)]
    assert got_q.dtype == np.int8 and got_q.shape == (6, 81)
    assert np.array_equal(got_q, np.stack([w[0] for w in want])) and np.array_equal(got_a, np.stack([w[1] for w in want]))
    # the stream is left where row-by-row calls leave it: the next draws agree too
    assert batch_rng.random() == one_by_one.random()


def test_augment_preserves_validity_and_changes_grid():
    rng = np.random.default_rng(0)
    question, answer = parse_grid(INKALA), parse_grid(INKALA_SOLUTION)
    q_before, a_before = question.copy(), answer.copy()
    transposed = 0
    for _ in range(30):
        new_q, new_a = augment(question, answer, rng)
        assert new_q.shape == (81,) and new_a.shape == (81,)
        assert is_solved_grid(new_a)
        assert is_consistent(new_q, new_a)
        assert (new_q == 0).sum() == (question == 0).sum()
        assert not np.array_equal(new_a, answer)
        # The clue pattern moves as a whole: the puzzle's solution is the moved answer.
        assert np.array_equal(solve(new_q, max_solutions=1).solutions[0], new_a)
        # A blank-pattern row sum profile is kept up to a transpose: detects transposed draws.
        rows = np.sort((new_q.reshape(9, 9) != 0).sum(axis=1))
        transposed += not np.array_equal(rows, np.sort((question.reshape(9, 9) != 0).sum(axis=1)))
    assert np.array_equal(question, q_before) and np.array_equal(answer, a_before)
    assert 0 < transposed < 30  # about half the draws transpose (this puzzle is not symmetric)


def test_canonical_form_invariance():
    rng = np.random.default_rng(1)
    solution = random_solved_grid(rng)
    puzzle = make_puzzle(solution, rng, 55)
    key_q, key_a = canonical_form(puzzle), canonical_form(solution)
    assert isinstance(key_q, bytes) and len(key_q) == 81
    assert key_q != key_a
    for _ in range(12):
        new_q, new_a = augment(puzzle, solution, rng)
        assert canonical_form(new_q) == key_q
        assert canonical_form(new_a) == key_a
    # Each generator on its own: transpose, relabel, swap two rows of one band.
    board = puzzle.reshape(9, 9)
    assert canonical_form(board.T.reshape(81)) == key_q
    relabel = np.array([0, 9, 8, 7, 6, 5, 4, 3, 2, 1], dtype=np.int8)
    assert canonical_form(relabel[puzzle]) == key_q
    assert canonical_form(board[[1, 0, 2, 3, 4, 5, 6, 7, 8]].reshape(81)) == key_q


def test_canonical_form_separates_classes():
    rng = np.random.default_rng(2)
    puzzles = [make_puzzle(random_solved_grid(rng), rng, 50) for _ in range(4)]
    assert len({canonical_form(p) for p in puzzles}) == 4
    # Same clue pattern, one clue changed (8 -> 2, still a legal clue there): the sorted
    # per-digit clue counts change, which no symmetry can do, so the classes differ.
    base = parse_grid(INKALA)
    changed = base.copy()
    changed[0] = 2
    counts = [sorted(np.bincount(g, minlength=10)[1:]) for g in (base, changed)]
    assert counts[0] != counts[1]
    assert canonical_form(base) != canonical_form(changed)
    # Row swaps across bands are not symmetries: swapping rows 0 and 3 of a solved grid
    # breaks the boxes, and a valid grid never shares a class with an invalid one.
    solution = parse_grid(P17_SOLUTION).reshape(9, 9)
    broken = solution[[3, 1, 2, 0, 4, 5, 6, 7, 8]].reshape(81)
    assert canonical_form(broken) != canonical_form(solution.reshape(81))


def test_canonical_form_of_sparse_and_irregular_grids():
    # Nearly blank grids tie almost everywhere: still exact, and still invariant.
    rng = np.random.default_rng(5)
    sparse = np.zeros(81, dtype=np.int8)
    sparse[[3, 40, 77]] = [4, 4, 7]
    key = canonical_form(sparse)
    for _ in range(3):
        assert canonical_form(augment(sparse, sparse, rng)[0]) == key
    # Grids with repeated digits in a line are accepted and handled the same way.
    junk = np.where(rng.random(81) < 0.5, rng.integers(1, 10, 81), 0).astype(np.int8)
    assert canonical_form(augment(junk, junk, rng)[0]) == canonical_form(junk)
    assert canonical_form(np.zeros(81, dtype=np.int8)) == bytes(81)
