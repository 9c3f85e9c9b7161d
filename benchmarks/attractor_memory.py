"""Training memory of the Attractor's fixed-point solve against its solver iterations, beside
TRM's explicit latent recursion of the same depth.

Memory is what autograd keeps for the backward pass (the bytes of every saved tensor of one
training step), so the figure is the same on any device. The Attractor differentiates only K
phantom steps from the fixed point: its memory must stay flat as the solver runs longer; TRM
back-propagates through all n latent steps of its last recursion: its memory grows with n.

Run: python -m reasonbench_benchmarks.attractor_memory
"""

from __future__ import annotations

import argparse

import torch

import reasonbench as rb


def saved_bytes(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = model.training_loss(batch)
    loss.backward()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sudoku")
    parser.add_argument("--depths", default="2,4,8,16,32")
    args = parser.parse_args()
    task = rb.create_task(args.task, preset="smoke")
    batch = next(iter(task.train_dataloader()))
    rows = []
    for depth in (int(d) for d in args.depths.split(",")):
        torch.manual_seed(0)
        attractor = rb.create_model("attractor", task=task, preset="mini", solver_min_iter=depth,
                                    solver_max_iter=depth, solver_tol=1e-12).train()
        trm = rb.create_model("trm", task=task, preset="mini", latent_steps=depth, mixer="attention",
                              pos_encodings="rope").train()
        rows.append((depth, saved_bytes(attractor, batch), saved_bytes(trm, batch)))
    base_a, base_t = rows[0][1], rows[0][2]
    print(f"saved activations of one training step, {args.task} smoke batch of {batch['inputs'].shape[0]}, "
          "mini-size models (width 64, 2 layers)")
    print(f"{'iterations / latent steps':>26} {'attractor MB':>13} {'x first':>8} {'trm MB':>9} {'x first':>8}")
    for depth, a, t in rows:
        print(f"{depth:>26} {a / 2**20:>13.1f} {a / base_a:>8.2f} {t / 2**20:>9.1f} {t / base_t:>8.2f}")


if __name__ == "__main__":
    main()
