"""What the rest of the package needs to know about the process group (DDP): which process
this is, and the rows of every process gathered in order. Without a group: rank 0 of 1."""

from __future__ import annotations

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the running process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Every process's rows concatenated in rank order (their counts may differ)."""
    _, world = rank_and_world()
    if world == 1:
        return local
    if local.dtype == torch.bool:  # gloo has no bool collectives
        return gather_rows(local.to(torch.uint8)).bool()
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], device=local.device))
    longest = int(max(sizes).item())
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[:local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:int(n.item())] for part, n in zip(parts, sizes)])
