"""The conformance kit: what every model plugin must satisfy, as plain functions.

``reasonbench check-plugin NAME`` runs them all (``check_plugin``); a plugin's own tests call
them from pytest::

    from reasonbench import testing

    @pytest.mark.parametrize("task", testing.task_names())
    @pytest.mark.parametrize("check", testing.MODEL_CHECKS, ids=testing.check_id)
    def test_conformance(check, task):
        check(testing.subject("mymodel", task))

Each check raises ``AssertionError`` whose message says what is wrong and, after ``fix:``,
what to change. The checks build the model from its ``smoke`` preset on each task's smoke data,
so the whole kit takes seconds to a minute on a CPU.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from reasonbench.config import registry
from reasonbench.config.resolve import (MeasureConfig, RunConfig, collapse_whitespace, model_preset_file,
                                       resolve)
from reasonbench.config.commandline import command_parser, parse
from reasonbench.util.errors import UserError
from reasonbench.model.module import ReasoningModule, ReasoningOutput
from reasonbench.nn.puzzle import PuzzleEmbedding
from reasonbench.model.optim import OptimConfig
from reasonbench.tasks.base import ReasoningTask

EVAL_BATCH = 4  # examples per evaluation batch in the checks (two batches, A and B, are compared)


def one_thread(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function`` with one intra-op thread: smoke-sized models gain nothing from more, and
    on a busy machine every parallel region waits for its slowest thread (the whole kit on 2
    shared cores: about 3 s with one thread, 35 to 50 s with two)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


def fail(problem: str, fix: str) -> AssertionError:
    """The error a check raises: what is wrong, then what to change."""
    return AssertionError(f"{problem}\nfix: {fix}")


# --- the model under test ----------------------------------------------------------------

@lru_cache(maxsize=16)
def _built_task(task_cls: type, task_args_json: str) -> ReasoningTask:
    task = task_cls(**json.loads(task_args_json))
    task.setup("fit")
    return task


@dataclass
class Subject:
    """A model on one task: its resolved config and the task's data, built once; ``build``
    makes a fresh model each time (as the runner does: seed first, then construct)."""

    name: str
    task_name: str
    cfg: RunConfig
    task: ReasoningTask

    def build(self, seed: int = 0) -> ReasoningModule:
        from reasonbench.execution.build import build_model

        seed_everything(seed)
        return build_model(self.cfg, self.task)

    @property
    def metadata(self) -> Any:
        return self.task.metadata

    def batch(self, split: str = "train", start: int = 0, size: int | None = None) -> dict[str, torch.Tensor]:
        """Examples ``start .. start+size`` of a split in order (default: one training batch),
        as the task's loaders deliver them (int64 ids)."""
        data = self.task.splits[split]
        size = size or self.task.batch_size
        if len(data) < start + size:  # a tiny split: wrap around
            idx = torch.arange(start, start + size) % len(data)
        else:
            idx = torch.arange(start, start + size)
        return {"inputs": data.inputs[idx].long(), "labels": data.labels[idx].long(),
                "puzzle_ids": data.puzzle_ids[idx].long()}

    @classmethod
    def from_class(cls, model_cls: type, task: str, model_args: dict[str, Any] | None = None,
                   name: str | None = None, task_preset: str = "smoke") -> "Subject":
        """A subject from a model class that no entry point declares (a test's own model)."""
        from reasonbench.tools.dataops import task_from_argv

        _, task_cfg = task_from_argv(["--task", task, "--preset", task_preset], "reasonbench.testing")
        task_args = {k: v for k, v in task_cfg["task"].items() if k != "name"}
        built = _built_task(registry.get_task(task), json.dumps(task_args, sort_keys=True))
        name = name or model_cls.__name__.lower()
        model_args = dict(model_args or {})
        cfg = RunConfig(model=name, task=task, preset=task_preset, seed=0, out="results", model_cls=model_cls,
                        task_cls=type(built), model_args=model_args, task_args=task_args, optim=OptimConfig(),
                        trainer_args={}, measure=MeasureConfig(),
                        config={"model": {"name": name, **model_args}, "task": {"name": task, **task_args}})
        return cls(name, task, cfg, built)


def subject(name: str, task: str, preset: str = "smoke", **model_args: Any) -> Subject:
    """The registered model ``name`` on ``task``, from its preset (plus ``model_args``)."""
    argv = ["--model", name, "--task", task, "--preset", preset]
    fix = (f"add the preset file {task}/{preset}.yaml (model, optim and trainer settings) under your package's "
           f"presets/ folder (`reasonbench new-plugin` writes smoke and mini presets for every task)")
    try:
        cfg, _ = resolve(argv, prog="reasonbench check-plugin", overrides={"model": model_args})
    except UserError as exc:
        if "no preset" in str(exc):
            raise fail(str(exc), fix) from None
        raise
    # a run falls back on the model's own defaults; the kit wants the plugin's own small settings
    if model_preset_file(name, task, preset, cfg.model_cls) is None:
        raise fail(f"no preset '{preset}' for model '{name}' on task '{task}'", fix)
    return Subject(name, task, cfg, _built_task(cfg.task_cls, json.dumps(cfg.task_args, sort_keys=True)))


def task_names() -> list[str]:
    """Every registered task (the checks run on each)."""
    return registry.list_tasks()


def seed_everything(seed: int) -> None:
    import lightning as L

    L.seed_everything(seed, workers=True, verbose=False)


def _evaluate(model: ReasoningModule, batch: dict[str, torch.Tensor], seed: int = 0) -> ReasoningOutput:
    """Evaluation as the runner does it (eval mode, inference mode), the random streams seeded
    so that a model that samples at test time is compared with itself."""
    model.eval()
    torch.manual_seed(seed)
    with torch.inference_mode():
        return model(batch)


def _train_step(model: ReasoningModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One training loss and its backward pass; the weights are not updated."""
    model.train()
    loss, _ = model.training_loss(batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    for table in model.puzzle_tables():
        table.forget_batch()
    return loss.detach()


def _same(a: Any, b: Any) -> bool:
    """Equal tensors (shape and values) or equal plain data holding them (extra states)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape != b.shape:
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
    diff = (a.float() - b.float()).abs()
    return f"max |difference| {diff.max().item():.3g}"


# --- the checks ------------------------------------------------------------------------------

@one_thread
def check_builds(s: Subject) -> None:
    """The model builds from its preset on the task's metadata and has parameters."""
    try:
        model = s.build()
    except UserError as exc:
        raise fail(f"building the model on {s.task_name} failed: {exc}",
                   "the constructor takes (metadata, optim, **your options) and must accept every task's metadata "
                   "(vocab_size, seq_len, num_puzzle_ids from `metadata`, never hard-coded); check the option "
                   "values in the preset") from None
    if not isinstance(model, ReasoningModule):
        raise fail(f"{type(model).__name__} is not a ReasoningModule",
                   "subclass reasonbench.module.ReasoningModule (or reasonbench.recursive.RecursiveReasoningModule)")
    if not any(True for _ in model.parameters()):
        raise fail("the model has no parameters", "register its weights as nn.Parameter / submodules in __init__")


@one_thread
def check_forward(s: Subject) -> None:
    """``forward`` returns a ReasoningOutput: logits [B, L, V] floating point and finite; steps
    None or [B]; confidence and halt_logits None or [B]; the stats the model declares."""
    model = s.build()
    batch = s.batch("test", 0, EVAL_BATCH)
    meta = s.metadata
    out = _evaluate(model, batch)
    if not isinstance(out, ReasoningOutput):
        raise fail(f"forward returned {type(out).__name__}",
                   "return reasonbench.module.ReasoningOutput(logits=..., steps=...) from forward(batch)")
    expected = (EVAL_BATCH, meta.seq_len, meta.vocab_size)
    if not isinstance(out.logits, torch.Tensor) or tuple(out.logits.shape) != expected:
        got = tuple(out.logits.shape) if isinstance(out.logits, torch.Tensor) else type(out.logits).__name__
        raise fail(f"logits have shape {got}, expected [batch, seq_len, vocab_size] = {list(expected)}",
                   "one logit per vocabulary entry at every input position: size the head with "
                   "metadata.vocab_size and drop any extra positions (e.g. puzzle-embedding slots) before the head's output")
    if not out.logits.is_floating_point():
        raise fail(f"logits have dtype {out.logits.dtype}", "return floating-point logits (not argmax ids)")
    if not torch.isfinite(out.logits).all():
        raise fail("logits contain NaN or infinity on the untrained model",
                   "check the initialisation and any division or log in forward")
    for field_name in ("steps", "confidence", "halt_logits"):
        value = getattr(out, field_name)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (EVAL_BATCH,):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise fail(f"{field_name} has shape {got}, expected [batch] = [{EVAL_BATCH}]",
                       f"return one {field_name} value per example, or None")
        if field_name == "steps" and (value < 0).any():
            raise fail("steps has negative values", "steps counts the reasoning steps each example used (>= 0)")
        if field_name != "steps" and not value.is_floating_point():
            raise fail(f"{field_name} has dtype {value.dtype}", f"return {field_name} as floating point")
    if out.stats is not None:  # optional; when given, every declared figure (the metrics sum them)
        declared = tuple(getattr(model, "reported_stats", ()))
        missing = [k for k in declared if not isinstance(out.stats, dict) or k not in out.stats]
        if missing:
            raise fail(f"forward's stats lack {missing}, declared in reported_stats {list(declared)}",
                       "return ReasoningOutput(stats={name: float}) with every declared figure (or stats=None)")


@one_thread
def check_backward(s: Subject) -> None:
    """``training_loss`` returns a finite scalar with a graph and a dict; its backward pass gives
    every trainable parameter a finite gradient."""
    model = s.build()
    model.train()
    result = model.training_loss(s.batch("train"))
    if not (isinstance(result, tuple) and len(result) == 2):
        raise fail(f"training_loss returned {type(result).__name__}",
                   "return (loss, logs): a scalar tensor and a dict of values to log")
    loss, logs = result
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise fail(f"the training loss has shape {got}, expected a scalar", "reduce the loss to one number (mean or sum)")
    if not isinstance(logs, dict):
        raise fail(f"training_loss's logs are a {type(logs).__name__}", "return a dict {name: tensor} (may be empty)")
    if not torch.isfinite(loss):
        raise fail(f"the training loss is {loss.item()} on the untrained model",
                   "check the initialisation and the loss (ignored labels are -100: mask them)")
    if not loss.requires_grad:
        raise fail("the training loss has no gradient graph",
                   "compute the loss's last segment with gradient (not all under torch.no_grad, no .detach())")
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None]
    if no_grad:
        raise fail(f"{len(no_grad)} of {len(trainable)} trainable parameters got no gradient: {', '.join(no_grad[:6])}"
                   + (" ..." if len(no_grad) > 6 else ""),
                   "use them in the graph of training_loss, or delete them; a tensor that should not learn is a "
                   "buffer (register_buffer) or a parameter with requires_grad=False")
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    if bad:
        raise fail(f"non-finite gradients in {', '.join(bad[:6])}", "look for a division by zero or log(0) in training_loss")


@one_thread
def check_parameters(s: Subject) -> None:
    """Parameters are counted (> 0) and per-puzzle tables apart from them (``extra_parameters``)."""
    from reasonbench.record.measure import count_parameters

    model = s.build()
    params, _ = count_parameters(model)
    if params <= 0:
        raise fail("no parameters counted outside the per-puzzle tables",
                   "the network's weights must be parameters that extra_parameters() does not yield")
    extra = {id(p) for p in model.extra_parameters()}
    for module_name, module in model.named_modules():
        if isinstance(module, PuzzleEmbedding) and any(id(p) not in extra for p in module.parameters()):
            raise fail(f"the PuzzleEmbedding '{module_name}' is counted with the model's parameters",
                       "per-puzzle tables count apart: keep ReasoningModule.extra_parameters() (it yields every "
                       "submodule with counts_as_extra = True), or yield the table from your override")
    meta = s.metadata
    if meta.num_puzzle_ids > 1 and meta.num_puzzle_ids not in (meta.vocab_size, meta.seq_len):
        for module_name, module in model.named_modules():
            if (isinstance(module, nn.Embedding) and module.num_embeddings == meta.num_puzzle_ids
                    and module.weight.requires_grad and id(module.weight) not in extra):
                raise fail(f"'{module_name}' looks like a per-puzzle table ({meta.num_puzzle_ids} rows = "
                           f"metadata.num_puzzle_ids) counted as model parameters",
                           "use reasonbench.nn.PuzzleEmbedding (counted apart, trained by sign-SGD as in the "
                           "references), or set counts_as_extra = True on the module")


@one_thread
def check_flops(s: Subject) -> None:
    """FLOPs are measured: the executed forward of an example and a training step count > 0."""
    from reasonbench.record.measure import count_flops, forward_flops_per_example

    model = s.build()
    forward = forward_flops_per_example(model, s.task.splits["test"], 2)
    if not forward.examples or forward.mean <= 0:
        raise fail("the FLOP counter saw no work in forward",
                   "compute with torch operations on tensors (FlopCounterMode counts matmuls and convolutions "
                   "as they execute); numpy or custom kernels are invisible to it")
    model.train()
    train, _ = count_flops(lambda: model.training_loss(s.batch("train"))[0].backward())
    if train <= 0:
        raise fail("the FLOP counter saw no work in a training step", "compute the training loss with torch operations")


# types torch.load(weights_only=True) accepts besides tensors
_SAFE = (int, float, bool, str, bytes, type(None), torch.Size, torch.dtype, torch.device)


def _unsafe_paths(value: Any, path: str = "") -> list[str]:
    """Where ``value`` holds something weights_only loading refuses (with its type)."""
    if isinstance(value, torch.Tensor) or isinstance(value, _SAFE):
        return []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _unsafe_paths(v, f"{path}[{k!r}]")]
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return [p for i, v in enumerate(value) for p in _unsafe_paths(v, f"{path}[{i}]")]
    return [f"{path} ({type(value).__module__}.{type(value).__qualname__})"]


@one_thread
def check_checkpoint(s: Subject, folder: str | Path | None = None) -> None:
    """``save_checkpoint`` (weights, and the training state after a step) loads back with
    ``torch.load(weights_only=True)`` into a fresh model (another seed) that then evaluates
    exactly as the saved one."""
    from reasonbench.execution.checkpoints import save_checkpoint

    model = s.build(seed=0)
    _train_step(model, s.batch("train"))  # a carry, if the model keeps one
    batch = s.batch("test", 0, EVAL_BATCH)
    expected = _evaluate(model, batch).logits
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(folder or tmp) / "check.pt"
        save_checkpoint(model, s.cfg, path, training_state=model.training_state())
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            payload = {"state_dict": model.state_dict(), "training_state": model.training_state()}
            where = _unsafe_paths(payload)
            raise fail(f"torch.load(weights_only=True) refuses the checkpoint: {collapse_whitespace(exc)[:300]}"
                       + (f"; offending entries: {', '.join(where[:3])}" if where else ""),
                       "state_dict() and training_state() may hold only tensors and plain data (numbers, strings, "
                       "lists, dicts): keep objects out of them (convert them in get_extra_state / training_state, "
                       "or make them buffers)") from None
    fresh = s.build(seed=1)
    missing, unexpected = fresh.load_state_dict(loaded["state_dict"], strict=False)
    if missing or unexpected:
        raise fail(f"the saved state does not load into a fresh model: missing {missing[:3]}, unexpected {unexpected[:3]}",
                   "build the same parameters and buffers for the same config, whatever happened at run time "
                   "(no modules or buffers created lazily in forward)")
    fresh.load_training_state(loaded["training_state"])
    got = _evaluate(fresh, batch).logits
    if not torch.equal(expected, got):
        raise fail(f"after loading the checkpoint into a fresh model the logits differ ({_first_difference(expected, got)})",
                   "everything that affects evaluation must be in state_dict(): register tensors as buffers "
                   "(register_buffer), not plain attributes; non-persistent buffers must be recomputed in __init__")


@one_thread
def check_determinism(s: Subject) -> None:
    """Two builds under one seed have identical weights, evaluate identically and compute the
    same training loss."""
    a, b = s.build(seed=0), s.build(seed=0)
    sa, sb = a.state_dict(), b.state_dict()
    differ = [k for k in sa if k not in sb or not _same(sa[k], sb[k])]
    if differ:
        raise fail(f"two builds under the same seed differ in {', '.join(differ[:4])}" + (" ..." if len(differ) > 4 else ""),
                   "draw initial weights from torch's default generator (seeded by --seed), not from an unseeded "
                   "numpy Generator, os.urandom, time or hash()")
    batch = s.batch("test", 0, EVAL_BATCH)
    la, lb = _evaluate(a, batch).logits, _evaluate(b, batch).logits
    if not torch.equal(la, lb):
        raise fail(f"two identical models evaluate differently under the same seed ({_first_difference(la, lb)})",
                   "evaluation may only draw random numbers from torch's seeded generators")
    train = s.batch("train")
    seed_everything(1)
    a.train()
    loss_a = a.training_loss(train)[0].detach()
    seed_everything(1)
    b.train()
    loss_b = b.training_loss(train)[0].detach()
    if not torch.equal(loss_a, loss_b):
        raise fail(f"the training loss differs between two identical models under one seed ({loss_a.item()} vs {loss_b.item()})",
                   "training may only draw random numbers from torch's seeded generators (or Python's/numpy's "
                   "global ones, which the runner seeds too)")


@one_thread
def check_inference_mode(s: Subject) -> None:
    """Evaluation works under ``torch.inference_mode()`` (as the runner tests and measures) and
    gives outputs without a graph; a training step afterwards still works (as after validation)."""
    model = s.build()
    batch = s.batch("test", 0, EVAL_BATCH)
    try:
        out = _evaluate(model, batch)
    except RuntimeError as exc:
        raise fail(f"evaluation under torch.inference_mode() raised: {collapse_whitespace(exc)[:300]}",
                   "forward must run without autograd in eval mode: no in-place update of a tensor created "
                   "outside inference mode, no backward or autograd.grad (if evaluation needs gradients, "
                   "wrap that part in `with torch.inference_mode(False), torch.enable_grad():` on cloned inputs)") from None
    if out.logits.requires_grad:
        raise fail("logits evaluated under inference_mode require grad", "do not re-enable gradients for the output in eval mode")
    try:
        _train_step(model, s.batch("train"))
    except RuntimeError as exc:
        raise fail(f"a training step after an evaluation under inference_mode raised: {collapse_whitespace(exc)[:300]}",
                   "a tensor cached during evaluation is an inference tensor that autograd cannot use: build "
                   "caches in __init__ (as buffers) or rebuild them outside inference mode") from None


@one_thread
def check_no_state_leak(s: Subject) -> None:
    """Evaluation depends on the weights and the batch only: batch A evaluates the same before
    and after batch B and after a training step (weights unchanged), and each example the same
    alone as in its batch (unless the model samples across the batch: ``samples_across_batch``)."""
    model = s.build()
    a, b = s.batch("test", 0, EVAL_BATCH), s.batch("test", EVAL_BATCH, EVAL_BATCH)
    first = _evaluate(model, a).logits.clone()
    _evaluate(model, b)
    again = _evaluate(model, a).logits
    if not torch.equal(first, again):
        raise fail(f"batch A's logits changed after evaluating batch B ({_first_difference(first, again)})",
                   "forward keeps state between calls (an attribute written in forward): start every batch from "
                   "the weights and the batch alone")
    _train_step(model, s.batch("train"))
    after = _evaluate(model, a).logits
    if not torch.equal(first, after):
        raise fail(f"batch A's logits changed after a training step that did not update the weights "
                   f"({_first_difference(first, after)})",
                   "state carried between training steps (e.g. a recursive model's carry) must not be read in "
                   "evaluation: evaluate from the initial state")
    if model.samples_across_batch:
        return
    alone = _evaluate(model, {k: v[:1] for k, v in a.items()}).logits
    if not torch.allclose(alone, first[:1], rtol=1e-3, atol=1e-4):
        raise fail(f"an example's logits alone differ from the same example within batch A ({_first_difference(alone, first[:1])})",
                   "examples must not influence each other: no statistics over the batch (BatchNorm, a stopping "
                   "rule on the batch's mean residual) in evaluation")


MODEL_CHECKS: list[Callable[[Subject], None]] = [
    check_builds, check_forward, check_backward, check_parameters, check_flops, check_checkpoint,
    check_determinism, check_inference_mode, check_no_state_leak,
]


def check_id(check: Callable[..., Any]) -> str:
    """A check's short name (for pytest ids and the command's output)."""
    return check.__name__.removeprefix("check_")


@one_thread
def check_record(name: str, task: str, out: str | Path | None = None, preset: str = "smoke",
                 steps: int = 2) -> dict[str, Any]:
    """A short ``reasonbench run`` writes a valid, complete record: completed, parameters
    counted (extras apart), forward and training FLOPs measured; returns the record."""
    from reasonbench.execution.python_api import run
    from reasonbench.record.schema import read_record

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"trainer.max_steps": steps, "trainer.enable_progress_bar": False,
                     "trainer.enable_model_summary": False, "measure.flops_examples": 2,
                     "measure.train_flop_steps": 1, "checkpoint_every": 0}
        with warnings.catch_warnings():  # too few steps to validate: nothing to monitor
            warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
            record = run(name, task, preset=preset, seed=0, out=str(out or tmp), **overrides)
        try:
            checked = read_record(record["_path"])
        except UserError as exc:
            raise fail(f"the record does not validate: {exc}", "this is reasonbench's bug or a changed schema; "
                       "report it with the record") from None
    if checked["status"] != "completed":
        raise fail(f"the smoke run ended {checked['status']}: {checked['status_detail']}",
                   "the loss must stay finite for a few steps at the preset's learning rate")
    cost = checked["cost"]
    if not cost.get("params"):
        raise fail("the record counts no parameters", "see the parameters check")
    if not (cost.get("flops_per_example_forward") or {}).get("mean"):
        raise fail("the record has no forward FLOPs", "see the flops check")
    if not cost.get("train_flops"):
        raise fail("the record has no training FLOPs",
                   "training steps must run through training_step (the runner counts them there)")
    return checked


# --- the whole kit ------------------------------------------------------------------------

@dataclass
class CheckResult:
    """One check on one task (task None: the model as a whole)."""

    check: str
    task: str | None
    status: str  # 'pass', 'fail' or 'skip'
    message: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def lines(self) -> list[str]:
        head = f"{self.status.upper():4s}  {(self.task or '-'):8s}  {self.check}"
        if not self.message:
            return [head]
        first, *rest = self.message.splitlines()
        return [f"{head}: {first}", *(f"      {line}" for line in rest)]


def _describe(exc: BaseException, source: str | None) -> str:
    """An unexpected exception in one line, with the plugin's line that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if source and f.filename == source] or frames[-1:]
    where = f" (at {mine[-1].filename}:{mine[-1].lineno})" if mine else ""
    return (f"raised {type(exc).__name__}: {collapse_whitespace(exc)[:300]}{where}\n"
            "fix: the check's docstring (reasonbench/tools/conformance.py) says what it exercises")


def run_check(check: Callable[..., Any], *args: Any, source: str | None = None, task: str | None = None,
              name: str | None = None) -> CheckResult:
    start = time.perf_counter()
    try:
        check(*args)
        status, message = "pass", ""
    except AssertionError as exc:
        status, message = "fail", str(exc)
    except Exception as exc:  # a crash in the plugin is a failed check, not a crashed kit
        status, message = "fail", _describe(exc, source)
    return CheckResult(name or check_id(check), task, status, message, time.perf_counter() - start)


@one_thread
def check_plugin(name: str, tasks: list[str] | None = None, preset: str = "smoke", record: bool = True,
                 on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Every check on every task (``tasks``: a subset), then a short run writing a record on the
    first task. Raises UnknownNameError for a name no plugin provides. ``on_result`` sees each
    result as it is made (the command prints them)."""
    import inspect

    from reasonbench.execution.trainer import quiet_lightning

    registry.check("model", name)
    quiet_lightning()
    results: list[CheckResult] = []

    def add(result: CheckResult) -> CheckResult:
        results.append(result)
        if on_result is not None:
            on_result(result)
        return result

    def imports() -> None:
        try:
            registry.get_model(name)
        except UserError as exc:
            raise fail(str(exc), "make the module importable in this environment (its dependencies installed, "
                                 "the entry point's module:Class spelled right)") from None

    if not add(run_check(imports, name="imports")).passed:
        return results
    try:
        source = inspect.getsourcefile(registry.get_model(name))
    except TypeError:
        source = None
    tasks = tasks or task_names()
    for task in tasks:
        registry.check("task", task)
        made: list[Subject] = []

        def setup(task: str = task) -> None:
            made.append(subject(name, task, preset))
            check_builds(made[0])

        if not add(run_check(setup, source=source, task=task, name="builds")).passed:
            for check in MODEL_CHECKS[1:]:
                add(CheckResult(check_id(check), task, "skip", "the model does not build"))
            continue
        for check in MODEL_CHECKS[1:]:
            add(run_check(check, made[0], source=source, task=task))
    if record:
        first = tasks[0]
        if all(r.passed for r in results if r.task == first):
            add(run_check(check_record, name, first, None, preset, source=source, task=first, name="record"))
        else:
            add(CheckResult("record", first, "skip", "the checks above failed"))
    return results


def assert_conforms(name: str, tasks: list[str] | None = None, record: bool = True) -> list[CheckResult]:
    """``check_plugin`` as one assertion listing every failure (for a plugin's pytest suite)."""
    results = check_plugin(name, tasks, record=record)
    failed = [r for r in results if r.status == "fail"]
    if failed:
        raise AssertionError("\n".join(line for r in failed for line in r.lines()))
    return results


__all__ = ["Subject", "subject", "task_names", "fail", "CheckResult", "MODEL_CHECKS", "check_id", "check_builds",
           "check_forward", "check_backward", "check_parameters", "check_flops", "check_checkpoint",
           "check_determinism", "check_inference_mode", "check_no_state_leak", "check_record", "check_plugin",
           "assert_conforms", "run_check", "one_thread"]


def command(argv: list[str]) -> int:
    """``reasonbench check-plugin``: every check, PASS/FAIL/SKIP a line (with what to change);
    exit 0 when all pass, 1 when any fails (2: bad arguments or an unknown name)."""
    parser = command_parser("reasonbench check-plugin", "The conformance kit: PASS/FAIL per check with what to "
                            "change; exit 0 when all pass, 1 when any fails.")
    parser.add_argument("name", type=str, help="the model's registered name")
    parser.add_argument("--tasks", type=str | None, default=None, help="tasks T1,T2 (default: every task)")
    parser.add_argument("--preset", type=str, default="smoke", help="the preset the checks train on")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="skip the check that writes and validates a whole run's record")
    args = parse(parser, argv)
    args.tasks = [t for t in args.tasks.split(",") if t] if args.tasks is not None else None
    name, tasks, preset, record = args.name, args.tasks, args.preset, args.record
    if name.startswith("-"):
        raise UserError("check-plugin: the model name comes first: reasonbench check-plugin NAME [--tasks T1,T2]")
    registry.check("model", name)
    for task in tasks or []:
        registry.check("task", task)
    entry = registry.entries("model")[name]
    origin = "built-in" if entry.builtin else f"from {entry.dist}"
    print(f"check-plugin {name} ({entry.target}, {origin}): preset {preset}", flush=True)
    start = time.perf_counter()
    results = check_plugin(name, tasks, preset, record,
                           on_result=lambda r: print("\n".join(r.lines()), flush=True))
    counts = {status: sum(r.status == status for r in results) for status in ("pass", "fail", "skip")}
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
          f"in {time.perf_counter() - start:.0f} s")
    return 1 if counts["fail"] else 0
