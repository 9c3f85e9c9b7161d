"""Checkpoints that survive what machines do to them: written atomically in their own folder
(a kill -9 or a full disk leaves the previous one whole), read safely (``weights_only``, or
safetensors, which holds nothing but tensors), a resume that falls back to the newest readable
one, and Ctrl-C / SIGTERM that save the step reached before stopping."""

from __future__ import annotations

import json
import os
import signal
import struct
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from reasonbench.util.atomic import MACHINE_ERRNOS, atomic_writer, stale_temporaries
from reasonbench.util.errors import MachineError, UserError

CHECKPOINT_FORMAT = "reasonbench-checkpoint"
RUN_KEY = "reasonbench"  # what a training checkpoint holds besides Lightning's state: model name, config


def _write_failed(path: Path, exc: OSError) -> Exception:
    """A failed checkpoint write: the machine's fault (full disk: exit 1) or the user's path."""
    why = exc.strerror or " ".join(str(exc).split())
    kept = " (the previous one is kept)" if path.is_file() else ""
    if exc.errno in MACHINE_ERRNOS:
        return MachineError(f"cannot write checkpoint {path}: {why}{kept}")
    return UserError(f"cannot write checkpoint {path}: {why}{kept}")


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through ``atomic_writer`` (an OS error is raised as it is, for the caller
    to name its option)."""
    with atomic_writer(path) as handle:
        torch.save(obj, handle)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with the temporary file beside the checkpoint (Lightning's own
    goes through a temporary folder, so on another filesystem its final move is a copy that a
    kill -9 leaves at 0 bytes, the previous checkpoint already gone). An OS error is one line
    naming the checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        try:
            save_torch_atomic(checkpoint, path)
        except OSError as exc:
            raise _write_failed(Path(path), exc) from None


SAFETENSORS_KEY = "reasonbench"  # the safetensors metadata entry holding the checkpoint's JSON fields


def is_safetensors(path: str | Path) -> bool:
    """Whether the file's first bytes are a safetensors header (an 8-byte little-endian
    length, then a JSON object), whatever its name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            size = Path(path).stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= length <= size - 8


def read_safetensors(path: Path) -> dict[str, Any]:
    """A safetensors file: a reasonbench checkpoint (its fields from the metadata, the tensors
    as ``state_dict``), or any other file's tensors as a bare state dict."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise UserError(f"checkpoint {path}: a safetensors file; reading it needs the safetensors package "
                        "(pip install safetensors)") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # a truncated or malformed header, bad offsets
        raise UserError(f"checkpoint {path}: unreadable: not a valid safetensors file "
                        f"({' '.join(str(exc).split())[:120]})") from None
    if SAFETENSORS_KEY not in metadata:
        return tensors
    from reasonbench.util.untrusted import loads_json

    try:  # strict and depth-capped: metadata nested 100,000 deep is one line, not a RecursionError
        fields = loads_json(metadata[SAFETENSORS_KEY])
    except ValueError as exc:
        raise UserError(f"checkpoint {path}: its '{SAFETENSORS_KEY}' metadata is not usable JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise UserError(f"checkpoint {path}: its '{SAFETENSORS_KEY}' metadata is not a JSON object")
    return {**fields, "state_dict": tensors}


def read_torch_file(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` onto the CPU, or a safetensors file (see
    ``read_safetensors``); a missing or unreadable file is a one-line ``UserError`` naming the
    file as it was given (``hf://OWNER/NAME``, not the path Path() would make of it)."""
    from reasonbench.util.untrusted import printable

    given = printable(path)
    path = Path(path)
    if not path.is_file():
        hint = " (an hf:// checkpoint is converted by `reasonbench import-checkpoint` first)" if given.startswith("hf://") else ""
        raise UserError(f"checkpoint {given}: {'not a file' if path.exists() else 'no such file'}{hint}")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path}: unreadable: empty file")
    if is_safetensors(path):
        return read_safetensors(path)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip files, foreign formats
        from reasonbench.util.errors import unreadable_torch_file

        raise UserError(f"checkpoint {path}: unreadable: {unreadable_torch_file(exc)}") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a reasonbench or Lightning checkpoint safely (``weights_only=True``)."""
    data = read_torch_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise UserError(f"checkpoint {path}: no 'state_dict' in it (not a reasonbench or Lightning checkpoint)")
    return data


def save_checkpoint(model: torch.nn.Module, cfg: Any, path: Path, **extra: Any) -> None:
    """A portable checkpoint: weights plus the resolved config (and ``extra`` fields, e.g. where
    imported weights came from), loadable with weights_only; written atomically. A path
    ending in ``.safetensors`` is written as safetensors, the other fields as JSON in its
    metadata (see ``save_safetensors``)."""
    payload = {"format": CHECKPOINT_FORMAT, "version": 1, "model": cfg.model, "task": cfg.task,
               "config": cfg.config, "state_dict": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                                                          for k, v in model.state_dict().items()},
               **extra}
    if Path(path).suffix == ".safetensors":
        save_safetensors(payload, path)
    else:
        save_torch_atomic(payload, path)


def save_safetensors(payload: dict[str, Any], path: str | Path) -> None:
    """``payload["state_dict"]`` as a safetensors file, its other fields (format, model, task,
    the resolved config...) as one JSON object in the metadata under ``reasonbench``: a file
    that needs no pickle to read and carries what ``reasonbench eval`` needs to rebuild the
    model. Tensors that share memory (tied or viewed weights) are written as copies. A weight
    that is not a tensor raises TypeError. Written atomically."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in payload["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"weight '{key}' is a {type(value).__name__}, not a tensor: safetensors holds tensors only")
        value = value.detach().cpu().contiguous()
        storage = value.untyped_storage().data_ptr()
        if storage in storages and value.numel():
            value = value.clone()
        storages.add(storage)
        tensors[key] = value
    fields = {k: v for k, v in payload.items() if k != "state_dict"}
    metadata = {"format": CHECKPOINT_FORMAT, SAFETENSORS_KEY: json.dumps(fields, default=str)}
    data = save(tensors, metadata=metadata)
    with atomic_writer(path) as handle:
        handle.write(data)


# --- resuming ---------------------------------------------------------------------------------

@dataclass
class ResumePoint:
    """Where ``--resume`` continues: the newest readable training checkpoint of a run folder."""

    path: Path
    step: int
    model: str | None  # the model name in its stored config, if it has one
    state_dict: dict[str, Any] = field(default_factory=dict)  # its weights, to check against the model
    skipped: list[str] = field(default_factory=list)  # newer ones that could not be read, with why


def training_checkpoints(run_dir: Path) -> list[Path]:
    """A run folder's training checkpoints, newest first: the periodic/interrupt ``last.ckpt``,
    the best one, and those Lightning writes on a SLURM preemption signal."""
    folder = run_dir / "checkpoints"
    found = [*folder.glob("last*.ckpt"), *folder.glob("best*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    found = [f for f in found if f.is_file()]
    return sorted(found, key=lambda f: f.stat().st_mtime_ns, reverse=True)


def training_state_problem(data: dict[str, Any]) -> str | None:
    """Why a loaded checkpoint cannot restore training (None if it can): the fields Lightning
    reads, with the types it expects, so a malformed one fails here in one line, not in
    Lightning's restore with a traceback."""
    expected = {"global_step": int, "epoch": int, "loops": dict, "optimizer_states": list, "callbacks": dict}
    for key, kind in expected.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            return f"no training state: field '{key}' should be a {kind.__name__}, is {got}"
    if data["global_step"] < 0:
        return f"no training state: field 'global_step' is negative ({data['global_step']})"
    bad = next((k for k, v in data["state_dict"].items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        return f"weight '{bad}' is not a tensor"
    return None


def resume_point(run_dir: Path) -> ResumePoint | None:
    """The newest checkpoint that loads and holds a training state; None if the run has none.
    If some exist but none is readable: a one-line UserError naming the newest and why."""
    for stale in stale_temporaries(run_dir / "checkpoints", "*"):  # from a process killed mid-write
        stale.unlink(missing_ok=True)
    skipped: list[str] = []
    candidates = training_checkpoints(run_dir)
    for path in candidates:
        try:
            data = load_checkpoint(path)
        except UserError as exc:
            skipped.append(str(exc))
            continue
        malformed = training_state_problem(data)
        if malformed:
            skipped.append(f"checkpoint {path}: {malformed}")
            continue
        stored = data.get(RUN_KEY, {}).get("model") if isinstance(data.get(RUN_KEY), dict) else None
        return ResumePoint(path, data["global_step"], stored if isinstance(stored, str) else None,
                           data["state_dict"], skipped)
    if candidates:
        raise UserError(f"--resume: no readable checkpoint in {run_dir / 'checkpoints'}: {skipped[0]}")
    return None


class RunIdentity(L.Callback):
    """Stores the run's model name and config in every training checkpoint, so that a resume
    into another architecture is refused by name before anything is loaded."""

    def __init__(self, model: str, config: dict[str, Any]) -> None:
        self.model, self.config = model, config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_KEY] = {"model": self.model, "config": self.config}


def check_resumable(point: ResumePoint, model_name: str, model: torch.nn.Module) -> None:
    """A one-line UserError if ``point`` holds another model than the one this run builds."""
    if point.model is not None and point.model != model_name:
        raise UserError(f"--resume: checkpoint {point.path} holds a {point.model} model, this run builds "
                        f"{model_name}: resume with --model {point.model}, or start again with --overwrite")
    own = model.state_dict()
    missing = [k for k in own if k not in point.state_dict]
    unexpected = [k for k in point.state_dict if k not in own]
    shapes = [f"{k} {tuple(point.state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in point.state_dict and point.state_dict[k].shape != v.shape]
    if missing or unexpected or shapes:
        detail = "; ".join(part for part in (f"missing {missing[:3]}" if missing else "",
                                             f"unexpected {unexpected[:3]}" if unexpected else "",
                                             f"shapes {', '.join(shapes[:2])}" if shapes else "") if part)
        raise UserError(f"--resume: checkpoint {point.path} does not fit this run's {model_name} model "
                        f"(another architecture or size): {detail}")


# --- interrupts -------------------------------------------------------------------------------

class InterruptCheckpoint(L.Callback):
    """Ctrl-C or SIGTERM during training: the step under way finishes, the state at that step
    is saved to ``path`` (what ``--resume`` continues from), then the run stops as interrupted.
    A second signal stops at once (the checkpoint of the last saved step stays whole)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requested: str | None = None  # which signal asked
        self.saved_step: int | None = None

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Signal handlers that ask for a stop instead of raising mid-step (main thread only:
        Python delivers signals there; elsewhere the old behaviour stays)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def ask(signum: int, frame: Any) -> None:
            if self.requested is not None:  # the second one: stop now
                raise KeyboardInterrupt(f"{signal.Signals(signum).name} again; no checkpoint of this step")
            self.requested = signal.Signals(signum).name

        self._ask = ask
        # inside a SLURM job Lightning bypasses SIGTERM so that its requeue (on USR1) finishes
        signals = (signal.SIGINT,) if "SLURM_JOB_ID" in os.environ else (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, ask) for s in signals}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    _ask: Any = None
    poll_every = 10  # steps between the processes' joint look at a signal (several processes only)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning's own SIGTERM handler (installed when fit starts) would stop a validation
        # half-way, before any checkpoint; outside SLURM (whose requeue relies on it) ours decides
        if self._ask is not None and "SLURM_JOB_ID" not in os.environ and \
                threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._ask)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        asked = self.requested is not None
        if trainer.world_size > 1:
            # one decision, so every process takes part in the save; a collective waits for the
            # device, so it is taken every few steps, on the same steps in every process
            if trainer.global_step % self.poll_every:
                return
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
        if not asked:
            return
        trainer.save_checkpoint(self.path)
        self.saved_step = trainer.global_step
        raise KeyboardInterrupt(self.requested or "interrupted")


def stop_message(trainer: L.Trainer, interrupt: InterruptCheckpoint, checkpoints: Path) -> str:
    """The one line an interrupted training ends with."""
    if interrupt.saved_step is not None:
        return (f"at step {interrupt.saved_step}; checkpoint saved: {interrupt.path}; no record written "
                f"(`--resume` continues from it)")
    return f"at step {trainer.global_step}; no record written (`--resume` continues from {checkpoints})"


__all__ = ["AtomicCheckpointIO", "CHECKPOINT_FORMAT", "InterruptCheckpoint", "ResumePoint", "is_safetensors",
           "load_checkpoint", "read_safetensors", "read_torch_file", "resume_point", "save_checkpoint",
           "save_safetensors", "save_torch_atomic", "stop_message"]
