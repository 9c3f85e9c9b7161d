"""The base LightningModule every plugin extends.

A plugin writes its network (``__init__``), its reasoning (``forward``, the full inference
computation) and, if it trains differently from one cross-entropy pass, ``training_loss``.
Optimizers, schedules, metrics, logging and evaluation live here.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import lightning as L
import torch
from torch import nn

from reasonbench.util.distributed import gather_rows, rank_and_world
from reasonbench.record.metrics import ReasoningMetrics, encode_outcomes
from reasonbench.model.optim import AdamAtan2, OptimConfig, ScheduledLR, scheduled_lr
from reasonbench.nn.ema import WeightEMA
from reasonbench.nn.losses import IGNORE_INDEX, token_cross_entropy
from reasonbench.nn.puzzle import PuzzleEmbedding
from reasonbench.tasks.base import ReasoningTask, TaskMetadata


@dataclass
class ReasoningOutput:
    """What ``forward`` returns: logits over the vocabulary and, for halting models, the
    number of reasoning steps each example used."""

    logits: torch.Tensor  # [B, L, V]
    steps: torch.Tensor | None = None  # [B]
    confidence: torch.Tensor | None = None  # [B] halting confidence, breaks ties in voting tasks
    halt_logits: torch.Tensor | None = None  # [B] "answer is right" logit of a halting head
    stats: dict[str, float] | None = None  # batch-level figures named in the model's ``reported_stats``
    step_predictions: torch.Tensor | None = None  # [S, B, L] the answer after each reasoning step
    step_residuals: torch.Tensor | None = None  # [S, B] relative change of the state at each step


class ReasoningModule(L.LightningModule):
    """Base class of all models. Subclasses take ``metadata`` and ``optim`` first."""

    # weight decay on every trained weight (the reference HRM/TRM optimizer) instead of
    # matrices only (the usual LLM practice)
    decay_all_parameters = False
    # per-batch figures the model reports (e.g. solver iterations); averaged over test examples
    reported_stats: tuple[str, ...] = ()
    # True where every example costs the same at evaluation (no data-dependent stopping): the
    # record's forward FLOPs are then counted on one example instead of several
    uniform_eval_cost = False
    # True where evaluation draws random numbers for the whole batch from one seeded stream (EqR's
    # starting states and noise, drawn as its reference draws them): an example's sample then
    # depends on its place in the batch, so `check-plugin` does not compare it alone with it in
    # its batch (it still checks that a seeded evaluation repeats exactly)
    samples_across_batch = False

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None) -> None:
        super().__init__()
        self.metadata = metadata
        self.optim = optim or OptimConfig()
        self.val_metrics = ReasoningMetrics(metadata.extra_metrics, self.reported_stats)
        self.test_metrics = ReasoningMetrics(metadata.extra_metrics, self.reported_stats)
        self._val_example: tuple[torch.Tensor, ...] | None = None
        self._test_predictions: list[torch.Tensor] = []
        self._test_confidences: list[torch.Tensor] = []
        self.test_results: dict | None = None
        self.test_predictions: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.test_examples: dict[str, dict[str, list[int]]] = {}  # one solved, one failed
        self.test_split = "test"  # what the test loop scores, its log prefix ("ood": the OOD split)
        self.diverged: str | None = None  # where training hit a non-finite loss
        self.diverged_step: int | None = None
        self.ema: WeightEMA | None = None  # made at fit start when optim.ema_decay > 0
        self._live_weights: dict[str, torch.Tensor] | None = None
        self._total_steps = 1

    # --- what a plugin implements -------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        raise NotImplementedError

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss to minimise and extra values to log; default: cross-entropy of one forward."""
        out = self(batch)
        return token_cross_entropy(out.logits, batch["labels"]), {}

    def extra_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters counted apart from the model's (e.g. per-puzzle embeddings): those of
        submodules that set ``counts_as_extra = True``."""
        for module in self.modules():
            if getattr(module, "counts_as_extra", False):
                yield from module.parameters(recurse=True)

    def puzzle_tables(self) -> list[PuzzleEmbedding]:
        """The per-puzzle embedding tables, trained by sign-SGD beside the optimizer."""
        return [m for m in self.modules() if isinstance(m, PuzzleEmbedding)]

    # --- training -------------------------------------------------------------------------
    # A non-finite loss stops training; the runner records where it happened. Reading the loss on
    # the host makes an accelerator wait for every queued kernel, so there the step only flags it
    # on the device, and the flag is read every ``divergence_check_interval`` steps, before
    # validation and at the end of each epoch: the record names the same step, but the updates
    # up to that read are made with the non-finite gradients. On the CPU, where reading is free,
    # the step checks at once and skips its update. ``defer_divergence_check``: None = on
    # accelerators.
    divergence_check_interval = 50
    defer_divergence_check: bool | None = None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss, logs = self.training_loss(batch)
        deferred = self.defer_divergence_check if self.defer_divergence_check is not None else self.device.type != "cpu"
        if deferred:
            self._flag_non_finite(loss.detach())
        elif not torch.isfinite(loss):
            for table in self.puzzle_tables():
                table.forget_batch()
            self._stop_diverged(loss.item(), self.global_step)
            return None
        # a progress bar reads its values every step: only where that costs no wait
        self.log("train/loss", loss, prog_bar=not deferred)
        for name, value in logs.items():
            self.log(f"train/{name}", value)
        return loss

    def _flag_non_finite(self, loss: torch.Tensor) -> None:
        """Remember, on the device, the first step with a non-finite loss and that loss."""
        if getattr(self, "_non_finite", None) is None or self._non_finite[0].device != loss.device:
            self._non_finite = (torch.full((), -1, dtype=torch.long, device=loss.device), torch.zeros_like(loss))
        step, value = self._non_finite
        first = ~torch.isfinite(loss) & (step < 0)
        self._non_finite = (torch.where(first, self.global_step, step), torch.where(first, loss, value))

    def _stop_diverged(self, loss: float, step: int) -> None:
        self.diverged = f"non-finite training loss ({loss}) at step {step}"
        self.diverged_step = step
        if self._trainer is not None:
            self.trainer.should_stop = True

    def check_divergence(self) -> bool:
        """Read the device's non-finite-loss flag (a host sync); stop training if it is set."""
        flag = getattr(self, "_non_finite", None)
        if self.diverged is None and flag is not None and int(flag[0]) >= 0:
            self._stop_diverged(flag[1].item(), int(flag[0]))
        return self.diverged is not None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # callbacks ran first: a budget that ends training now is seen here
        trainer = self.trainer
        last = 0 < trainer.max_steps <= self.global_step
        if last or trainer.should_stop or self.global_step % self.divergence_check_interval == 0:
            self.check_divergence()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == "fit":
            self.check_divergence()

    def on_train_epoch_end(self) -> None:
        self.check_divergence()

    def configure_optimizers(self):  # noqa: ANN201 (Lightning's union of return types)
        opt = self.optim
        extra = {id(p) for p in self.extra_parameters()}
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                # extras (per-puzzle tables) are not regularised towards zero
                regularised = (self.decay_all_parameters or p.ndim >= 2) and id(p) not in extra
                (decay if regularised else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": opt.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
        if opt.name == "adam_atan2":
            optimizer = AdamAtan2(groups, lr=opt.lr, betas=(opt.beta1, opt.beta2))
        else:
            # the fused kernel where the weights live on a GPU, multi-tensor ops elsewhere
            fused = self.device.type == "cuda"
            optimizer = torch.optim.AdamW(groups, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                                          fused=fused or None, foreach=None if fused else True)
        self._total_steps = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer else 1
        schedule = ScheduledLR(optimizer, self.scheduled_lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @property
    def training_progress(self) -> float:
        """Share of the planned optimizer steps done, in [0, 1]; 1 outside a fit."""
        if self._trainer is None or self.trainer.state.fn != "fit":
            return 1.0
        return min(1.0, self.global_step / max(1, self._total_steps))

    def cost_phase(self) -> Any:
        """A key that changes when the cost of a training step does (e.g. a depth curriculum),
        so that training FLOPs are measured in every phase; None: constant."""
        return None

    def batch_rand(self, n: int, device: torch.device) -> torch.Tensor:
        """``torch.rand(n)`` for this process's ``n`` examples of the global batch: every process
        draws the numbers of the whole global batch and keeps its slice, so one device and N
        devices make the same random choices for the same example."""
        rank, world = rank_and_world()
        return torch.rand(n * world, device=device)[rank * n:(rank + 1) * n]

    def batch_randint(self, low: int, high: int, n: int, device: torch.device) -> torch.Tensor:
        """``torch.randint(low, high, (n,))`` drawn as ``batch_rand`` is."""
        rank, world = rank_and_world()
        return torch.randint(low, high, (n * world,), device=device)[rank * n:(rank + 1) * n]

    def batch_randn(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
                    fill: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """``torch.randn(shape)`` (or ``fill`` of an empty tensor: another distribution) for this
        process's ``shape[0]`` examples, drawn as ``batch_rand`` is: the numbers of the whole
        global batch, this process's rows kept. One process draws exactly ``torch.randn``'s."""
        rank, world = rank_and_world()
        n = shape[0]
        full = (n * world, *shape[1:])
        drawn = fill(torch.empty(full, dtype=dtype, device=device)) if fill else torch.randn(full, dtype=dtype, device=device)
        return drawn if world == 1 else drawn[rank * n:(rank + 1) * n]

    def scheduled_lr(self, base_lr: float, step: int) -> float:
        """The rate of optimizer step ``step`` (counted from 1) for a group whose base rate is
        ``base_lr``: the reference's warm-up and cosine (``optim.scheduled_lr``)."""
        opt = self.optim
        return scheduled_lr(base_lr, step, opt.warmup_steps, self._total_steps, opt.min_lr_ratio)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # per-puzzle tables: sign-SGD on the rows used, on the same schedule as the weights
        # global_step still counts the updates before this one: this is update global_step + 1
        lr = self.scheduled_lr(self.optim.puzzle_emb_lr, self.global_step + 1)
        for table in self.puzzle_tables():
            table.sign_sgd_step(lr, self.optim.puzzle_emb_weight_decay)
        self.after_optimizer_step()

    def after_optimizer_step(self) -> None:
        """What follows each weight update (the EMA). Here rather than in ``on_train_batch_end``:
        Lightning runs callbacks first there, so a checkpoint saved at this step would miss it."""
        if self.ema is not None:
            self.ema.update(self)

    # --- EMA of the weights: averaged during training, evaluated in their place -----------
    def on_fit_start(self) -> None:
        if self.optim.ema_decay > 0 and self.ema is None:
            self.ema = WeightEMA(self, self.optim.ema_decay)

    def on_validation_epoch_start(self) -> None:
        if self.ema is not None and self.trainer.state.fn == "fit":
            self._live_weights = self.ema.swap_in(self)

    def on_train_end(self) -> None:
        # the averaged weights are the trained model: tested, saved in final.pt
        if self.ema is not None:
            self.ema.copy_to(self)
            self.ema = None

    # --- checkpoints: everything a resumed run needs to continue exactly ------------------------
    def training_state(self) -> dict[str, Any]:
        """State that lives outside the weights and optimizer and changes during training (e.g.
        the slots that persist between steps); tensors, gathered over processes if per-process."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what ``training_state`` returned (this process's part of it)."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.ema is not None:
            checkpoint["ema_state"] = self.ema.state_dict()
        checkpoint["training_state"] = self.training_state()
        # random streams as they stand after this step: a resumed run draws what this one would
        checkpoint["rng_state"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "ema_state" in checkpoint and self.optim.ema_decay > 0:
            self.ema = WeightEMA(self, self.optim.ema_decay)
            self.ema.load_state_dict(checkpoint["ema_state"])
        if checkpoint.get("training_state"):
            self.load_training_state(checkpoint["training_state"])
        rng = checkpoint.get("rng_state")
        if rng:
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])

    # --- evaluation -------------------------------------------------------------------------
    @property
    def task(self) -> ReasoningTask | None:
        """The task this model runs on: the trainer's datamodule (None outside a trainer, or
        when the data came as bare dataloaders)."""
        datamodule = getattr(self._trainer, "datamodule", None)
        return datamodule if isinstance(datamodule, ReasoningTask) else None

    @property
    def task_aggregate(self) -> Callable[..., dict[str, float]] | None:
        """The task's scoring over the whole test split at once (ARC's vote), if it has one."""
        return getattr(self.task, "aggregate_scores", None)

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: ReasoningMetrics,
                  out: ReasoningOutput | None = None) -> tuple[ReasoningOutput, torch.Tensor]:
        out = self(batch) if out is None else out
        predictions = out.logits.argmax(-1)
        task = self.task
        extra = task.score(batch["inputs"], predictions, batch["labels"]) if task is not None else None
        metrics.update(predictions, batch["labels"], out.steps, extra, out.halt_logits, out.stats,
                       out.step_predictions, out.step_residuals, batch.get("difficulty_bucket"), batch.get("ood"))
        return out, predictions

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, predictions = self._evaluate(batch, self.val_metrics)
        if batch_idx == 0:
            self._val_example = (batch["inputs"][0].cpu(), predictions[0].cpu(), batch["labels"][0].cpu())

    def on_validation_epoch_end(self) -> None:
        self._log_example_image()
        result = self.val_metrics.compute()
        self.log("val/exact_accuracy", result["exact_accuracy"], prog_bar=True, sync_dist=False)
        self.log("val/token_accuracy", result["token_accuracy"], sync_dist=False)
        self.val_metrics.reset()
        if self._live_weights is not None:
            self.ema.swap_out(self, self._live_weights)
            self._live_weights = None

    def _log_example_image(self) -> None:
        """The first validation puzzle, the model's answer and the truth, in TensorBoard."""
        experiment = getattr(self.logger, "experiment", None)
        if self._val_example is None or self.task is None or not hasattr(experiment, "add_image"):
            return
        image = self.task.render_image(*self._val_example)
        experiment.add_image("val/example", image, self.global_step, dataformats="HWC")
        self._val_example = None

    def on_test_epoch_start(self) -> None:
        self._test_predictions, self._test_confidences, self._test_outcomes = [], [], []
        self.test_examples = {}

    def _keep_examples(self, batch: dict[str, torch.Tensor], predictions: torch.Tensor,
                       outcomes: torch.Tensor) -> None:
        """The first exactly solved and the first failed test example, for the record's pictures
        (``outcomes``: 1 exact, 0 not, -1 nothing to score)."""
        labels = batch["labels"]
        for kind, hits in (("solved", outcomes == 1), ("failed", outcomes == 0)):
            if kind not in self.test_examples and hits.any():
                i = int(hits.nonzero()[0, 0])
                self.test_examples[kind] = {"inputs": batch["inputs"][i].tolist(), "prediction": predictions[i].tolist(),
                                            "labels": labels[i].tolist()}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.score_test_batch(batch)

    def score_test_batch(self, batch: dict[str, torch.Tensor], out: ReasoningOutput | None = None) -> None:
        """Score a test batch: the model's output on it (``out``, or a forward pass now)."""
        out, predictions = self._evaluate(batch, self.test_metrics, out)
        # each example's exact outcome, in split order (paired tests between models need them);
        # -1 marks an example with nothing to score, which the metrics do not count either
        labels, mask = batch["labels"], batch["labels"] != IGNORE_INDEX
        exact = ((predictions == labels) | ~mask).all(-1)
        outcomes = torch.where(mask.any(-1), exact.to(torch.int8), -1)
        self._test_outcomes.append(outcomes)
        if len(self.test_examples) < 2:
            self._keep_examples(batch, predictions, outcomes)
        if self.task_aggregate is not None:
            # small ids kept on the CPU: the whole split's predictions are voted on at the end
            self._test_predictions.append(predictions.to(torch.uint8).cpu())
            if out.confidence is not None:
                self._test_confidences.append(out.confidence.float().cpu())

    # what a test pass accumulates and yields: one such set per reading where a pass scores several
    TEST_STATE = ("test_metrics", "_test_predictions", "_test_confidences", "_test_outcomes", "test_examples",
                  "test_results", "test_predictions")

    def fresh_test_state(self) -> dict[str, Any]:
        """A test pass's state before its first batch (``TEST_STATE``), metrics on the model's device."""
        metrics = ReasoningMetrics(self.metadata.extra_metrics, self.reported_stats).to(self.device)
        return {"test_metrics": metrics, "_test_predictions": [], "_test_confidences": [], "_test_outcomes": [],
                "test_examples": {}, "test_results": None, "test_predictions": None}

    @contextmanager
    def swapped_test_state(self, state: dict[str, Any]) -> Iterator[None]:
        """Score into ``state`` (``fresh_test_state``'s) instead of the model's own test state;
        ``state`` holds what was scored afterwards."""
        own = {name: getattr(self, name) for name in self.TEST_STATE}
        for name in self.TEST_STATE:
            setattr(self, name, state[name])
        try:
            yield
        finally:
            state.update({name: getattr(self, name) for name in self.TEST_STATE})
            for name, value in own.items():
                setattr(self, name, value)

    def on_test_epoch_end(self) -> None:
        self.test_results = self.test_metrics.compute()
        # the split in order: each process scored one contiguous shard
        outcomes = gather_rows(torch.cat(self._test_outcomes) if self._test_outcomes else torch.zeros(0, dtype=torch.int8))
        self.test_results["exact_by_example"] = encode_outcomes(outcomes[outcomes >= 0].bool())
        self._test_outcomes = []
        if self.task_aggregate is not None:
            # the split in order: each process scored one contiguous shard
            predictions = gather_rows(torch.cat(self._test_predictions).long() if self._test_predictions
                                      else torch.zeros(0, self.metadata.seq_len, dtype=torch.long))
            confidences = gather_rows(torch.cat(self._test_confidences) if self._test_confidences else torch.zeros(0))
            confidences = confidences if confidences.numel() else None
            if predictions.shape[0]:
                self.test_results.update(self.task_aggregate(predictions, confidences))
                self.test_predictions = (predictions, confidences)  # kept for a submission file
            self._test_predictions, self._test_confidences = [], []
        self.log(f"{self.test_split}/exact_accuracy", self.test_results["exact_accuracy"])
        self.log(f"{self.test_split}/token_accuracy", self.test_results["token_accuracy"])
        self.test_metrics.reset()
