"""Multi-process training (Lightning DDP, gloo on CPU) equals one process on the same global
batch: the tasks split every global batch over processes, random halting choices are drawn
for the whole global batch, per-puzzle embedding updates are gathered, metrics are summed and
whole-split scoring (ARC's vote) sees every process's predictions.

Tolerance: DDP averages the processes' gradients where one process averages over the batch,
so float sums run in another order; after training, weights agree to 1e-4 (absolute) and the
record's metrics exactly, but for the mean state residual per step (a float average: 1e-6
relative). Measured: every count-based metric identical, the residuals equal to 4e-8."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reasonbench.nn.puzzle import PuzzleEmbedding
from reasonbench.tasks.base import Batches, Split

from .conftest import QUIET, run_cli

WEIGHT_TOLERANCE = 1e-4
SIGN_FLIP_SHARE = 0.01  # puzzle-embedding entries whose sign-SGD step may flip (see below)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split(n: int) -> Split:
    inputs = torch.arange(n).view(n, 1).repeat(1, 3)
    return Split(inputs, inputs.clone(), torch.arange(n))


def test_processes_share_out_each_global_batch() -> None:
    split = _split(40)
    one = [b["puzzle_ids"] for b in Batches(split, 8, shuffle=True, seed=3)]
    shards = [[b["puzzle_ids"] for b in Batches(split, 8, shuffle=True, seed=3, rank=r, world=2)] for r in (0, 1)]
    assert len(one) == 5 and all(len(s) == 5 for s in shards)
    for i, batch in enumerate(one):
        assert torch.equal(torch.cat([shards[0][i], shards[1][i]]), batch)
    with pytest.raises(ValueError, match="not divisible"):
        Batches(split, 8, shuffle=True, world=3)


def test_evaluation_shards_cover_every_example_once() -> None:
    split = _split(37)
    seen = torch.cat([b["puzzle_ids"] for r in range(3) for b in Batches(split, 5, shuffle=False, rank=r, world=3)])
    assert torch.equal(seen, torch.arange(37))


def test_epochs_differ_and_position_resumes() -> None:
    split = _split(24)
    loader = Batches(split, 8, shuffle=True, seed=0)
    first, second = [torch.cat([b["puzzle_ids"] for b in loader]) for _ in range(2)]
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(24))
    assert not torch.equal(first, second)
    # Lightning stops after len() batches without exhausting the generator; the state says where
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state == {"epoch": 2, "position": 1}
    restored = Batches(split, 8, shuffle=True, seed=0)
    restored.load_state_dict(state)
    assert [b["puzzle_ids"].tolist() for b in restored] == [b["puzzle_ids"].tolist() for b in it]


def _sign_sgd_worker(rank: int, port: int, ids: torch.Tensor, grads: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    table = PuzzleEmbedding(10, 4)
    table.weight.data.copy_(torch.linspace(-1, 1, 40).view(10, 4))
    table.train()
    half = ids.shape[0] // 2
    with torch.enable_grad():
        rows = table(ids[rank * half:(rank + 1) * half])
        # DDP's loss is a per-process mean: each process's row gradients are 2x its share
        (rows * grads[rank * half:(rank + 1) * half] * 2).sum().backward()
    table.sign_sgd_step(lr=0.1, weight_decay=0.5)
    if rank == 0:
        torch.save(table.weight.data, out)
    dist.destroy_process_group()


def test_puzzle_embedding_update_is_the_same_across_processes(tmp_path) -> None:
    ids = torch.tensor([1, 3, 3, 7, 1, 9, 3, 0])
    grads = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    single = PuzzleEmbedding(10, 4)
    single.weight.data.copy_(torch.linspace(-1, 1, 40).view(10, 4))
    single.train()
    (single(ids) * grads).sum().backward()
    single.sign_sgd_step(lr=0.1, weight_decay=0.5)
    out = tmp_path / "weight.pt"
    mp.spawn(_sign_sgd_worker, args=(_free_port(), ids, grads, str(out)), nprocs=2, join=True)
    assert torch.equal(torch.load(out), single.weight.data)
    untouched = torch.tensor([2, 4, 5, 6, 8])
    assert torch.equal(single.weight.data[untouched], torch.linspace(-1, 1, 40).view(10, 4)[untouched])


def test_two_processes_train_like_one(tmp_path) -> None:
    """TRM on ARC smoke: puzzle embeddings, persistent halting slots, random exploration,
    EMA, and the whole-split vote (pass@k) all under 2-process DDP."""
    args = ["run", "--model", "trm", "--task", "arc", "--preset", "smoke", "--trainer.max_steps", "30",
            "--trainer.accelerator", "cpu", "--model.halt_exploration_prob", "0.5", *QUIET]
    one = run_cli(*args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = run_cli(*args, "--out", str(tmp_path / "two"), "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert two.returncode == 0, two.stderr[-2000:]
    records = [json.loads((tmp_path / k / "trm/arc/smoke/seed0.json").read_text()) for k in ("one", "two")]
    assert records[1]["cost"]["device_count"] == 2
    # the state's per-step residual is a float mean summed in another grouping: equal to 1e-6
    residuals = [r["metrics"]["by_step"].pop("residual") for r in records]
    assert residuals[1] == pytest.approx(residuals[0], rel=1e-6)
    assert records[0]["metrics"] == records[1]["metrics"]
    assert records[0]["metrics"]["n_test_examples"] > 0 and "pass@2" in records[0]["metrics"]
    # the same FLOPs: each process counts half the batch, the record sums over processes
    assert records[1]["cost"]["train_flops"] == pytest.approx(records[0]["cost"]["train_flops"], rel=1e-9)
    weights = [torch.load(tmp_path / k / "trm/arc/smoke/seed0/final.pt", weights_only=True)["state_dict"]
               for k in ("one", "two")]
    assert weights[0].keys() == weights[1].keys()
    moved = weights[0]["puzzle_embedding.weight"].abs().sum()
    assert moved > 0  # the per-puzzle rows were trained
    for name, value in weights[0].items():
        far = (value.float() - weights[1][name].float()).abs() > WEIGHT_TOLERANCE
        if name == "puzzle_embedding.weight":
            # sign-SGD: a gradient that sums to about 0 takes either sign when summed in another
            # order (seen with CPU kernels without AVX2), a whole step apart; a few such entries
            assert far.float().mean() <= SIGN_FLIP_SHARE, (name, int(far.sum()), far.numel())
        else:
            assert not far.any(), name


def test_two_processes_score_the_ood_split_like_one(tmp_path) -> None:
    """The out-of-distribution split's second test loop is sharded like the test split: the same
    counts and curves from one process and from two."""
    base = ["--model", "trm", "--task", "maze", "--preset", "smoke", "--trainer.accelerator", "cpu", *QUIET]
    trained = run_cli("run", *base, "--trainer.max_steps", "10", "--out", str(tmp_path / "train"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = tmp_path / "train/trm/maze/smoke/seed0/final.pt"
    evals = ["eval", *base, "--checkpoint", str(checkpoint), "--task.num_ood", "37"]  # odd: uneven shards
    one = run_cli(*evals, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = run_cli(*evals, "--out", str(tmp_path / "two"), "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert two.returncode == 0, two.stderr[-2000:]
    metrics = [json.loads((tmp_path / k / "trm/maze/smoke/seed0.eval.json").read_text())["metrics"] for k in ("one", "two")]
    for m in metrics:
        m["by_step"].pop("residual")
        m["ood"]["by_step"].pop("residual")
    assert metrics[0]["ood"]["n_test_examples"] == 37
    assert metrics[0] == metrics[1]
