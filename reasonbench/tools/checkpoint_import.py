"""``reasonbench import-checkpoint``: a checkpoint of the reference HRM/TRM/EqR/SE-RRM code becomes a
reasonbench checkpoint that ``reasonbench eval`` scores without training.

The HRM/TRM references save ``model.state_dict()`` of their compiled loss head (keys such as
``_orig_mod.model.inner.H_level.layers.0.self_attn.qkv_proj.weight``) and, beside it,
``all_config.yaml`` with the architecture. EqR saves a training checkpoint (``eqr.pth``): a dict
with that state dict under ``model``, the EMA of the weights under ``ema`` (``{mu, shadow}``), its
run config under ``config``, and the training state (optimizer, carry, random states) whose
objects are never unpickled here: only tensors and plain data are read. As the reference's
evaluation does, the EMA weights are imported when the run kept them. Weights are renamed here
(``rename_reference_state``, with the model's own tables where it has them), the architecture
becomes the plugin's arguments (``reference_arguments``), and the result is checked by loading it
into the model.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser

from reasonbench.config import resolve as cfgmod
from reasonbench.config.commandline import collapse_whitespace, command_parser, parse
from reasonbench.util.errors import UserError, cannot_write

REFERENCE_CONFIG = "all_config.yaml"


def _parser() -> ArgumentParser:
    parser = command_parser("reasonbench import-checkpoint",
                            "Convert a reference HRM/TRM/EqR/SE-RRM checkpoint into one `reasonbench eval` reads.")
    parser.add_argument("--from", dest="source", required=True, choices=["hrm", "trm", "eqr", "se-rrm"],
                        help="which reference implementation wrote PATH")
    parser.add_argument("path", help="the reference checkpoint (a saved state dict, torch or safetensors), or a "
                        "Hugging Face model repository hf://OWNER/NAME[@REVISION][:PATH] (e.g. "
                        "hf://sapientinc/HRM-checkpoint-sudoku-extreme, hf://locuslab/EqR-model:sudoku-extreme/eqr.pth)")
    parser.add_argument("--task", required=True, help="the task it was trained on")
    parser.add_argument("--out", required=True, help="where to write the reasonbench checkpoint")
    parser.add_argument("--preset", default="paper", help="preset for everything the checkpoint does not fix")
    parser.add_argument("--reference-config", default=None,
                        help=f"the reference's {REFERENCE_CONFIG} (default: the one beside PATH, if any)")
    return parser


class _Unread:
    """Stands in for an object of a class a checkpoint names (the training carry, numpy's random
    state): the class is never imported, nothing of it runs, its state is dropped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Resolves only what ``torch.load(weights_only=True)`` allows (tensor rebuilding, dtypes,
    plain containers); every other class or function named in the file becomes ``_Unread``."""

    def find_class(self, module: str, name: str) -> Any:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = _get_allowed_globals().get(f"{module}.{name}")
        return allowed if allowed is not None else _Unread


class _TensorsOnlyPickle:
    """The ``pickle_module`` torch.load reads the file through (its legacy format reads a few
    objects with ``load``: restricted alike)."""

    Unpickler = _TensorsOnlyUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _TensorsOnlyUnpickler(file, **kwargs).load()


def read_training_checkpoint(path: Path) -> Any:
    """A reference training checkpoint: ``torch.load(weights_only=True)``, or where the file also
    pickles objects of the reference's classes (the EqR training carry, numpy's random state), the
    same file read with those objects left out (``_Unread``). Either way no code of the file runs."""
    from reasonbench.execution.checkpoints import is_safetensors, read_torch_file

    try:
        return read_torch_file(path)
    except UserError:
        if is_safetensors(path):
            raise
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TensorsOnlyPickle)
        except Exception:  # noqa: BLE001 (any failure: the first, clearer error stands)
            pass
        raise


def _tensors(value: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return value
    return None


def _load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, str]:
    """The weights to import, the run config stored with them (EqR's ``config``), and which
    weights they are ('state dict', 'model' or 'EMA (mu ...)')."""
    data = read_training_checkpoint(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if isinstance(data, dict) and isinstance(data.get("model"), dict):  # a reference training checkpoint
        config = data.get("config") if isinstance(data.get("config"), dict) else None
        model = _tensors(data["model"])
        if model is None:
            raise UserError(f"checkpoint {path}: its 'model' entry is not a state dict of tensors")
        ema = data.get("ema") if isinstance(data.get("ema"), dict) else {}
        shadow = _tensors(ema.get("shadow")) or _tensors({k: v for k, v in ema.items() if k != "mu"})
        # the reference evaluates the EMA when its run kept one (config.ema) and the file holds it
        if shadow is not None and (config is None or config.get("ema", True)):
            mu = ema.get("mu")
            return shadow, config, f"EMA (mu {mu})" if isinstance(mu, float) else "EMA"
        return model, config, "model"
    state = _tensors(data)
    if state is None:
        raise UserError(f"checkpoint {path}: not a state dict of tensors")
    return state, None, "state dict"


def _reference_arch(path: Path, explicit: str | None,
                    stored: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, Path | str | None]:
    """The reference's ``arch`` config: from ``--reference-config``, else from the config stored
    in the checkpoint (EqR's), else from the all_config.yaml beside it; and where it came from."""
    if not explicit and stored is not None:
        if not isinstance(stored.get("arch"), dict):
            raise UserError(f"checkpoint {path}: its stored config has no 'arch' section")
        return stored["arch"], f"the config stored in {path.name}"
    config_path = Path(explicit) if explicit else path.parent / REFERENCE_CONFIG
    if not config_path.is_file():
        if explicit:
            raise UserError(f"--reference-config {config_path}: no such file")
        return None, None
    from reasonbench.util.untrusted import MAX_YAML_BYTES, load_yaml, printable, read_text

    # a file of a downloaded repository: read as untrusted (regular file, size, aliases and nesting bounded)
    where = printable(config_path)
    loaded = load_yaml(read_text(config_path, where, MAX_YAML_BYTES), where)
    arch = loaded.get("arch") if isinstance(loaded, dict) else None
    if not isinstance(arch, dict):
        raise UserError(f"{config_path}: no 'arch' section (not a reference all_config.yaml)")
    return arch, config_path


# what tells the reference architectures apart in a checkpoint: HRM has two modules (H_level
# and L_level), TRM and EqR one network (L_level only; H_layers 0), TRM with its fixed starting
# vectors saved (H_init), EqR without (it draws them), SE-RRM one network too, with attention
# over symbols (attn_t) and symbol embeddings; their configs name the class
FAMILIES = ("hrm", "trm", "eqr", "se-rrm")
SE_RRM_MARKERS = (".attn_t.", "embed_symbol_tokens", "embed_symbols")


def _levels(state: dict[str, Any]) -> dict[str, int]:
    """Layers per reference module (``H_level``, ``L_level``) in a reference state dict."""
    found: dict[str, set[str]] = {}
    for key in state:
        parts = key.split(".")
        for i, part in enumerate(parts[:-2]):
            if part.endswith("_level") and parts[i + 1] == "layers":
                found.setdefault(part, set()).add(parts[i + 2])
    return {level: len(layers) for level, layers in sorted(found.items())}


def reference_family(state: dict[str, Any], arch: dict[str, Any] | None) -> tuple[str | None, str]:
    """Which reference architecture wrote ``state`` ('hrm', 'trm', 'eqr', 'se-rrm' or None:
    cannot tell) and the evidence, in words."""
    levels = _levels(state)
    marker = next((m.strip(".") for m in SE_RRM_MARKERS for key in state if m in key), None)
    if marker is not None:
        return "se-rrm", f"symbol-equivariant layers ({marker})"
    if "H_level" in levels and "L_level" in levels:
        return "hrm", f"H_level ({levels['H_level']} layers) and L_level ({levels['L_level']} layers) modules"
    name = str((arch or {}).get("name", ""))
    if levels.get("L_level") and "H_level" not in levels:
        one = f"one L_level network ({levels['L_level']} layers), no H_level module"
        if "eqr" in name.lower().split("@")[0]:
            return "eqr", f"{one}; its config names {name}"
        if not any(key.endswith("H_init") for key in state):
            return "eqr", f"{one}, no fixed starting state H_init"
        return "trm", one
    for family, marker in (("se-rrm", "trm_equi"), ("hrm", "hrm"), ("trm", "trm"), ("eqr", "eqr")):
        if marker in name.lower().split("@")[0]:
            return family, f"its all_config.yaml names {name}"
    return None, ""


def check_architecture(source: str, state: dict[str, Any], arch: dict[str, Any] | None, where: str) -> None:
    """Before any model is built: a one-line UserError naming what does not match when the
    weights are another reference architecture than ``--from`` says, or disagree with their
    all_config.yaml (layers per module, width)."""
    family, evidence = reference_family(state, arch)
    if source in FAMILIES and family is not None and family != source:
        raise UserError(f"checkpoint {where} holds {family.upper()} weights ({evidence}), not {source.upper()}: "
                        f"import it with --from {family}")
    if arch is None:
        return
    levels = _levels(state)
    for level, option in (("H_level", "H_layers"), ("L_level", "L_layers")):
        expected = arch.get(option)
        if isinstance(expected, int) and not isinstance(expected, bool) and levels.get(level, 0) != expected \
                and (levels or expected):
            raise UserError(f"checkpoint {where}: its all_config.yaml says {option} {expected}, the weights hold "
                            f"{levels.get(level, 0)} {level} layers: the config belongs to another run "
                            "(give the right one with --reference-config)")
    embed = next((v for k, v in state.items() if k.endswith("embed_tokens.embedding_weight")), None)
    hidden = arch.get("hidden_size")
    if isinstance(embed, torch.Tensor) and embed.ndim == 2 and isinstance(hidden, int) and embed.shape[1] != hidden:
        raise UserError(f"checkpoint {where}: its all_config.yaml says hidden_size {hidden}, the weights are "
                        f"{embed.shape[1]} wide (the config belongs to another run: give the right one with "
                        "--reference-config)")


# The reference's weight names -> ours. A key fragment of the HRM/TRM code's modules -> the name
# of its counterpart, shared by the models of that family (HRM, TRM, EqR and those built on them).
# A model class adds its reasoning modules' names as ``reference_level_renames`` (HRM: H_level ->
# high, L_level -> low); one whose reference names its modules otherwise (SE-RRM) replaces this
# table with its own ``reference_renames``.
REFERENCE_RENAMES: dict[str, str] = {
    "embed_tokens.embedding_weight": "embed.weight",
    "embed_pos.embedding_weight": "position",
    "lm_head.": "head.",
    "q_head.": "halt.linear.",
    "puzzle_emb.weights": "puzzle_embedding.weight",
    "H_init": "high_init",
    "L_init": "low_init",
    "self_attn.qkv_proj.": "attn.qkv.",
    "self_attn.o_proj.": "attn.out.",
    "mlp_t.gate_up_proj.": "seq_mlp.mlp.gate_up.",
    "mlp_t.down_proj.": "seq_mlp.mlp.down.",
    "mlp.gate_up_proj.": "mlp.gate_up.",
    "mlp.down_proj.": "mlp.down.",
}


def reference_renames(model_cls: type) -> dict[str, str]:
    """Reference key fragment -> ours for ``model_cls``: its reasoning modules' names, then the
    rest (its own table, or ``REFERENCE_RENAMES``)."""
    return {**getattr(model_cls, "reference_level_renames", {}),
            **getattr(model_cls, "reference_renames", REFERENCE_RENAMES)}


def rename_reference_state(model_cls: type, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A reference checkpoint's state dict (``_orig_mod.model.inner.`` prefixes, their names) in
    ``model_cls``'s names. Non-persistent tables (RoPE) are dropped. Raises ``KeyError`` naming a
    key that has no counterpart."""
    renames = reference_renames(model_cls)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        for prefix in ("_orig_mod.", "model.", "inner."):
            name = name.removeprefix(prefix)
        if name.startswith("rotary_emb."):
            continue
        mapped = name
        for old, new in renames.items():
            if mapped.startswith(old) or f".{old}" in mapped:
                mapped = new + mapped[len(old):] if mapped.startswith(old) else mapped.replace(f".{old}", f".{new}", 1)
        if mapped == name:
            raise KeyError(key)
        out[mapped] = value
    return out


def _fetch_from_hub(spec: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file of ``hf://OWNER/NAME[@REV][:PATH]`` (and the all_config.yaml beside
    it, which lands in the same cache folder), and where it came from."""
    from reasonbench.util import hub

    ref = hub.parse(spec, "checkpoint", "model")
    sha, names, cached_only = hub.list_files(ref, "model")
    if ref.path:
        if ref.path not in names and cached_only:  # it may be on the Hub, just not here
            raise hub.not_cached(ref, "model", ref.path, None if hub.offline() else "no answer")
        if ref.path not in names:
            near = ", ".join(n for n in names if n.split("/")[-1] == ref.path.split("/")[-1])[:200]
            raise UserError(f"{spec}: the model repository {ref.repo} has no file {ref.path} at {sha[:12]}"
                            + (f" (found {near})" if near else f"; it holds {', '.join(names[:8])}"))
        weights = ref.path
    else:
        candidates = [n for n in names if _looks_like_weights(n)]
        if len(candidates) != 1 and cached_only:  # the cache may hold a part of the repository
            listed = ", ".join(candidates[:8]) or "none"
            raise UserError(f"{spec}: the Hugging Face cache holds {len(candidates)} weight files of {ref.repo} "
                            f"({listed}), the Hub cannot be asked which: name one as "
                            f"hf://{ref.repo}{'@' + ref.revision if ref.revision else ''}:PATH")
        if len(candidates) != 1:
            listed = ", ".join(candidates[:8]) if candidates else "no weight file"
            raise UserError(f"{spec}: {'several weight files' if candidates else 'no weight file'} in "
                            f"{ref.repo} ({listed}): name one as hf://{ref.repo}"
                            f"{'@' + ref.revision if ref.revision else ''}:PATH")
        weights = candidates[0]
    beside = f"{weights.rsplit('/', 1)[0]}/{REFERENCE_CONFIG}" if "/" in weights else REFERENCE_CONFIG
    wanted = [weights] + ([beside] if beside in names else [])
    _, local = hub.download(hub.HubRef(ref.repo, sha, None, spec), wanted, "model")
    return local[weights], {"repo": ref.repo, "revision": sha, "requested_revision": ref.revision or "main",
                            "file": weights}


WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _looks_like_weights(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(WEIGHT_SUFFIXES) or base == "checkpoint" or (base.startswith("step_") and "." not in base)


def _shape_arguments(source: str, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the weights themselves say about the architecture (used without a config file); a
    model whose weights read otherwise says it itself (``reference_shape_arguments``)."""
    from reasonbench.config import registry

    own = getattr(registry.get("model", source), "reference_shape_arguments", None)
    if own is not None:
        return own(state)
    args: dict[str, Any] = {"hidden_size": int(state["embed.weight"].shape[1])}
    table = state.get("puzzle_embedding.weight")
    args["puzzle_emb_dim"] = int(table.shape[1]) if table is not None else 0

    def layers(prefix: str) -> int:
        return len({k.split(".")[2] for k in state if k.startswith(prefix + ".layers.")})

    if source == "eqr":
        del args["puzzle_emb_dim"]  # EqR has none
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
    from reasonbench.config import registry
    from reasonbench.execution.build import build_model, make_task
    from reasonbench.execution.checkpoints import save_checkpoint

    given = str(path)
    hub_source = None
    if given.startswith("hf://"):
        path, hub_source = _fetch_from_hub(given)
    path, out = Path(path), Path(out)
    raw, stored_config, weights = _load_state(path)
    model_cls = registry.get("model", source)
    check_architecture(source, raw, None, given)  # what the keys alone say, before renaming them
    try:
        state = rename_reference_state(model_cls, raw)
    except KeyError as exc:
        raise UserError(f"checkpoint {given}: key {exc.args[0]!r} is not part of a reference {source.upper()} model") from None
    arch, config_path = _reference_arch(path, reference_config, stored_config)
    check_architecture(source, raw, arch, given)
    try:
        args = model_cls.reference_arguments(arch) if arch is not None else _shape_arguments(source, state)
    except KeyError as exc:  # a section or a tensor the architecture is read from is missing
        if arch is not None:
            raise UserError(f"{config_path}: the 'arch' section has no {exc.args[0]!r}") from None
        raise UserError(f"checkpoint {given}: no {exc.args[0]!r} tensor to read the architecture from "
                        f"(give --reference-config {REFERENCE_CONFIG})") from None
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. expansion: "four"
        raise UserError(f"{config_path or path}: cannot read the architecture: {collapse_whitespace(exc)}") from None
    argv = ["--model", source, "--task", task, "--preset", preset]
    cfg, _ = cfgmod.resolve(argv, prog="reasonbench import-checkpoint", overrides={"model": args})
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
        first = next((l.strip() for l in str(exc).splitlines()[1:] if l.strip()), collapse_whitespace(exc))
        raise UserError(f"checkpoint {given} does not fit {source} on {task} with these settings: {first[:300]}") from None
    from reasonbench.util.hub import sha256_file

    imported = {"path": given, "sha256": sha256_file(path), "weights": weights,
                "reference_config": str(config_path) if config_path else None}
    if hub_source is not None:
        imported["hub"] = hub_source
    try:
        save_checkpoint(model, cfg, out, imported_from=imported)
    except OSError as exc:  # e.g. a file where a folder should be
        raise UserError(cannot_write("--out", out, exc)) from None
    return {"out": str(out), "model_args": cfg.model_args, "reference_config": str(config_path) if config_path else None,
            "tensors": len(state), "hub": hub_source, "weights": weights}


def main(argv: list[str]) -> int:
    args = parse(_parser(), argv)
    result = import_checkpoint(args.source, args.path, args.task, args.out, args.preset, args.reference_config)
    source = f"architecture from {result['reference_config']}" if result["reference_config"] else \
        f"architecture from the weights' shapes and preset {args.preset} (no {REFERENCE_CONFIG} found)"
    if result["hub"]:
        print(f"read {result['hub']['file']} of {result['hub']['repo']} at commit {result['hub']['revision']}")
    print(f"{result['tensors']} tensors ({result['weights']} weights); {source}")
    print(f"wrote {result['out']}: evaluate with `reasonbench eval --checkpoint {result['out']} --task {args.task}`")
    return 0
