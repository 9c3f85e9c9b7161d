"""Training speed of reasonbench's TRM and HRM against the reference implementations
(SamsungSAILMontreal/TinyRecursiveModels, sapientinc/HRM) on the same config, batch and hardware.

Not part of CI (it needs a checkout of the reference code, and pydantic + einops):

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels trm_ref
    python -m reasonbench_benchmarks.reference_speed --model trm --reference trm_ref [--preset mini --task sudoku]
    git clone https://github.com/sapientinc/HRM hrm_ref
    python -m reasonbench_benchmarks.reference_speed --model hrm --reference hrm_ref

On a GPU: ``--device cuda --bf16 --preset paper`` (add ``--compile`` for reasonbench's regional
compilation, ``--out FILE`` for the JSON). With ``--bf16`` the reference computes in its own
``forward_dtype`` bfloat16 and reasonbench under ``torch.autocast`` (as ``bf16-mixed`` training
does); reasonbench runs its fast path where it is the default (CUDA; ``--fast-path`` /
``--no-fast-path`` choose). ``--task.NAME VALUE`` options reach the task, as in ``reasonbench
run`` (e.g. the recipe of a data cache built beforehand).

HRM's reference attends through FlashAttention, which has no CPU build: here its
``flash_attn_func`` is ``scaled_dot_product_attention`` on the same tensors (the layout
transposed), the kernel reasonbench uses too.

Both sides run the reference's training step: one supervision segment on the persistent batch
of slots (forward, ACT loss, backward), Adam-atan2 on the weights and sign-SGD on the puzzle
embeddings. The reference's compiled CUDA ``adam_atan2`` is not built here, so both use
reasonbench's ``AdamAtan2`` (multi-tensor ops); the reference's sparse sign-SGD is its own. The
reference runs eagerly (its training script would ``torch.compile`` the whole model: minutes of
compilation). Timed in alternating rounds (ours, reference, ours, ...), each round synchronised
with the device before and after, so that a busy machine slows both alike; the figure is the
median step time of each side, and ``ratio`` = the reference's step time / reasonbench's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import sys
import time
import types
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from reasonbench.model import fastpath
from reasonbench.config.resolve import resolve
from reasonbench.record.measure import count_parameters, device_name
from reasonbench.model.optim import AdamAtan2
from reasonbench.record.schema import git_state, versions, write_atomic
from reasonbench.execution.build import build_model, build_task

FORMAT = "reasonbench-reference-speed"


def reference_config(model: str, a: dict, meta, batch_size: int, forward_dtype: str = "float32") -> dict:
    """The reference ``arch`` config equal to our model's arguments ``a``."""
    arch = {"batch_size": batch_size, "seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
            "num_puzzle_identifiers": meta.num_puzzle_ids, "puzzle_emb_ndim": a["puzzle_emb_dim"],
            "hidden_size": a["hidden_size"], "expansion": a["expansion"], "num_heads": a["num_heads"],
            "pos_encodings": a["pos_encodings"], "rope_theta": a["rope_theta"], "halt_max_steps": a["halt_max_steps"],
            "halt_exploration_prob": a["halt_exploration_prob"], "forward_dtype": forward_dtype}
    if model == "hrm":
        return {**arch, "H_cycles": a["high_cycles"], "L_cycles": a["low_cycles"], "H_layers": a["high_layers"],
                "L_layers": a["low_layers"]}
    return {**arch, "puzzle_emb_len": a["puzzle_emb_len"], "H_cycles": a["recursions"], "L_cycles": a["latent_steps"],
            "H_layers": 0, "L_layers": a["num_layers"], "mlp_t": a["mixer"] == "mlp",
            "no_ACT_continue": not a["q_continue_loss"]}


def _flash_attention_on_sdpa() -> None:
    """A ``flash_attn`` module whose ``flash_attn_func`` ([B, S, H, D] tensors) runs SDPA."""
    module = types.ModuleType("flash_attn")

    def flash_attn_func(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return out.transpose(1, 2)

    module.flash_attn_func = flash_attn_func
    sys.modules.setdefault("flash_attn", module)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("trm", "hrm"), default="trm")
    parser.add_argument("--reference", required=True, help="a checkout of the model's reference code")
    parser.add_argument("--task", default="sudoku")
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true",
                        help="the reference in forward_dtype bfloat16, reasonbench under bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="reasonbench's regional compilation (its blocks)")
    parser.add_argument("--fast-path", action=argparse.BooleanOptionalAction, default=None,
                        help="reasonbench's fused blocks (default: on CUDA)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args, rest = parser.parse_known_args(argv)
    if any(not a.startswith("--task.") for a in rest[::2]) or len(rest) % 2:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.task_options = rest
    return args


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("reference_speed: --device cuda: no CUDA device available")
    sys.path.insert(0, str(Path(args.reference).resolve()))
    _flash_attention_on_sdpa()
    if args.model == "hrm":
        ref_cls = importlib.import_module("models.hrm.hrm_act_v1").HierarchicalReasoningModel_ACTV1
    else:
        ref_cls = importlib.import_module("models.recursive_reasoning.trm").TinyRecursiveReasoningModel_ACTV1
    ref_losses = importlib.import_module("models.losses")
    ref_sparse = importlib.import_module("models.sparse_embedding")
    torch.manual_seed(0)

    cfg, _ = resolve(["--model", args.model, "--task", args.task, "--preset", args.preset, *args.task_options])
    task = build_task(cfg)
    ours = build_model(cfg, task).to(device)
    fast = args.fast_path if args.fast_path is not None else fastpath.fast_path_default(device)
    fastpath.set_fast_path(ours, fast)
    if args.compile:
        fastpath.compile_blocks(ours)
    batch_size, opt = task.batch_size, ours.optim
    arch = reference_config(args.model, cfg.model_args, task.metadata, batch_size,
                            "bfloat16" if args.bf16 else "float32")
    with torch.device(device):  # the reference makes its buffers and carries on the default device
        ref = ref_losses.ACTLossHead(ref_cls(arch), loss_type="stablemax_cross_entropy")
    params, extra = count_parameters(ours)
    ref_params = sum(p.numel() for p in ref.parameters())
    print(f"{args.model.upper()} {args.task}/{args.preset}: batch {batch_size}, parameters ours {params:,} (+{extra:,} puzzle "
          f"embedding), reference {ref_params:,} (its puzzle table is a buffer); {device_name(device)}, "
          f"{'bf16' if args.bf16 else 'fp32'}{', fast path' if fast else ''}{', compiled blocks' if args.compile else ''}")

    batches = [{k: v.to(device) for k, v in b.items()} for _, b in zip(range(args.steps), task.train_dataloader())]
    ours.train()
    ours_opt = AdamAtan2([p for p in ours.parameters() if p.requires_grad], lr=opt.lr, weight_decay=opt.weight_decay)
    ref.train()
    ref_opts = [AdamAtan2(ref.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)]
    if arch["puzzle_emb_ndim"]:
        ref_opts.append(ref_sparse.CastedSparseEmbeddingSignSGD_Distributed(
            ref.model.inner.puzzle_emb.buffers(), lr=opt.puzzle_emb_lr, weight_decay=opt.puzzle_emb_weight_decay,
            world_size=1))
    ref_carry = None
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext())

    def ours_step(batch: dict) -> None:
        with autocast:
            loss, _ = ours.training_loss(batch)
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad()
        for table in ours.puzzle_tables():
            table.sign_sgd_step(opt.puzzle_emb_lr, opt.puzzle_emb_weight_decay)

    def ref_step(batch: dict) -> None:
        nonlocal ref_carry
        batch = {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}
        if ref_carry is None:
            with torch.device(device):
                ref_carry = ref.initial_carry(batch)
        ref_carry, loss, _, _, _ = ref(carry=ref_carry, batch=batch, return_keys=[])
        ((1 / batch_size) * loss).backward()
        for o in ref_opts:
            o.step()
            o.zero_grad()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: dict[str, list[float]] = {"reasonbench": [], "reference": []}
    warmup: dict[str, float] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up both (and compiles)
        for name, step in (("reasonbench", ours_step), ("reference", ref_step)):
            sync()
            t0 = time.perf_counter()
            for batch in batches:
                step(batch)
            sync()
            seconds = time.perf_counter() - t0
            if round_:
                times[name].append(seconds / len(batches))
            else:
                warmup[name] = seconds
    mine, theirs = statistics.median(times["reasonbench"]), statistics.median(times["reference"])
    print(f"step time (median of {args.rounds} rounds of {len(batches)} steps, {torch.get_num_threads()} threads): "
          f"reasonbench {1000 * mine:.1f} ms, reference {1000 * theirs:.1f} ms; "
          f"reasonbench is {theirs / mine:.2f}x the reference's speed")
    commit, dirty = git_state()
    result = {
        "format": FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m reasonbench_benchmarks.reference_speed", *(argv or sys.argv[1:])]),
        "model": args.model, "task": args.task, "preset": args.preset, "task_options": args.task_options,
        "device": device_name(device), "device_type": device.type, "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__, "versions": versions(),
        "git_commit": commit or os.environ.get("REASONBENCH_GIT_COMMIT"), "git_dirty": dirty,
        "dtype": "bf16" if args.bf16 else "fp32", "fast_path": fast, "compiled": args.compile,
        "batch_size": batch_size, "params": params, "params_extra": extra, "reference_params": ref_params,
        "steps_per_round": len(batches), "rounds": args.rounds,
        "reasonbench_step_ms": 1000 * mine, "reference_step_ms": 1000 * theirs, "ratio": theirs / mine,
        "round_step_ms": {k: [1000 * t for t in v] for k, v in times.items()},
        "warmup_round_seconds": warmup,
    }
    if args.out:
        write_atomic(Path(args.out), json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
