"""The reference data layout shared by Sudoku-Extreme and Maze-Hard: CSV files
``source,question,answer,rating``, either a directory with ``train.csv`` and ``test.csv`` or
one file split with the data seed."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from reasonbench.util import hub
from reasonbench.util.errors import UserError

HEADER = ["source", "question", "answer", "rating"]

# A reader turns one file into equal-length arrays (question, answer, rating, ...) and the
# number of rows it skipped.
Reader = Callable[[Path], tuple[tuple[np.ndarray, ...], int]]


REFERENCE_FILES = ("train.csv", "test.csv")
# the reference builders' array layout (HRM's puzzle data sets, EqR's Maze-Unique): per split a
# folder of .npy arrays
REFERENCE_ARRAYS = ("train/all__inputs.npy", "train/all__labels.npy", "test/all__inputs.npy", "test/all__labels.npy")


@dataclass
class CsvSource:
    """Where a task's reference CSVs are read from, resolved once: a local file or folder, or
    a Hub dataset (``hf://OWNER/NAME[@REVISION][:PATH]``, fetched into the Hub cache here)."""

    given: str  # task.path as written
    local: Path  # the file or folder read
    files: dict[str, Path]  # name as the data set calls it -> local file
    hub: dict[str, Any] | None = None  # {"repo", "revision" (commit sha), "requested_revision"}
    _hashes: dict[str, str] = field(default_factory=dict)
    layout: tuple[str, ...] = REFERENCE_FILES  # the files a folder holds: REFERENCE_FILES or REFERENCE_ARRAYS

    @classmethod
    def resolve(cls, path: str, layout: tuple[str, ...] = REFERENCE_FILES) -> "CsvSource":
        if not hub.is_hub(path):
            local = Path(path)
            names = [f for f in layout if (local / f).is_file()] if local.is_dir() else []
            files = {n: local / n for n in names} if local.is_dir() else {local.name: local}
            return cls(path, local, files, layout=layout)
        ref = hub.parse(path, "task.path", "dataset")
        sub = ref.path or ""
        names = [sub] if sub.endswith(".csv") else [f"{sub}/{f}" if sub else f for f in layout]
        sha, found = hub.download(ref, names, "dataset")
        local = found[names[0]]
        if len(names) > 1:  # the folder holding the layout's files
            for _ in Path(layout[0]).parts:
                local = local.parent
        return cls(path, local, found, {"repo": ref.repo, "revision": sha,
                                        "requested_revision": ref.revision or "main"}, layout=layout)

    def stamp(self) -> Any:
        """The recipe's ``source``: a Hub commit names its files' contents on every machine;
        a local path is stamped with sizes and mtimes, so the cache notices edited files."""
        if self.hub is None:
            return files_stamp(self.given, "*.csv" if self.layout == REFERENCE_FILES else "*/all__*.npy")
        return {"hub": self.hub["repo"], "revision": self.hub["revision"], "files": sorted(self.files)}

    def provenance(self) -> dict[str, Any]:
        """``provenance.data_source`` of a record: where, which commit, each file's sha256."""
        if not self._hashes:
            self._hashes = {name: hub.sha256_file(f) for name, f in self.files.items() if f.is_file()}
        if self.hub is not None:
            return {"kind": "hub", "path": self.given, **self.hub, "files": dict(self._hashes)}
        return {"kind": "local", "path": str(self.local.resolve()), "files": dict(self._hashes)}


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
                noun: str) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], dict[str, int]]:
    """(train arrays, test arrays, rows skipped per file name) from a directory with
    ``train.csv`` and ``test.csv`` (``num_test`` of the test rows sampled with ``rng``; None
    keeps all) or from one file, of which ``num_test`` rows (default a tenth) become the test
    split."""
    if path.is_dir():
        files = [path / name for name in REFERENCE_FILES]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UserError(f"task.path {path}: missing {', '.join(missing)}")
        (train, skipped_train), (test, skipped_test) = read(files[0]), read(files[1])
        if num_test is not None and num_test < len(test[0]):
            keep = np.sort(rng.permutation(len(test[0]))[:num_test])
            test = tuple(a[keep] for a in test)
        return train, test, {files[0].name: skipped_train, files[1].name: skipped_test}
    if not path.exists():
        raise UserError(f"task.path {path}: no such file or directory")
    rows, skipped = read(path)
    n_test = num_test or max(1, len(rows[0]) // 10)
    if n_test >= len(rows[0]):
        raise UserError(f"task.path {path}: {len(rows[0])} {noun} cannot give {n_test} test {noun}")
    order = rng.permutation(len(rows[0]))
    return tuple(a[order[n_test:]] for a in rows), tuple(a[order[:n_test]] for a in rows), {path.name: skipped}


def skipped_line(skipped: dict[str, int]) -> str:
    """``3 invalid rows skipped (train.csv 2, test.csv 1)`` for data info/build."""
    total = sum(skipped.values())
    detail = ", ".join(f"{name} {n:,}" for name, n in skipped.items())
    return f"{total:,} invalid row{'s' if total != 1 else ''} skipped ({detail})"


def sample_train_val(pool: tuple[np.ndarray, ...], num_train: int | None, num_val: int | None,
                     rng: np.random.Generator, noun: str,
                     fit: bool = False) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """``num_train`` training and ``num_val`` held-out validation rows sampled from ``pool``
    (``num_train`` None: every row not held out; ``num_val`` None: a tenth of the rows).
    ``fit``: sizes larger than the pool holds shrink to it: validation to a tenth of the rows
    when the number asked would take half of them or more, training to the rows left."""
    rows = len(pool[0])
    if num_val is None or (fit and num_val >= rows / 2):
        num_val = max(1, rows // 10)
    if fit and num_train is not None:
        num_train = min(num_train, rows - num_val)
    if num_train is None:
        if num_val >= len(pool[0]):
            raise UserError(f"task.num_val {num_val} leaves none of the {len(pool[0])} training {noun} to train on")
        num_train = len(pool[0]) - num_val
    needed = num_train + num_val
    if len(pool[0]) < needed:
        raise UserError(f"task.num_train + task.num_val = {needed} exceeds the {len(pool[0])} training {noun} available")
    order = rng.permutation(len(pool[0]))
    return tuple(a[order[:num_train]] for a in pool), tuple(a[order[num_train:needed]] for a in pool)


class ReferenceCsvSource:
    """For tasks whose ``path`` names reference CSVs (a file, a folder, or ``hf://``) and that
    generate their data otherwise: the source resolved once, its recipe stamp, provenance,
    and the count of invalid rows skipped (``skip_invalid``), kept in the data cache."""

    path: str | None
    skip_invalid: bool
    skipped_rows: dict[str, int]

    def csv_source(self) -> CsvSource | None:
        """The resolved source (a Hub dataset is fetched here, once); None: generated data."""
        if not self.path:
            return None
        layout = self.reference_layout()
        if (getattr(self, "_csv_source", None) is None or self._csv_source.given != self.path
                or self._csv_source.layout != layout):
            self._csv_source = CsvSource.resolve(self.path, layout)
        return self._csv_source

    def reference_layout(self) -> tuple[str, ...]:
        """The files a folder or Hub dataset of this task holds (``REFERENCE_FILES``: CSVs)."""
        return REFERENCE_FILES

    def source_stamp(self) -> Any:
        source = self.csv_source()
        return source.stamp() if source is not None else "generated"

    def generated_source(self) -> dict[str, Any]:
        """``provenance.data_source`` of generated data (tasks say which generator)."""
        raise NotImplementedError

    def data_source(self) -> dict[str, Any]:
        source = self.csv_source()
        if source is None:
            return self.generated_source()
        return {**source.provenance(), "skipped_rows": dict(self.skipped_rows)}

    def source_lines(self) -> list[str]:
        """``data info`` lines naming a Hub source (repo, commit, where the cache keeps it)."""
        source = self.csv_source()
        if source is None or source.hub is None:
            return []
        return [f"source       {source.given}: Hugging Face dataset {source.hub['repo']} at commit "
                f"{source.hub['revision']}", f"hub cache    {source.local}"]

    def skipped_report(self) -> str | None:
        """The skipped-rows line of ``data info``/``data build`` (None: nothing read from CSV)."""
        if not self.path or not self.skip_invalid:  # without skip_invalid a bad row stops the build
            return None
        return skipped_line(self.skipped_rows)

    def build_info(self) -> dict[str, Any]:
        return {"skipped_rows": dict(self.skipped_rows)}

    def restore_build_info(self, info: Any) -> bool:
        counts = info.get("skipped_rows") if isinstance(info, dict) else None
        if isinstance(counts, dict) and all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in counts.items()):
            self.skipped_rows = dict(counts)
            return True
        if self.path and self.skip_invalid:  # a cache file from before the counts were kept
            return False
        self.skipped_rows = {}  # nothing is skipped without skip_invalid
        return True
