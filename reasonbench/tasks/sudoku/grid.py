"""Sudoku grids: parsing, an exact rating solver, generation, augmentation, canonical forms.

A grid is a numpy ``int8`` array of shape ``(81,)`` in row-major order; 0 is a blank and
1..9 are digits. All randomness comes from a caller-supplied ``np.random.Generator``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "SolveResult",
    "augment",
    "augment_batch",
    "canonical_form",
    "count_solutions",
    "format_grid",
    "is_consistent",
    "is_solved_grid",
    "make_puzzle",
    "parse_grid",
    "random_solved_grid",
    "rating",
    "solve",
]

# ---------------------------------------------------------------------------------------------
# Geometry tables, built once. Candidate sets are 9-bit masks: bit d-1 set <=> digit d allowed.

_ALL = 0x1FF
_ROWS = tuple(tuple(r * 9 + c for c in range(9)) for r in range(9))
_COLS = tuple(tuple(r * 9 + c for r in range(9)) for c in range(9))
_BOXES = tuple(
    tuple((br * 3 + r) * 9 + bc * 3 + c for r in range(3) for c in range(3))
    for br in range(3) for bc in range(3)
)
_UNITS = _ROWS + _COLS + _BOXES
_PEERS = tuple(
    tuple(sorted({p for unit in _UNITS if i in unit for p in unit} - {i})) for i in range(81)
)
_POPCOUNT = tuple(bin(m).count("1") for m in range(_ALL + 1))
_DIGIT_OF_BIT = {1 << d: d + 1 for d in range(9)}


def _as_grid(grid: np.ndarray, name: str = "grid") -> np.ndarray:
    """Validate and return ``grid`` as a flat int8 array of 81 values in 0..9 (a (9, 9) array
    is flattened row-major). Never returns the caller's buffer when a copy is needed later."""
    arr = np.asarray(grid)
    if arr.shape == (9, 9):
        arr = arr.reshape(81)
    if arr.shape != (81,):
        raise ValueError(f"{name}: expected shape (81,), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() > 9:
        raise ValueError(f"{name}: values must be in 0..9")
    return arr.astype(np.int8, copy=False)


# ---------------------------------------------------------------------------------------------
# Text form


def parse_grid(text: str) -> np.ndarray:
    """Parse 81 characters (digits 1-9; '.' or '0' for a blank) into an int8 grid.

    Surrounding whitespace is ignored; anything else raises ValueError naming the problem.
    """
    text = text.strip()
    if len(text) != 81:
        raise ValueError(f"expected 81 cells, got {len(text)}")
    values = np.empty(81, dtype=np.int8)
    for i, ch in enumerate(text):
        if ch == ".":
            values[i] = 0
        elif "0" <= ch <= "9":
            values[i] = ord(ch) - 48
        else:
            raise ValueError(f"invalid character {ch!r} at cell {i}")
    return values


def format_grid(grid: np.ndarray) -> str:
    """The 81-character text form of ``grid``, '.' for blanks (inverse of :func:`parse_grid`)."""
    arr = _as_grid(grid)
    return "".join("." if v == 0 else chr(48 + int(v)) for v in arr)


# ---------------------------------------------------------------------------------------------
# Validity


def _box_rows(board: np.ndarray) -> np.ndarray:
    """(9, 9) board -> (9, 9) array whose row k holds the cells of box k."""
    return board.reshape(3, 3, 3, 3).transpose(0, 2, 1, 3).reshape(9, 9)


def is_solved_grid(grid: np.ndarray) -> bool:
    """True iff ``grid`` is complete and every row, column and box is a permutation of 1..9."""
    try:
        arr = _as_grid(grid)
    except ValueError:
        return False
    board = arr.reshape(9, 9)
    target = np.arange(1, 10)
    return all(
        bool((np.sort(lines, axis=1) == target).all())
        for lines in (board, board.T, _box_rows(board))
    )


def is_consistent(question: np.ndarray, answer: np.ndarray) -> bool:
    """True iff ``answer`` carries every clue (non-blank cell) of ``question`` unchanged."""
    q, a = _as_grid(question, "question"), _as_grid(answer, "answer")
    given = q != 0
    return bool((a[given] == q[given]).all())


# ---------------------------------------------------------------------------------------------
# Exact solver


@dataclass(frozen=True)
class SolveResult:
    """Outcome of :func:`solve`.

    Attributes:
        solutions: up to ``max_solutions`` complete grids (int8, shape (81,)), in search order.
        guesses: backtracks made before the first solution was found (see :func:`solve`).
    """

    solutions: list[np.ndarray]
    guesses: int


def _propagate(cands: list[int], queue: list[int]) -> bool:
    """Naked and hidden singles to a fixed point, in place; False on a contradiction.

    ``queue`` holds cells that became fixed (a single candidate) and whose digit has not yet
    been removed from their peers.
    """
    peers, units = _PEERS, _UNITS
    while True:
        # Naked singles: a fixed cell removes its digit from its 20 peers.
        while queue:
            i = queue.pop()
            m = cands[i]
            keep = _ALL ^ m
            for p in peers[i]:
                c = cands[p]
                if c & m:
                    c &= keep
                    if not c:
                        return False
                    cands[p] = c
                    if not c & (c - 1):
                        queue.append(p)
        # Hidden singles: a digit with exactly one place left in a unit goes there.
        for unit in units:
            once = twice = 0
            for i in unit:
                c = cands[i]
                twice |= once & c
                once |= c
            if once != _ALL:
                return False  # some digit has no place in this unit
            single = once & ~twice
            if single:
                for i in unit:
                    c = cands[i]
                    s = c & single
                    if s and s != c:
                        if s & (s - 1):
                            return False  # one cell is the only place for two digits
                        cands[i] = s
                        queue.append(i)
        if not queue:
            return True


def _initial_candidates(grid: np.ndarray, cell: int = -1, banned: int = 0) -> list[int] | None:
    """Propagated candidates for ``grid``, or None if it is contradictory. Optionally forbid
    digit ``banned`` in blank ``cell`` (used by the uniqueness test of :func:`make_puzzle`)."""
    cands = [_ALL] * 81
    if cell >= 0:
        cands[cell] = _ALL & ~(1 << (banned - 1))
    queue = []
    for i, v in enumerate(grid.tolist()):
        if v:
            cands[i] = 1 << (v - 1)
            queue.append(i)
    return cands if _propagate(cands, queue) else None


class _Search:
    """Depth-first search over propagated states; see :func:`solve` for the counting rule."""

    def __init__(self, max_solutions: int, rng: np.random.Generator | None = None) -> None:
        self.max_solutions = max_solutions
        self.rng = rng
        self.solutions: list[list[int]] = []
        self.guesses = 0

    def run(self, cands: list[int]) -> None:
        pop = _POPCOUNT
        best, best_n = -1, 10
        for i in range(81):
            n = pop[cands[i]]
            if 1 < n < best_n:
                best, best_n = i, n
                if n == 2:  # nothing can beat two, so the first such cell is the tie winner
                    break
        if best < 0:
            self.solutions.append(cands)
            return
        m = cands[best]
        bits = [1 << d for d in range(9) if m >> d & 1]
        if self.rng is not None:
            bits = [bits[k] for k in self.rng.permutation(len(bits))]
        for bit in bits:
            before = len(self.solutions)
            child = cands.copy()
            child[best] = bit
            if _propagate(child, [best]):
                self.run(child)
                if len(self.solutions) >= self.max_solutions:
                    return
            # A branch that yielded nothing is undone: that is one backtrack, but only the
            # ones made while the first solution is still being sought count.
            if len(self.solutions) == before and not self.solutions:
                self.guesses += 1


def _to_grid(cands: list[int]) -> np.ndarray:
    return np.array([_DIGIT_OF_BIT[c] for c in cands], dtype=np.int8)


def solve(grid: np.ndarray, max_solutions: int = 2) -> SolveResult:
    """Exact solver: up to ``max_solutions`` solutions of ``grid`` and its backtrack count.

    Method: bitmask candidates; naked singles and hidden singles (rows, columns, boxes) to a
    fixed point; then branch on the blank cell with the fewest candidates (ties: lowest
    index), trying its digits in increasing order, depth first.

    ``guesses`` is the number of backtracks in the style of tdoku's Sudoku-Extreme rating:
    every time a tried candidate digit at a branch cell leads to a contradiction (at once by
    propagation, or later because its whole subtree holds no solution) and is undone, the count
    goes up by one; only backtracks made before the FIRST solution is found are counted. So 0
    means singles alone solve the puzzle, or the first guess on every branch was right. The
    value depends only on the grid (the search order is fixed), not on ``max_solutions``.
    Contradictory clues give no solutions.
    """
    if max_solutions < 1:
        raise ValueError(f"max_solutions must be >= 1, got {max_solutions}")
    arr = _as_grid(grid)
    cands = _initial_candidates(arr)
    if cands is None:
        return SolveResult(solutions=[], guesses=0)
    search = _Search(max_solutions)
    search.run(cands)
    return SolveResult(solutions=[_to_grid(s) for s in search.solutions], guesses=search.guesses)


def count_solutions(grid: np.ndarray, limit: int = 2) -> int:
    """Number of solutions of ``grid``, counting no further than ``limit``."""
    return len(solve(grid, max_solutions=limit).solutions)


def rating(grid: np.ndarray) -> int:
    """Backtracks needed to find the first solution (``solve(grid, 1).guesses``)."""
    return solve(grid, max_solutions=1).guesses


# ---------------------------------------------------------------------------------------------
# Generation


def random_solved_grid(rng: np.random.Generator) -> np.ndarray:
    """A random complete grid: the exact solver run on the empty grid with the digits of
    every branch tried in a random order, so any valid grid can come out (not a relabelled
    fixed pattern). Deterministic for a given generator state."""
    search = _Search(1, rng)
    search.run([_ALL] * 81)
    return _to_grid(search.solutions[0])


def _unique_without(puzzle: np.ndarray, cell: int, digit: int) -> bool:
    """With ``puzzle`` known to have a unique solution that has ``digit`` at ``cell``, is the
    solution still unique once ``cell`` is blanked? Any second solution must differ at ``cell``
    (otherwise it would solve the unblanked puzzle too), so look only for solutions there
    without ``digit``: a single-solution search that usually dies in propagation."""
    probe = puzzle.copy()
    probe[cell] = 0
    cands = _initial_candidates(probe, cell, digit)
    if cands is None:
        return True
    search = _Search(1)
    search.run(cands)
    return not search.solutions


def make_puzzle(solution: np.ndarray, rng: np.random.Generator, num_blanks: int,
                unique: bool = True) -> np.ndarray:
    """Blank cells of the complete grid ``solution`` in a random order until ``num_blanks``
    cells are blank; ``solution`` itself is left untouched.

    With ``unique=True`` a removal that would give the puzzle a second solution is skipped
    (the cell keeps its clue) and the next cell in the order is tried. Blanking more cells can
    only add solutions, so a skipped cell can never be blanked later: when ``num_blanks`` is
    out of reach, the single pass ends with a minimal puzzle (no clue can be removed) holding
    fewer than ``num_blanks`` blanks, and that puzzle is returned.
    """
    full = _as_grid(solution, "solution")
    if not is_solved_grid(full):
        raise ValueError("solution: not a complete valid Sudoku grid")
    if not 0 <= num_blanks <= 81:
        raise ValueError(f"num_blanks must be in 0..81, got {num_blanks}")
    puzzle = full.copy()
    blanks = 0
    for cell in rng.permutation(81).tolist():
        if blanks == num_blanks:
            break
        if unique and not _unique_without(puzzle, cell, int(puzzle[cell])):
            continue
        puzzle[cell] = 0
        blanks += 1
    return puzzle


# ---------------------------------------------------------------------------------------------
# Symmetries


def augment(question: np.ndarray, answer: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random validity-preserving transform applied to both grids, drawn exactly as the
    reference Sudoku-Extreme ``shuffle_sudoku`` (sapientinc/HRM) draws it, with ``rng`` in place
    of the global numpy state: a digit permutation (blank stays 0), a transpose with
    probability 1/2, then a row permutation (bands shuffled, rows shuffled within each band)
    and a column permutation (same, with stacks): ``new[i, j] = old[row_perm[i], col_perm[j]]``
    on the possibly transposed board."""
    q, a = augment_batch(_as_grid(question, "question")[None], _as_grid(answer, "answer")[None], rng)
    return q[0], a[0]


def augment_batch(questions: np.ndarray, answers: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """:func:`augment` of each row of int8 ``[N, 81]`` grids in turn: the same draws from
    ``rng`` in the same order, so the same grids; the grids are moved all at once."""
    n = len(questions)
    digit_maps = np.zeros((n, 10), dtype=np.int8)
    transpose = np.zeros(n, dtype=bool)
    bands, stacks = np.empty((n, 3), dtype=np.int64), np.empty((n, 3), dtype=np.int64)
    rows_in_band, cols_in_stack = np.empty((n, 3, 3), dtype=np.int64), np.empty((n, 3, 3), dtype=np.int64)
    for i in range(n):  # same draw order as the reference, so one seed reproduces its transforms
        digit_maps[i, 1:] = rng.permutation(np.arange(1, 10))
        transpose[i] = rng.random() < 0.5
        bands[i] = rng.permutation(3)
        for k in range(3):
            rows_in_band[i, k] = rng.permutation(3)
        stacks[i] = rng.permutation(3)
        for k in range(3):
            cols_in_stack[i, k] = rng.permutation(3)
    row_perm = (bands[:, :, None] * 3 + rows_in_band).reshape(n, 9)
    col_perm = (stacks[:, :, None] * 3 + cols_in_stack).reshape(n, 9)
    mappings = (row_perm[:, :, None] * 9 + col_perm[:, None, :]).reshape(n, 81)

    def apply(grids: np.ndarray) -> np.ndarray:
        boards = grids.reshape(n, 9, 9)
        flat = np.where(transpose[:, None, None], boards.transpose(0, 2, 1), boards).reshape(n, 81)
        moved = np.take_along_axis(flat, mappings, axis=1)
        return np.take_along_axis(digit_maps, moved.astype(np.int64), axis=1)

    return apply(questions), apply(answers)


def _line_perms() -> np.ndarray:
    """All 1296 orders of 9 lines allowed by the group: bands (stacks) permuted, then lines
    permuted within each band. Shape (1296, 9)."""
    out = []
    for bands in itertools.permutations(range(3)):
        for inner in itertools.product(itertools.permutations(range(3)), repeat=3):
            out.append([b * 3 + r for b, within in zip(bands, inner) for r in within])
    return np.array(out, dtype=np.intp)


_LINE_PERMS = _line_perms()
_N_PERMS = len(_LINE_PERMS)
# First-row states, in (transpose flag, source row, column order) order: 2 * 9 * 1296.
_FLIP0 = np.repeat(np.arange(2), 9 * _N_PERMS)
_ROW0 = np.tile(np.repeat(np.arange(9), _N_PERMS), 2)
_COLS0 = np.tile(_LINE_PERMS, (18, 1))
_POW10 = 10 ** np.arange(8, -1, -1, dtype=np.int64)  # a row of labels 0..9 -> one int64
_POW9 = 9 ** np.arange(8, -1, -1, dtype=np.int64)
_BAND_OF_ROW = np.arange(9) // 3
_EARLIER = np.tri(9, 9, -1, dtype=bool)  # [j, i]: i < j


def canonical_form(grid: np.ndarray) -> bytes:
    """Canonical representative of ``grid`` (blanks allowed) under the Sudoku symmetry group:
    digit relabelling, transpose, band and row-within-band permutations, stack and
    column-within-stack permutations (2 * 6^8 * 9! elements). Two grids get equal bytes iff one
    maps to the other.

    Definition: over all 2 * 1296 * 1296 position transforms, relabel the digits of the moved
    grid in order of first appearance (row-major; blanks stay 0) and take the lexicographically
    smallest 81-cell result; its 81 values are returned as bytes. The minimum over the orbit is
    an orbit invariant and, being a member of the orbit, determines it: hence exact.

    Cost: rather than the 3.4M transforms, the minimum is built one output row at a time. A
    state is (transpose flag, source rows placed so far, full column order, digit labels so
    far). The first row starts from all 2 * 9 * 1296 = 23,328 states (numpy-vectorised); each
    later row expands every state by the source rows it may place next, keeps only the states
    whose new output row is the smallest, and merges states that agree on everything that
    shapes later rows. Keeping every tie makes the result exact. Usually a handful of states
    survive the first two rows: a puzzle costs about 4-10 ms, a complete grid about 20-30 ms
    (its first row ties under every column order). The merge bounds the worst case (a nearly
    blank grid, where everything ties) to about 2 * 27 * 1296 states per row: ~0.3 s for the
    empty grid.
    """
    arr = _as_grid(grid)
    board = arr.reshape(9, 9)
    boards = np.stack([board, board.T])  # indexed by the transpose flag
    flat = boards.reshape(-1)
    first, states = _first_row(board, boards)
    rows_out = [first]
    for k in range(1, 9):
        row, states = _next_row(k, flat, states)
        rows_out.append(row)
        if k < 8 and len(states.flip) > 1:
            states = _merge_states(states)
    return np.concatenate(rows_out).astype(np.uint8).tobytes()


class _States(NamedTuple):
    """The partial transforms still in the running for ``canonical_form``, one entry each."""

    flip: np.ndarray  # transpose flag
    cols: np.ndarray  # (M, 9) column order
    used: np.ndarray  # bitmask of source rows already placed
    labels: np.ndarray  # (M, 10) digit -> label so far (0: none yet; blanks stay 0)
    next_label: np.ndarray  # the label the next new digit gets


def _first_row(board: np.ndarray, boards: np.ndarray) -> tuple[np.ndarray, _States]:
    """Output row 0: any source row of either orientation, under any column order. Returns the
    smallest such row and every state that gives it."""
    values = boards[:, :, _LINE_PERMS].reshape(-1, 9)
    if _lines_distinct(board):
        # With no repeated digit in a line, labels in a first row just count its clues.
        given = values != 0
        out = np.cumsum(given, axis=1, dtype=np.int8) * given
        best = _best(out)
        values, out = values[best], out[best]
        labels = np.zeros((len(out), 10), dtype=np.int8)
        labels[np.arange(len(out))[:, None], values] = out
        labels[:, 0] = 0
        next_label = out.max(axis=1) + 1
    else:
        out, labels, next_label = _first_labels(values)
        best = _best(out)
        out, labels, next_label = out[best], labels[best], next_label[best]
    used = np.left_shift(1, _ROW0[best])
    return out[0], _States(_FLIP0[best], _COLS0[best], used, labels, next_label)


def _next_row(k: int, flat: np.ndarray, states: _States) -> tuple[np.ndarray, _States]:
    """Output row ``k`` (1..8): every state expanded by the source rows it may place next; the
    smallest new row and the states that give it."""
    # Rows each state may place next: at a band boundary any unused row (its whole band is
    # unused then); inside a band only the unused rows of the band being filled.
    free = (states.used[:, None] >> np.arange(9)) & 1 == 0
    if k % 3:
        free &= _BAND_OF_ROW[None, :] == _current_band(states.used)[:, None]
    src, row = np.nonzero(free)
    cols_e = states.cols[src]
    values = flat[(states.flip[src] * 81 + row * 9)[:, None] + cols_e]  # (M, 9) source digits
    if (states.next_label == 10).all():
        # Every digit already has a label (always so for a complete grid): one lookup, and
        # no per-child copies of the label tables.
        out = np.take(states.labels.reshape(-1), (src * 10)[:, None] + values)
        best = _best(out)
        parent = src[best]
        labels, next_label = states.labels[parent], states.next_label[parent]
    else:
        labels_e, next_e = states.labels[src], states.next_label[src]
        out = _continue_labels(values, labels_e, next_e)
        best = _best(out)
        parent = src[best]
        labels, next_label = labels_e[best], next_e[best]
    used = states.used[parent] | (1 << row[best])
    return out[np.argmax(best)], _States(states.flip[parent], cols_e[best], used, labels, next_label)


def _merge_states(states: _States) -> _States:
    """Different orders of the same rows can meet again: one state of those whose futures are
    identical (same orientation, placed-row set - which also fixes the band being filled -
    column order and labels)."""
    ident = np.stack([
        (states.flip.astype(np.int64) << 40) | (states.used << 30) | (states.cols @ _POW9),
        states.labels[:, 1:].astype(np.int64) @ _POW10,
    ], axis=1)
    _, keep = np.unique(ident, axis=0, return_index=True)
    return _States(*(field[keep] for field in states))


def _best(out: np.ndarray) -> np.ndarray:
    """Mask of the rows (M, 9) of labels that are lexicographically smallest."""
    keys = out.astype(np.int64) @ _POW10
    return keys == keys.min()


def _lines_distinct(board: np.ndarray) -> bool:
    """True iff no row and no column of ``board`` repeats a digit (blanks aside)."""
    for lines in (board, board.T):
        ordered = np.sort(lines, axis=1)
        if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != 0)).any():
            return False
    return True


def _current_band(used: np.ndarray) -> np.ndarray:
    """Band being filled, for states placed mid-band: the band with 1 or 2 rows used."""
    per_band = np.stack([(used >> (3 * b)) & 7 for b in range(3)], axis=1)
    partial = (per_band != 0) & (per_band != 7)
    return np.argmax(partial, axis=1)


def _first_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relabel rows of digits (M, 9) in order of first appearance, from no labels at all.
    Returns the relabelled rows, the label tables (M, 10) and the next free label (M,)."""
    same = values[:, :, None] == values[:, None, :]  # [m, j, i]: cell j repeats cell i
    first = (values != 0) & ~(same & _EARLIER).any(axis=2)
    rank = np.cumsum(first, axis=1, dtype=np.int8)  # label handed out at each first appearance
    first_at = np.argmax(same, axis=2)  # earliest cell holding the same digit
    out = np.take_along_axis(rank, first_at, axis=1)
    out[values == 0] = 0
    labels = np.zeros((len(values), 10), dtype=np.int8)
    labels[np.arange(len(values))[:, None], values] = out
    labels[:, 0] = 0
    return out, labels, rank[:, -1] + 1


def _continue_labels(values: np.ndarray, labels: np.ndarray, next_label: np.ndarray) -> np.ndarray:
    """Relabel rows of digits (M, 9), extending ``labels`` (M, 10) and ``next_label`` (M,) in
    place with the digits seen for the first time."""
    idx = np.arange(len(values))
    out = np.empty_like(values)
    for j in range(9):
        v = values[:, j]
        lab = labels[idx, v]
        new = (v != 0) & (lab == 0)
        if new.any():
            labels[idx[new], v[new]] = next_label[new]
            lab = np.where(new, next_label, lab)
            next_label += new
        out[:, j] = lab
    return out


# ---------------------------------------------------------------------------------------------
# Hard puzzles: a random minimal puzzle is usually easy (rating 0-5), so hard ones are searched for.


def minimise(puzzle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Remove clues in random order while the solution stays unique: a minimal puzzle."""
    out = _as_grid(puzzle).copy()
    for cell in rng.permutation(81).tolist():
        if out[cell] and _unique_without(out, cell, int(out[cell])):
            out[cell] = 0
    return out


def _restore_uniqueness(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add clues of ``solution`` where a second solution disagrees, until it is unique."""
    while True:
        found = solve(puzzle, 2).solutions
        if len(found) == 1:
            return puzzle
        other = found[1] if (found[0] == solution).all() else found[0]
        cell = int(rng.choice(np.flatnonzero(other != solution)))
        puzzle[cell] = solution[cell]


def harden(solution: np.ndarray, rng: np.random.Generator, target_rating: int,
           max_moves: int = 300) -> tuple[np.ndarray, int]:
    """A unique, minimal puzzle for ``solution`` with rating >= ``target_rating`` if found
    within ``max_moves``; returns (puzzle, rating).

    Hill climbing: start from a random minimal puzzle; a move blanks two random clues,
    restores uniqueness with clues taken where a second solution disagrees, and minimises
    again; keep the move when the rating does not fall.
    """
    puzzle = make_puzzle(solution, rng, 81)
    current = rating(puzzle)
    for _ in range(max_moves):
        if current >= target_rating:
            break
        trial = puzzle.copy()
        trial[rng.choice(np.flatnonzero(trial), 2, replace=False)] = 0
        trial = minimise(_restore_uniqueness(trial, solution, rng), rng)
        score = rating(trial)
        if score >= current:
            puzzle, current = trial, score
    return puzzle, current


def extreme_puzzle(seed: int | np.random.SeedSequence, hard_fraction: float = 0.5,
                   hard_mean: float = 55.0) -> tuple[np.ndarray, np.ndarray, int]:
    """One Sudoku-Extreme-like puzzle: (question, answer, rating).

    The reference set mixes easy sources (rating 0) with very hard ones; here a puzzle is a
    random minimal puzzle with probability ``1 - hard_fraction``, else hardened towards a
    target rating drawn from an exponential distribution with mean ``hard_mean``. One seed
    per puzzle keeps the result independent of how puzzles are spread over processes.
    """
    rng = np.random.default_rng(seed)
    solution = random_solved_grid(rng)
    target = int(round(rng.exponential(hard_mean))) if rng.random() < hard_fraction else 0
    puzzle, score = harden(solution, rng, target) if target else (make_puzzle(solution, rng, 81), -1)
    return puzzle, solution, rating(puzzle) if score < 0 else score
