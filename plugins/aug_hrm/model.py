"""Augmented HRM (arXiv 2601.10679; renrua52/hrm-mechanistic-analysis): HRM unchanged, with
(1) easier training copies (the task's ``hints`` option: some blanks filled from the answer),
(2) inference by voting over relabelled copies of each puzzle and (3) over checkpoints.

Each test puzzle is run once per relabelling the task declares (Sudoku: the 9 cyclic digit
shifts; Maze: start and goal swapped) and per checkpoint kept from the end of training; every
answer is mapped back, and the answer given by most *confident* passes wins (confident: q_halt >
q_continue at the last segment, as the reference; all passes vote when none is confident; ties
go to the higher mean halting confidence). The vote uses no labels: it is the accuracy.

The paper's 96.9% instead counts a puzzle as solved when any of 10 checkpoints' votes is right,
which needs the labels. It is reported apart as ``oracle_any_checkpoint_exact``, never as an
accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reasonbench.module import ReasoningOutput
from reasonbench.nn.ema import copy_weights
from reasonbench.optim import OptimConfig
from reasonbench.tasks import TaskMetadata
from reasonbench.model.testtime import ORACLE_STAT, any_exact
from reasonbench_plugins.hrm import HRMModel


def vote(predictions: torch.Tensor, confident: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Winning pass per example. predictions [P, B, L], confident [P, B] bool, confidence
    [P, B] in [0, 1]. A pass's score is the number of eligible passes with the same answer;
    eligible are the confident passes, or all where none is."""
    eligible = torch.where(confident.any(0, keepdim=True), confident, torch.ones_like(confident))
    same = (predictions.unsqueeze(1) == predictions.unsqueeze(0)).all(-1)  # [P, P, B]
    votes = (same & eligible.unsqueeze(0)).sum(1).float()  # eligible passes agreeing with pass p
    group_confidence = (same * (confidence * eligible).unsqueeze(0)).sum(1) / votes.clamp_min(1)
    score = torch.where(eligible, votes + group_confidence / 2, torch.full_like(votes, -1.0))  # conf < 1 breaks ties
    return score.argmax(0)


class WeightSnapshots(nn.Module):
    """Earlier copies of a model's weights, kept as the module's extra state: saved in its
    checkpoints (so ``eval`` of final.pt sees the whole ensemble), neither trained, counted,
    nor broadcast by DDP as buffers would be. A checkpoint without them has none."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[dict[str, torch.Tensor]] = []
        self.steps: list[int] = []

    def take(self, named: dict[str, torch.Tensor], step: int) -> None:
        self.weights.append({k: v.detach().to("cpu", copy=True) for k, v in named.items()})
        self.steps.append(step)

    def on(self, device: torch.device) -> list[dict[str, torch.Tensor]]:
        """The copies on ``device``, moved there once: evaluation uses them in every batch."""
        self.weights = [w if next(iter(w.values())).device == device else {k: v.to(device) for k, v in w.items()}
                        for w in self.weights]
        return self.weights

    def get_extra_state(self) -> dict[str, Any]:
        return {"steps": torch.tensor(self.steps, dtype=torch.long),
                "weights": {str(i): {k: v.cpu() for k, v in w.items()} for i, w in enumerate(self.weights)}}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = [int(s) for s in state["steps"]]
        self.weights = [state["weights"][str(i)] for i in range(len(self.steps))]


class AugmentedHRMModel(HRMModel):
    """Augmented HRM: HRM with voting over relabelled copies and over checkpoints at evaluation.

    HRM's options apply too.

    Args:
        relabel_vote: vote over the task's relabellings at evaluation (False: plain HRM).
        ensemble_checkpoints: checkpoints that vote (the paper: 10): the final weights and
            copies taken every ``ensemble_interval`` optimizer steps before the end.
        ensemble_interval: optimizer steps between those copies.
    """

    reported_stats = ("oracle_any_checkpoint_exact",)

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, relabel_vote: bool = True,
                 ensemble_checkpoints: int = 1, ensemble_interval: int = 100, **hrm_args: Any) -> None:
        super().__init__(metadata, optim, **hrm_args)
        if ensemble_checkpoints < 1 or ensemble_interval < 1:
            raise ValueError("model.ensemble_checkpoints and model.ensemble_interval must be >= 1")
        self.relabel_vote = relabel_vote
        self.ensemble_checkpoints, self.ensemble_interval = ensemble_checkpoints, ensemble_interval
        perms = self.metadata.relabellings or (tuple(range(self.metadata.vocab_size)),)
        self.register_buffer("relabellings", torch.tensor(perms, dtype=torch.long), persistent=False)
        self.snapshots = WeightSnapshots()

    # --- the checkpoints of the ensemble ---------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        # a resumed run keeps the copies it took before its checkpoint, a new fit none
        kept = [i for i, step in enumerate(self.snapshots.steps) if step <= self.global_step]
        self.snapshots.weights = [self.snapshots.weights[i] for i in kept]
        self.snapshots.steps = [self.snapshots.steps[i] for i in kept]

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        before_end = self._total_steps - self.global_step
        if 0 < before_end < self.ensemble_checkpoints * self.ensemble_interval and before_end % self.ensemble_interval == 0:
            # with EMA the averaged weights are what a checkpoint evaluates, as for the final one
            shadow = self.ema.shadow if self.ema is not None else {}
            self.snapshots.take({n: shadow.get(n, p) for n, p in self.named_parameters()}, self.global_step)

    def each_checkpoint(self):  # noqa: ANN201 (a generator of None)
        """Puts each checkpoint's weights in place in turn (the live ones first), restoring them after."""
        yield
        copies = self.snapshots.on(self.device)
        if not copies:
            return
        live = {n: p.detach().clone() for n, p in self.named_parameters()}
        try:
            for weights in copies:
                copy_weights(self, weights)
                yield
        finally:
            copy_weights(self, live)

    # --- evaluation -------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        perms = self.relabellings if self.relabel_vote else self.relabellings[:1]
        if self.training or (perms.shape[0] == 1 and not self.snapshots.weights):
            return super().forward(batch)
        logits_all, confident, confidence, halts, steps, member_winners, any_right = [], [], [], [], [], [], []
        plain = None  # the live weights on the original labels: their depth curve is the model's
        for _ in self.each_checkpoint():
            first = len(logits_all)
            for perm in perms:
                # at breadth > 1 (`eval --breadth`) each pass is its trajectories' pick
                run = self.run_trajectories({**batch, "inputs": perm[batch["inputs"]]})
                plain = plain or run
                if run.any_right is not None:
                    any_right.append(run.any_right)
                logits_all.append(run.logits.index_select(-1, perm))  # back to the original ids
                confident.append(run.q_halt > run.q_continue)
                confidence.append(torch.sigmoid(run.q_halt))
                halts.append(run.q_halt)
                steps.append(run.halt_step)
            member = slice(first, len(logits_all))
            member_winners.append(first + vote(torch.stack(logits_all[member]).argmax(-1),
                                               torch.stack(confident[member]), torch.stack(confidence[member])))
        logits = torch.stack(logits_all)
        predictions = logits.argmax(-1)
        winner = vote(predictions, torch.stack(confident), torch.stack(confidence))
        index = torch.arange(winner.shape[0], device=winner.device)
        out = ReasoningOutput(logits=logits[winner, index], steps=torch.stack(steps)[winner, index],
                              confidence=torch.stack(confidence)[winner, index],
                              halt_logits=torch.stack(halts)[winner, index],
                              step_predictions=plain.step_predictions, step_residuals=plain.step_residuals)
        stats = {}
        if len(member_winners) > 1 and "labels" in batch:
            stats["oracle_any_checkpoint_exact"] = oracle_any_right(
                torch.stack([predictions[w, index] for w in member_winners]), batch["labels"]).float().mean().item()
        if any_right:  # some trajectory of some pass exactly right
            stats[ORACLE_STAT] = torch.stack(any_right).any(0).double().mean().item()
        out.stats = stats or None
        return out


def oracle_any_right(answers: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example: is any checkpoint's voted answer ([C, B, L]) exactly right? Reads the labels,
    so it is an upper bound for analysis, not an accuracy."""
    return any_exact(answers, labels)
