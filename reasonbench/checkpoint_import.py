"""``reasonbench import-checkpoint``: a checkpoint of the reference HRM/TRM code becomes a
reasonbench checkpoint that ``reasonbench eval`` scores without training.

The reference saves ``model.state_dict()`` of its compiled loss head (keys such as
``_orig_mod.model.inner.H_level.layers.0.self_attn.qkv_proj.weight``) and, beside it,
``all_config.yaml`` with the architecture. Its weights are renamed by the plugin
(``from_reference_state_dict``), its architecture becomes the plugin's arguments
(``reference_arguments``), and the result is checked by loading it into the model.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import torch
import yaml

from . import config as cfgmod
from .config import one_line
from .errors import UserError, cannot_write, invalid_yaml

REFERENCE_CONFIG = "all_config.yaml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every other command
        raise UserError(f"import-checkpoint: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reasonbench import-checkpoint")
    parser.add_argument("--from", dest="source", required=True, choices=["hrm", "trm"],
                        help="which reference implementation wrote PATH")
    parser.add_argument("path", help="the reference checkpoint (a saved state dict)")
    parser.add_argument("--task", required=True, help="the task it was trained on")
    parser.add_argument("--out", required=True, help="where to write the reasonbench checkpoint")
    parser.add_argument("--preset", default="paper", help="preset for everything the checkpoint does not fix")
    parser.add_argument("--reference-config", default=None,
                        help=f"the reference's {REFERENCE_CONFIG} (default: the one beside PATH, if any)")
    return parser


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    from .runner import read_torch_file

    state = read_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path}: not a state dict of tensors")
    return state


def _reference_arch(path: Path, explicit: str | None) -> tuple[dict[str, Any] | None, Path | None]:
    config_path = Path(explicit) if explicit else path.parent / REFERENCE_CONFIG
    if not config_path.is_file():
        if explicit:
            raise UserError(f"--reference-config {config_path}: no such file")
        return None, None
    try:
        loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{config_path}: cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    except yaml.YAMLError as exc:
        raise UserError(invalid_yaml(str(config_path), exc)) from None
    arch = loaded.get("arch") if isinstance(loaded, dict) else None
    if not isinstance(arch, dict):
        raise UserError(f"{config_path}: no 'arch' section (not a reference all_config.yaml)")
    return arch, config_path


def _shape_arguments(source: str, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the weights themselves say about the architecture (used without a config file)."""
    args: dict[str, Any] = {"hidden_size": int(state["embed.weight"].shape[1])}
    table = state.get("puzzle_embedding.weight")
    args["puzzle_emb_dim"] = int(table.shape[1]) if table is not None else 0

    def layers(prefix: str) -> int:
        return len({k.split(".")[2] for k in state if k.startswith(prefix + ".layers.")})

    if source == "hrm":
        args["high_layers"], args["low_layers"] = layers("high"), layers("low")
    else:
        args["num_layers"] = layers("net")
        mlp = any(".seq_mlp." in k for k in state)
        args["mixer"] = "mlp" if mlp else "attention"
        if mlp:
            args["pos_encodings"] = "none"
    if "position" in state:
        args["pos_encodings"] = "learned"
    return args


def import_checkpoint(source: str, path: str | Path, task: str, out: str | Path, preset: str = "paper",
                      reference_config: str | None = None) -> dict[str, Any]:
    """Convert; returns a summary (what was read, the model arguments, where it went)."""
    from . import registry
    from .runner import build_model, make_task, save_checkpoint

    path, out = Path(path), Path(out)
    raw = _load_state(path)
    model_cls = registry.get("model", source)
    try:
        state = model_cls.from_reference_state_dict(raw)
    except KeyError as exc:
        raise UserError(f"checkpoint {path}: key {exc.args[0]!r} is not part of a reference {source.upper()} model") from None
    arch, config_path = _reference_arch(path, reference_config)
    try:
        args = model_cls.reference_arguments(arch) if arch is not None else _shape_arguments(source, state)
    except KeyError as exc:  # a section or a tensor the architecture is read from is missing
        if arch is not None:
            raise UserError(f"{config_path}: the 'arch' section has no {exc.args[0]!r}") from None
        raise UserError(f"checkpoint {path}: no {exc.args[0]!r} tensor to read the architecture from "
                        f"(give --reference-config {REFERENCE_CONFIG})") from None
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. expansion: "four"
        raise UserError(f"{config_path or path}: cannot read the architecture: {one_line(exc)}") from None
    argv = ["--model", source, "--task", task, "--preset", preset, *cfgmod.overrides_to_argv({"model": args})]
    cfg, _ = cfgmod.resolve(argv, prog="reasonbench import-checkpoint")
    task_obj = make_task(cfg)
    meta, _ = task_obj.planned_metadata()
    table = state.get("puzzle_embedding.weight")
    if table is not None:
        # identifiers belong to the build that trained the checkpoint; eval checks the fit
        from dataclasses import replace
        meta = replace(meta, num_puzzle_ids=int(table.shape[0]))
    model = build_model(cfg, task_obj, meta)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = next((l.strip() for l in str(exc).splitlines()[1:] if l.strip()), one_line(exc))
        raise UserError(f"checkpoint {path} does not fit {source} on {task} with these settings: {first[:300]}") from None
    try:
        save_checkpoint(model, cfg, out, imported_from={
            "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "reference_config": str(config_path) if config_path else None})
    except OSError as exc:  # e.g. a file where a folder should be
        raise UserError(cannot_write("--out", out, exc)) from None
    return {"out": str(out), "model_args": cfg.model_args, "reference_config": str(config_path) if config_path else None,
            "tensors": len(state)}


def main(argv: list[str]) -> int:
    parser = _parser()
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    result = import_checkpoint(args.source, args.path, args.task, args.out, args.preset, args.reference_config)
    source = f"architecture from {result['reference_config']}" if result["reference_config"] else \
        f"architecture from the weights' shapes and preset {args.preset} (no {REFERENCE_CONFIG} found)"
    print(f"{result['tensors']} tensors; {source}")
    print(f"wrote {result['out']}: evaluate with `reasonbench eval --checkpoint {result['out']} --task {args.task}`")
    return 0
