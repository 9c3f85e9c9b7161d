"""Per-puzzle embeddings trained by sign-SGD, as in the HRM/TRM reference code.

Each puzzle identifier (an ARC task variant, say) owns a learned vector, zero at the start.
A batch touches a handful of rows out of up to a million, so the table is not handed to Adam:
the rows a batch used get ``row -= lr * sign(summed gradient)`` with decoupled weight decay
("Adam is about sign-SGD when gradients are this sparse"). The table is a parameter without
``requires_grad`` so it moves with the model and lands in checkpoints, but no dense optimizer,
EMA or DDP gradient reduction touches it; it counts apart from the model's parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from reasonbench.util.distributed import gather_rows


class PuzzleEmbedding(nn.Module):
    """A [num_ids, dim] table; ``forward`` returns the rows of a batch, with a gradient."""

    counts_as_extra = True  # the reference leaves these out of the parameter count

    def __init__(self, num_ids: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_ids, dim), requires_grad=False)
        # rows looked up with gradient since the last step (leaves that collect the gradient);
        # several under gradient accumulation
        self._looked_up: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight[ids]
        if self.training and torch.is_grad_enabled():
            rows = rows.detach().requires_grad_(True)
            self._looked_up.append((rows, ids))
        return rows

    def forget_batch(self) -> None:
        """Drop rows whose step was skipped (e.g. a non-finite loss)."""
        self._looked_up = []

    @torch.no_grad()
    def sign_sgd_step(self, lr: float, weight_decay: float) -> None:
        """Update the rows used since the last step from their summed gradient, all-gathered
        over processes so every replica applies the same update; then forget them."""
        looked_up, self._looked_up = [(r, i) for r, i in self._looked_up if r.grad is not None], []
        if not looked_up:
            return
        grad = torch.cat([r.grad for r, _ in looked_up])
        ids = torch.cat([i for _, i in looked_up])
        # every process applies the same update: the rows and gradients of all of them
        grad, ids = gather_rows(grad.contiguous()), gather_rows(ids.contiguous())
        if self.weight.shape[0] <= ids.shape[0]:
            # a table no longer than the batch (Sudoku, Maze: one row): summed over the whole
            # table, where ``unique`` would wait for the device to learn its output size; the
            # same sums, in the same order, and the same update
            summed = grad.new_zeros(self.weight.shape).index_add_(0, ids, grad)
            used = torch.zeros(self.weight.shape[0], dtype=torch.bool, device=ids.device).index_fill_(0, ids, True)
            updated = self.weight.mul(1.0 - lr * weight_decay).add_(summed.sign(), alpha=-lr)
            self.weight.copy_(torch.where(used.unsqueeze(-1), updated.to(self.weight.dtype), self.weight))
            return
        unique_ids, inverse = ids.unique(return_inverse=True)
        summed = grad.new_zeros((unique_ids.shape[0], grad.shape[1]))
        summed.index_add_(0, inverse, grad)
        updated = self.weight[unique_ids].mul_(1.0 - lr * weight_decay).add_(summed.sign(), alpha=-lr)
        self.weight[unique_ids] = updated.to(self.weight.dtype)
