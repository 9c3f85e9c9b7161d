"""The task contract: a LightningDataModule over in-memory tensors plus its metadata.

Every batch is ``{"inputs": int64[B, L], "labels": int64[B, L] (-100 = ignored),
"puzzle_ids": int64[B]}``. A task builds its splits once (``build``), and the runner passes
``task.metadata`` to the model so that nobody types a vocabulary size.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import tempfile
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import lightning as L
import numpy as np
import torch

from reasonbench.util.distributed import rank_and_world
from reasonbench.nn.losses import IGNORE_INDEX
from reasonbench.tasks.images import grid_image, side_by_side

SPLITS = ("train", "val", "test")
CACHE_FORMAT = 2  # layout of a data-cache file; files of another layout are rebuilt
SEED_MAX = 2**32 - 1  # numpy's seed range
# built by tasks that generate their data and are asked to: harder than anything in training
OOD_SPLIT = "ood"

# distinct fills for token ids (pad first)
PALETTE = np.array([(255, 255, 255), (40, 40, 40), (230, 230, 230), (66, 133, 244), (52, 168, 83),
                    (251, 188, 5), (234, 67, 53), (155, 89, 182), (26, 188, 156), (230, 126, 34),
                    (127, 140, 141), (241, 196, 215)], dtype=np.uint8)


def _ids_image(ids: torch.Tensor, shape: tuple[int, int], wrong: np.ndarray | None = None,
               palette: np.ndarray = PALETTE) -> np.ndarray:
    grid = ids[: shape[0] * shape[1]].view(shape).cpu().numpy()
    colours = palette[np.clip(grid, 0, None) % len(palette)]  # ignored labels (-100) as pad
    return grid_image(colours, wrong=wrong, cell=max(4, min(14, 360 // max(shape))))


def physical_memory() -> int | None:
    """Bytes of memory of this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_planned_size(examples: int, seq_len: int, options: str) -> None:
    """ValueError when ``examples`` sequences of ``seq_len`` ids (inputs and labels, int64) cannot
    fit in this machine's memory: said at once, instead of after hours of generation or in a
    MemoryError traceback. ``options`` names the settings that set the size."""
    needed, memory = examples * seq_len * 2 * 8, physical_memory()
    if memory and needed > memory:
        raise ValueError(f"{options}: too large: {examples:,} examples of {seq_len:,} ids would need "
                         f"{needed / 2**30:,.0f} GiB of memory; this machine has {memory / 2**30:,.0f} GiB")


@dataclass(frozen=True)
class TaskMetadata:
    """What a model needs to know about a task."""

    name: str
    vocab_size: int
    seq_len: int
    num_puzzle_ids: int
    grid_shape: tuple[int, int]
    pad_id: int = 0
    ignore_label_id: int = IGNORE_INDEX
    scoring: str = "exact"  # how the headline number is computed
    extra_metrics: tuple[str, ...] = ()  # per-example booleans from ``ReasoningTask.score``
    # permutations of the vocabulary (new_id = perm[old_id]) that turn a puzzle and its answer
    # into an equivalent puzzle and answer; the first is the identity (test-time voting)
    relabellings: tuple[tuple[int, ...], ...] = ()
    # ids of interchangeable symbols (Sudoku's digits, ARC's colours): renaming them consistently
    # in a puzzle and its answer gives a puzzle of the same kind; the other ids (pad, blank,
    # markers) keep a fixed meaning. Symbol-equivariant models (SE-RRM) share weights across
    # them. Empty: the task has none (a maze's cell kinds each mean something else).
    symbols: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Split:
    """One split held as tensors; indexing with a list of indices returns a whole batch."""

    inputs: torch.Tensor
    labels: torch.Tensor
    puzzle_ids: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)  # per-example extras (e.g. rating)

    def __post_init__(self) -> None:
        n = self.inputs.shape[0]
        if self.labels.shape != self.inputs.shape or self.puzzle_ids.shape != (n,):
            raise ValueError(f"inconsistent split shapes: inputs {tuple(self.inputs.shape)}, "
                             f"labels {tuple(self.labels.shape)}, puzzle_ids {tuple(self.puzzle_ids.shape)}")

    def __len__(self) -> int:
        return self.inputs.shape[0]


class Batches:
    """Batches gathered straight from a split's in-memory tensors (no workers, no collation).

    Training (``shuffle``): epoch ``e`` visits the split in a permutation drawn from
    ``(seed, e)``, in global batches of ``batch_size`` (a last partial batch is dropped: static
    shapes). With ``world`` processes, process ``rank`` takes the ``rank``-th contiguous slice of
    each global batch, so any number of devices trains on the same global batches. The position
    (epoch, batch) is ``state_dict``: Lightning stores it in checkpoints and a resumed run
    continues with the next batch. Evaluation: the split in order, one contiguous shard per
    process, nothing repeated or padded (metrics summed over processes count each example once).
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world: int = 1, pin_memory: bool = False,
                 extras: dict[str, torch.Tensor] | None = None) -> None:
        if shuffle and batch_size % world:
            raise ValueError(f"task.batch_size {batch_size} (the global batch) is not divisible by "
                             f"the {world} training processes")
        self.split, self.batch_size, self.shuffle, self.seed = split, batch_size, shuffle, seed
        self.rank, self.world, self.pin_memory = rank, world, pin_memory
        self.extras = extras or {}  # per-example tensors that travel in the batch (e.g. difficulty)
        self.epoch, self.position = 0, 0  # next batch to yield
        n = len(split)
        if shuffle:
            self._batches = n // batch_size
        else:
            start, stop = n * rank // world, n * (rank + 1) // world
            self._shard = (start, stop)
            self._batches = -(-(stop - start) // batch_size)

    def __len__(self) -> int:
        return self._batches

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(*self._shard)
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        return torch.randperm(len(self.split), generator=torch.Generator().manual_seed(seed))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if not self.shuffle:
            order = self._order()
            for start in range(0, len(order), self.batch_size):
                yield self._gather(order[start:start + self.batch_size])
            return
        # Lightning stops asking once it has had len() batches, so the epoch turns over here
        if self.position >= self._batches:
            self.epoch, self.position = self.epoch + 1, 0
        order = self._order()
        local = self.batch_size // self.world
        while self.position < self._batches:
            start = self.position * self.batch_size + self.rank * local
            self.position += 1
            yield self._gather(order[start:start + local])

    def _gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        # .long(): tasks may store ids compactly (int8); batches are int64 by contract
        batch = {"inputs": self.split.inputs[idx].long(), "labels": self.split.labels[idx].long(),
                 "puzzle_ids": self.split.puzzle_ids[idx], **{k: v[idx] for k, v in self.extras.items()}}
        if self.pin_memory:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


@dataclass
class Difficulty:
    """A per-example difficulty measure and its buckets: bucket ``i`` holds the values in
    ``[edges[i-1], edges[i])`` (the first from below, the last upwards)."""

    kind: str  # what is measured, e.g. "rating"
    values: torch.Tensor  # int64 [N]
    edges: list[int]

    def buckets(self) -> torch.Tensor:
        return torch.bucketize(self.values, torch.tensor(self.edges, dtype=self.values.dtype), right=True)

    def names(self) -> list[str]:
        bounds = [0, *self.edges, None]  # every measure here is a count: none below 0
        return [f">= {lo}" if hi is None else (f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}")
                for lo, hi in zip(bounds[:-1], bounds[1:])]


class ReasoningTask(L.LightningDataModule):
    """Base class of every task. Subclasses implement ``build`` and ``_metadata``.

    Args:
        batch_size: training examples per optimizer step (over all devices together).
        eval_batch_size: examples per batch at validation and test.
        data_seed: seed of the data: which puzzles are generated or sampled, the splits and the
            training order.
    """

    name: str = "task"
    palette: np.ndarray = PALETTE  # fill colour of each token id in pictures
    # the values options take when the user points ``path`` at data of their own and does not
    # set them (e.g. sizes: what the files hold); see ``config.apply_own_data_defaults``
    own_data_defaults: dict[str, Any] = {}
    own_data_sizes: tuple[str, ...] = ()  # size options: when the user sets one, sizes are not fitted to the files
    validation_source: str | None = None  # where the validation split comes from, for the run's summary

    # a process whose evaluation shard is empty (more processes than examples) still joins in
    allow_zero_length_dataloader_with_multiple_devices = True

    def __init__(self, batch_size: int = 32, eval_batch_size: int = 256, data_seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError("task.batch_size and task.eval_batch_size must be positive")
        try:
            seed = None if isinstance(data_seed, bool) else operator.index(data_seed)
        except TypeError:
            seed = None
        if seed is None or not 0 <= seed <= SEED_MAX:
            raise ValueError(f"task.data_seed must be an integer in 0..{SEED_MAX} (numpy's seed range), got {data_seed!r}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.data_seed = data_seed
        self.splits: dict[str, Split] = {}
        self._fingerprint: str | None = None

    # --- what a task implements -------------------------------------------------------
    def build(self) -> dict[str, Split]:
        """Read or generate the data: a Split for each of 'train', 'val', 'test' (and 'ood'
        where the task is asked for an out-of-distribution split)."""
        raise NotImplementedError

    def ood_definition(self) -> str | None:
        """What the built out-of-distribution split holds (e.g. more blanks, longer paths than
        any training example), or None: the task built none, and the test examples harder than
        every training example stand in for it."""
        return None

    @property
    def metadata(self) -> TaskMetadata:
        raise NotImplementedError

    def planned_metadata(self) -> tuple[TaskMetadata, bool]:
        """The metadata without building the data, and whether ``num_puzzle_ids`` is exact
        (a task whose identifiers depend on the build gives an upper bound)."""
        return self.metadata, True

    def recipe(self) -> dict[str, Any]:
        """Everything that determines the data (not loader settings); goes into the fingerprint."""
        return {"task": self.name, "data_seed": self.data_seed}

    def score(self, inputs: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task-specific per-example booleans named in ``metadata.extra_metrics``."""
        return {}

    def render(self, inputs: torch.Tensor, prediction: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> str:
        """A text picture of one example for terminals and logs."""
        return " ".join(map(str, inputs.tolist()))

    def render_image(self, inputs: torch.Tensor, prediction: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None) -> np.ndarray:
        """Puzzle | prediction (wrong cells outlined) | answer as an RGB uint8 array; the
        default colours each token id; tasks override it with their own picture."""
        shape = self.metadata.grid_shape
        panels = [_ids_image(inputs, shape, palette=self.palette)]
        if prediction is not None:
            wrong = ((prediction != labels) & (labels != IGNORE_INDEX)).view(shape).numpy() if labels is not None else None
            panels.append(_ids_image(prediction, shape, wrong, self.palette))
        if labels is not None:
            panels.append(_ids_image(labels.clamp_min(0), shape, palette=self.palette))
        return side_by_side(panels)

    def data_source(self) -> dict[str, Any] | None:
        """Where the data comes from, for a record's ``provenance.data_source``: ``{"kind":
        "hub" | "local" | "generated" | "package", ...}`` (a Hub repository with the commit
        read and each file's sha256, a local path with its files' sha256, or the generator and
        its settings); None: the task does not say."""
        return None

    def build_info(self) -> dict[str, Any]:
        """What a build learned besides the tensors (e.g. invalid rows skipped): kept in the
        data cache beside them, so that a cached build reports the same."""
        return {}

    def restore_build_info(self, info: Any) -> bool:
        """Take back ``build_info`` from a cache file (None: the file has none); False: the
        cache cannot say it, so the data is built again."""
        return True

    def describe(self) -> list[str]:
        """Lines for ``reasonbench data info``: where the data comes from."""
        return [f"task         {self.name}", f"recipe       {json.dumps(self.recipe(), default=str)}"]

    def export_csv(self, split: str, path: Path, limit: int | None = None) -> int:
        """Write the first ``limit`` rows of a split in the reference CSV layout; returns the count."""
        self.setup()
        rows = self.splits[split]
        n = len(rows) if limit is None else min(limit, len(rows))
        ratings = rows.info.get("rating", torch.zeros(len(rows), dtype=torch.long))
        self.write_csv(path, rows.inputs[:n].numpy(), rows.labels[:n].numpy(), ratings[:n].numpy())
        return n

    def write_csv(self, path: Path, inputs: np.ndarray, labels: np.ndarray, ratings: np.ndarray) -> None:
        """Encoded rows -> the task's reference CSV; tasks with such a layout implement it."""
        from reasonbench.util.errors import UserError

        raise UserError(f"task {self.name} has no CSV export")

    # --- shared machinery ---------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            splits = self._load_cached()
            if splits is None:
                splits = self.build()
                missing = [s for s in SPLITS if s not in splits]
                if missing:
                    raise ValueError(f"task {self.name} built no {missing} split")
                self._save_cached(splits)
            self.splits = splits
        if stage == "fit":  # before training starts, not in the first epoch's loader
            self._check_batch_size()

    def _check_batch_size(self) -> None:
        from reasonbench.util.errors import UserError

        n = len(self.splits.get("train", ()))
        if n < self.batch_size:
            raise UserError(f"task.batch_size {self.batch_size} exceeds the {n:,} training examples "
                            "(every batch is a full one): lower task.batch_size or raise task.num_train")

    # --- the on-disk cache, keyed by the recipe ---------------------------------------------
    cache_dir: Path | None = None  # set by `reasonbench data build --out`; else the env/default

    def recipe_key(self) -> str:
        """sha256 of the recipe: names the cache file (its first 24 digits) and is stored in it."""
        return hashlib.sha256(json.dumps(self.recipe(), sort_keys=True, default=str).encode()).hexdigest()

    def cache_path(self) -> Path:
        root = self.cache_dir or Path(os.environ.get("REASONBENCH_DATA_CACHE",
                                                     Path.home() / ".cache" / "reasonbench" / "data"))
        return Path(root) / self.name / f"{self.recipe_key()[:24]}.pt"

    def _load_cached(self) -> dict[str, Split] | None:
        """The splits of the cache file in this recipe's place, or None (then the data is built
        and the file replaced): a file is used only if it is readable, carries this recipe (its
        key and the recipe itself), holds the splits in the expected structure, and its tensors
        hash to the data fingerprint stored beside them. A corrupt, truncated or foreign file,
        or one of an older layout, is rebuilt, never trusted."""
        if os.environ.get("REASONBENCH_DATA_CACHE") == "off":
            return None
        path = self.cache_path()
        if not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return self._verified_cache(stored)
        except Exception:  # unreadable: truncated, random bytes, a foreign format
            return None

    def _verified_cache(self, stored: Any) -> dict[str, Split] | None:
        if not isinstance(stored, dict) or stored.get("format") != CACHE_FORMAT:
            return None
        if stored.get("key") != self.recipe_key() or stored.get("recipe") != json.loads(json.dumps(self.recipe(), default=str)):
            return None
        raw = stored.get("splits")
        if not isinstance(raw, dict) or not set(SPLITS) <= set(raw) <= {*SPLITS, OOD_SPLIT}:
            return None
        splits: dict[str, Split] = {}
        for name, fields in raw.items():
            if not isinstance(fields, dict) or set(fields) != {"inputs", "labels", "puzzle_ids", "info"}:
                return None
            tensors = [fields[k] for k in ("inputs", "labels", "puzzle_ids")]
            if not all(isinstance(t, torch.Tensor) and not t.is_floating_point() and not t.is_complex()
                       and t.dtype != torch.bool for t in tensors) or tensors[0].ndim != 2:
                return None
            info = fields["info"]
            if not isinstance(info, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                     and v.ndim >= 1 and v.shape[0] == tensors[0].shape[0]
                                                     for k, v in info.items()):
                return None
            try:
                splits[name] = Split(*tensors, info=dict(info))
            except ValueError:  # inconsistent shapes
                return None
        if len({split.inputs.shape[1] for split in splits.values()}) != 1:
            return None
        fingerprint = self._data_fingerprint(splits)
        if stored.get("fingerprint") != fingerprint:  # the tensors are not the ones saved
            return None
        if not self.restore_build_info(stored.get("build_info")):
            return None
        self._fingerprint = fingerprint
        return splits

    def _save_cached(self, splits: dict[str, Split]) -> None:
        if os.environ.get("REASONBENCH_DATA_CACHE") == "off":
            return
        path = self.cache_path()
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            fingerprint = self._data_fingerprint(splits)
            payload = {"format": CACHE_FORMAT, "key": self.recipe_key(),
                       "recipe": json.loads(json.dumps(self.recipe(), default=str)),
                       "fingerprint": fingerprint, "build_info": self.build_info(),
                       "splits": {name: {"inputs": s.inputs, "labels": s.labels, "puzzle_ids": s.puzzle_ids,
                                         "info": s.info} for name, s in splits.items()}}
            torch.save(payload, tmp)
            os.replace(tmp, path)
        except OSError:  # a read-only home must not stop a run: the cache is an optimisation
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        except BaseException:  # Ctrl-C while saving: no temporary left behind
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def fingerprint(self) -> str:
        """sha256 over the recipe and the built tensors: equal fingerprints, equal data."""
        if self._fingerprint is None:
            self.setup()
            self._fingerprint = self._data_fingerprint(self.splits)
        return self._fingerprint

    def _data_fingerprint(self, splits: dict[str, Split]) -> str:
        h = hashlib.sha256(json.dumps(self.recipe(), sort_keys=True, default=str).encode())
        for name in (*SPLITS, OOD_SPLIT) if OOD_SPLIT in splits else SPLITS:
            split = splits[name]
            for tensor in (split.inputs, split.labels, split.puzzle_ids):
                h.update(tensor.contiguous().numpy().tobytes())
        return h.hexdigest()

    def split_fingerprint(self, name: str = "test") -> str:
        """sha256 over one split's values alone: two records scored the same examples exactly
        when theirs agree, whatever else their recipes hold (e.g. an OOD split or not)."""
        self.setup()
        h = hashlib.sha256()
        split = self.splits[name]
        for tensor in (split.inputs, split.labels, split.puzzle_ids):
            # values, not storage: the same ids kept as int8 or int64 hash alike
            h.update(repr(tuple(tensor.shape)).encode())
            for chunk in tensor.split(65536):
                h.update(chunk.to(torch.int64).contiguous().numpy().tobytes())
        return h.hexdigest()

    def sizes(self) -> dict[str, int]:
        self.setup()
        return {name: len(split) for name, split in self.splits.items()}

    def sizes_line(self) -> str:
        """``900 training, 100 validation (held out from the training rows), 465 test`` for a
        run's summary."""
        sizes = self.sizes()
        words = {"train": "training", "val": "validation", "test": "test", "ood": "out-of-distribution"}
        parts = []
        for split, word in words.items():
            if split in sizes:
                note = f" ({self.validation_source})" if split == "val" and self.validation_source else ""
                parts.append(f"{sizes[split]:,} {word}{note}")
        return ", ".join(parts)

    def difficulty(self, split: str) -> Difficulty | None:
        """Per-example difficulty of a split (evaluation is broken down by its buckets, and the
        test examples harder than every training example form the out-of-distribution split);
        None: the task defines none."""
        return None

    def difficulty_report(self) -> tuple[Difficulty, int] | None:
        """The test split's difficulty and the training split's maximum (OOD is above it);
        measured once per task (the test loader and the record both ask)."""
        if not hasattr(self, "_difficulty_report"):
            self.setup()
            test, train = self.difficulty("test"), self.difficulty("train")
            usable = test is not None and train is not None and len(train.values)
            self._difficulty_report = (test, int(train.values.max())) if usable else None
        return self._difficulty_report

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> Batches:
        self.setup()
        rank, world = rank_and_world()
        trainer = getattr(self, "_trainer", None)
        pin = trainer is not None and trainer.root_device.type == "cuda"
        extras = {}
        report = self.difficulty_report() if split == "test" else None
        if report is not None:
            test, train_max = report
            extras = {"difficulty_bucket": test.buckets()}
            if OOD_SPLIT not in self.splits:  # a generated OOD split replaces the implicit one
                extras["ood"] = test.values > train_max
        return Batches(self.splits[split], batch_size, shuffle, self.data_seed, rank, world, pin, extras)

    def train_dataloader(self) -> Batches:
        # drop_last keeps shapes static, as in the reference's fixed global batch
        if self.splits:
            self._check_batch_size()
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> Batches:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> Batches:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def ood_dataloader(self) -> Batches | None:
        """The generated out-of-distribution split, or None where the task built none."""
        self.setup()
        return self._loader(OOD_SPLIT, self.eval_batch_size, shuffle=False) if OOD_SPLIT in self.splits else None
