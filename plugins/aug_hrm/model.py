"""Augmented HRM (arXiv 2601.10679; renrua52/hrm-mechanistic-analysis): HRM unchanged, with
(1) easier training copies (the task's ``hints`` option: some blanks filled from the answer)
and (2) inference by voting over relabelled copies of each puzzle.

Each test puzzle is run once per relabelling the task declares (Sudoku: the 9 cyclic digit
shifts; Maze: start and goal swapped), every answer is mapped back, and the answer given by
most *confident* passes wins (confident: q_halt > q_continue at the last segment, as the
reference; all passes vote when none is confident; ties go to the higher mean halting
confidence). The vote uses no labels. (The paper's 96.9% also takes a puzzle as solved when
any of 10 checkpoints is right, which needs the labels: not an accuracy, not reported here.)
"""

from __future__ import annotations

from typing import Any

import torch

from reasonbench.module import ReasoningOutput
from reasonbench.optim import OptimConfig
from reasonbench.tasks import TaskMetadata
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


class AugmentedHRMModel(HRMModel):
    """HRM's arguments, plus:
        relabel_vote: vote over the task's relabellings at evaluation (False: plain HRM).
    """

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, relabel_vote: bool = True,
                 **hrm_args: Any) -> None:
        super().__init__(metadata, optim, **hrm_args)
        self.relabel_vote = relabel_vote
        perms = self.metadata.relabellings or (tuple(range(self.metadata.vocab_size)),)
        self.register_buffer("relabellings", torch.tensor(perms, dtype=torch.long), persistent=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        if self.training or not self.relabel_vote or self.relabellings.shape[0] == 1:
            return super().forward(batch)
        logits_all, confident, confidence, halts, steps = [], [], [], [], []
        for perm in self.relabellings:
            logits, q_halt, q_continue, halt_step = self.run_segments({**batch, "inputs": perm[batch["inputs"]]})
            logits_all.append(logits.index_select(-1, perm))  # back to the original ids
            confident.append(q_halt > q_continue)
            confidence.append(torch.sigmoid(q_halt))
            halts.append(q_halt)
            steps.append(halt_step)
        logits = torch.stack(logits_all)
        winner = vote(logits.argmax(-1), torch.stack(confident), torch.stack(confidence))
        index = torch.arange(winner.shape[0], device=winner.device)
        return ReasoningOutput(logits=logits[winner, index], steps=torch.stack(steps)[winner, index],
                               confidence=torch.stack(confidence)[winner, index],
                               halt_logits=torch.stack(halts)[winner, index])
