"""Resolving a run's configuration: preset files, then ``--config`` files, then dotted
overrides, validated against the chosen model's and task's signatures by jsonargparse.

Presets live under ``benchmarks/presets`` (installed as ``reasonbench_benchmarks``):
``tasks/<task>/<preset>.yaml`` defines the data, shared by every model so that a preset's
numbers are comparable; ``models/<model>/<task>/<preset>.yaml`` holds the model, optimizer
and trainer settings. A third-party model may ship its own under ``<its package>/presets``.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from . import registry
from .registry import NAME_PATTERN, NAME_RULE, default_preset
from .errors import UserError
from .metrics import MAX_STEPS
from .optim import OptimConfig

SEED_MAX = 2**32 - 1  # numpy's (and Lightning's seed_everything's) seed range is 0..2**32-1

# Trainer arguments the runner owns (logging, checkpoints, output folder).
TRAINER_MANAGED = {"logger", "callbacks", "default_root_dir", "enable_checkpointing", "plugins", "profiler",
                   "use_distributed_sampler"}


@dataclass
class MeasureConfig:
    """How costs are measured."""

    flops_examples: int = 16  # test examples run one at a time under the FLOP counter
    train_flop_steps: int = 2  # training steps run under the FLOP counter

    def __post_init__(self) -> None:
        if self.flops_examples < 1 or self.train_flop_steps < 1:
            raise ValueError("measure.flops_examples and measure.train_flop_steps must be >= 1")


@dataclass
class RunConfig:
    """A fully resolved run: names, classes and the argument dicts to build them with."""

    model: str
    task: str
    preset: str
    seed: int
    out: str
    model_cls: type
    task_cls: type
    model_args: dict[str, Any]
    task_args: dict[str, Any]
    optim: OptimConfig
    trainer_args: dict[str, Any]
    measure: MeasureConfig
    config: dict[str, Any] = field(default_factory=dict)  # the whole resolved config, as YAML/JSON data
    checkpoint: str | None = None
    checkpoint_every: int = 200
    budget: str | None = None
    eval_max_steps: int | None = None


def check_name(option: str, name: Any) -> str:
    """``name`` if it is a plain name (``NAME_PATTERN``, no ``..``); a one-line UserError naming
    ``option`` otherwise."""
    text = str(name)
    if not NAME_PATTERN.fullmatch(text) or ".." in text:
        raise UserError(f"{option} {text!r}: not a valid name ({NAME_RULE})")
    return text


def check_seed(option: str, seed: Any) -> int:
    """An integer seed in numpy's range 0..2**32-1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UserError(f"option {option}: must be an integer in 0..{SEED_MAX} (numpy's seed range), got {seed!r}")
    return seed


def preset_roots(model_cls: type | None = None) -> list[Path]:
    roots = [Path(str(resources.files("reasonbench_benchmarks").joinpath("presets")))]
    if model_cls is not None:
        package = importlib.import_module(model_cls.__module__.rsplit(".", 1)[0])
        own = Path(package.__file__).parent / "presets"
        if own.is_dir():
            roots.append(own)
    return roots


def _preset_names(folders: list[Path]) -> str:
    return ", ".join(sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})) or "none"


def task_preset_file(task: str, preset: str, roots: list[Path]) -> Path | None:
    check_name("--preset", preset)
    return next((f for f in (r / "tasks" / task / f"{preset}.yaml" for r in roots) if f.is_file()), None)


def preset_files(model: str, task: str, preset: str, model_cls: type | None = None) -> list[str]:
    """The task's and the model's settings for ``preset`` (as ``--config`` sources); a UserError
    if either is missing. A model preset may name the task preset it runs on with a top-level
    ``task_preset`` key (e.g. CMM's ``tiny`` model on the ``paper`` data)."""
    check_name("--preset", preset)
    roots = preset_roots(model_cls)
    model_file = next((f for f in (r / "models" / model / task / f"{preset}.yaml" for r in roots) if f.is_file()), None)
    model_source, task_preset = str(model_file), preset
    if model_file is not None:
        data = _load_yaml(str(model_file))
        if "task_preset" in data:
            task_preset = str(data.pop("task_preset"))
            if not NAME_PATTERN.fullmatch(task_preset) or ".." in task_preset:
                raise UserError(f"{model_file}: task_preset {task_preset!r}: not a valid preset name ({NAME_RULE})")
            model_source = json.dumps(data)
    task_file = task_preset_file(task, task_preset, roots)
    if task_file is None or model_file is None:
        missing = f"task file '{task_preset}'" if task_file is None else "model file"
        raise UserError(f"no preset '{preset}' for model '{model}' on task '{task}' ({missing} missing); "
                        f"available: {_preset_names([r / 'models' / model / task for r in roots])}")
    return [str(task_file), model_source]


def _parse(parser: ArgumentParser, argv: list[str]) -> Namespace:
    try:
        return parser.parse_args(argv)
    except Exception as exc:  # jsonargparse.ArgumentError and its YAML/type errors
        raise UserError(_option_message(one_line(exc), argv)) from None


def _required_names(argv: list[str], kinds: tuple[str, ...]) -> dict[str, str]:
    """Model/task/preset names from argv and config files; the kinds asked for must be given
    and registered (checked before any plugin is imported)."""
    names = _scan_names(argv)
    for kind in kinds:
        if kind not in names:
            valid = ", ".join(registry.entries(kind)) or "none installed"
            raise UserError(f"missing --{kind} (one of: {valid})")
        registry.check(kind, names[kind])
        check_name(f"--{kind}", names[kind])  # a registered name still becomes a path: never '../x'
    if "preset" in names:
        check_name("--preset", names["preset"])
    return names


def build_parser(model_cls: type, task_cls: type, prog: str = "reasonbench run") -> ArgumentParser:
    import lightning as L

    parser = ArgumentParser(prog=prog, exit_on_error=False, default_meta=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config file(s), applied after the preset")
    parser.add_argument("--preset", type=str, default=default_preset(), help="preset name (benchmarks/presets)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--out", type=str, default="results", help="folder of result records")
    parser.add_argument("--checkpoint", type=str | None, default=None, help="weights to evaluate (eval only)")
    parser.add_argument("--checkpoint_every", type=int, default=200,
                        help="training steps between the checkpoints --resume continues from (0: at validation only)")
    parser.add_argument("--eval_max_steps", type=int | None, default=None,
                        help="reasoning steps at evaluation (test-time depth; default: the model's own)")
    parser.add_argument("--budget", type=str | None, default=None,
                        help="stop training at this device time (wall time x devices), e.g. 10m, 1h, 600")
    parser.add_argument("--model.name", type=str, required=True, help="registered model name")
    parser.add_class_arguments(model_cls, "model", skip={"metadata", "optim"})
    parser.add_argument("--task.name", type=str, required=True, help="registered task name")
    parser.add_class_arguments(task_cls, "task")
    parser.add_class_arguments(OptimConfig, "optim")
    parser.add_class_arguments(MeasureConfig, "measure")
    parser.add_class_arguments(L.Trainer, "trainer", skip=TRAINER_MANAGED)
    return parser


def resolve_task(argv: list[str], prog: str, extra: dict[str, tuple[type, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """A task alone (for ``reasonbench data``): its preset file, ``--config`` files, overrides.
    ``extra`` adds plain options {name: (type, default)}; returns (task class, config)."""
    argv, _ = _normalise_argv(list(argv))
    names = _required_names(argv, ("task",))
    task_cls = registry.get_task(names["task"])
    preset = names.get("preset") or default_preset()
    parser = ArgumentParser(prog=prog, exit_on_error=False, default_meta=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--preset", type=str, default=default_preset())
    parser.add_argument("--task.name", type=str, required=True)
    parser.add_class_arguments(task_cls, "task")
    for name, (typ, default) in (extra or {}).items():
        parser.add_argument(f"--{name}", type=typ, default=default)
    roots = preset_roots()
    task_file = task_preset_file(names["task"], preset, roots)
    if task_file is None:
        raise UserError(f"no preset '{preset}' for task '{names['task']}'; "
                        f"available: {_preset_names([r / 'tasks' / names['task'] for r in roots])}")
    ns = _parse(parser, ["--config", str(task_file), *argv])
    config = _plain(ns)
    check_name("--preset", config["preset"])
    return task_cls, config


def _normalise_argv(argv: list[str]) -> tuple[list[str], bool]:
    """``--model X`` -> ``--model.name X`` (same for --task); pulls out ``--print_config``."""
    out, print_config = [], False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--print_config":
            print_config = True
        elif arg in ("--model", "--task") and i + 1 < len(argv):
            out += [f"{arg}.name", argv[i + 1]]
            i += 1
        elif arg.startswith(("--model=", "--task=")):
            key, value = arg.split("=", 1)
            out.append(f"{key}.name={value}")
        else:
            out.append(arg)
        i += 1
    return out, print_config


def _load_yaml(text_or_path: str) -> dict[str, Any]:
    inline = text_or_path.lstrip().startswith(("{", "[")) or "\n" in text_or_path
    path = Path(text_or_path)
    try:
        text = text_or_path if inline or not path.is_file() else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UserError(f"--config {text_or_path}: cannot read: {why}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        from .errors import invalid_yaml

        raise UserError(invalid_yaml(f"--config {text_or_path}", exc)) from None
    if not isinstance(data, dict) and (inline or not path.is_file()):
        raise UserError(f"--config {text_or_path}: no such file")
    if data is not None and not isinstance(data, dict):
        raise UserError(f"--config {text_or_path}: expected a mapping of options (key: value), "
                        f"got a {type(data).__name__}")
    return data if isinstance(data, dict) else {}


def _scan_names(argv: list[str]) -> dict[str, str]:
    """Model, task and preset names in argv order: a later ``--config`` or flag wins."""
    names: dict[str, str] = {}
    keys = {"--model.name": "model", "--task.name": "task", "--preset": "preset"}
    i = 0
    while i < len(argv):
        arg, value = argv[i], argv[i + 1] if i + 1 < len(argv) else None
        if "=" in arg and arg.startswith("--"):
            arg, value = arg.split("=", 1)
            step = 1
        else:
            step = 2
        if arg == "--config" and value is not None:
            data = _load_yaml(value)
            for section in ("model", "task"):
                if isinstance(data.get(section), dict) and "name" in data[section]:
                    names[section] = str(data[section]["name"])
            if "preset" in data:
                names["preset"] = str(data["preset"])
        elif arg in keys and value is not None:
            names[keys[arg]] = value
        else:
            step = 1
        i += step
    return names


def _option_message(message: str, argv: list[str] | None = None) -> str:
    """jsonargparse says 'Parser key "model.x": ...'; users type '--model.x'. Names the
    ``--config`` file that set the option, when one did."""
    message = re.sub(r'Parser key "([^"]+)":', r"option --\1:", message)
    message = re.sub(r"^Group '([\w.]+)' does not accept option '(\w+)'", r"unknown option --\1.\2", message)
    message = re.sub(r"^Option '(\w+)' is not accepted", r"unknown option --\1", message)
    message = message.replace("Expected a <class '", "expected ").replace("'>. Got value:", ", got")
    union = re.match(r"(option --[\w.]+: )Does not validate against any of the Union subtypes.*Given value: (.*)$", message)
    if union:  # jsonargparse lists every subtype's error: say which values the option takes instead
        subtypes = re.search(r"Subtypes: \[(.*)\] Errors:", message)
        names: list[str] = []
        for subtype in re.split(r",\s*(?![^\[]*\])", subtypes.group(1)) if subtypes else []:
            literal = re.fullmatch(r"\s*typing\.Literal\[(.*)\]\s*", subtype)
            name = literal.group(1) if literal else re.sub(r"<class '([\w.]+)'>", r"\1", subtype.strip())
            names.append("null" if name == "NoneType" else name)
        accepted = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else (names or ["another value"])[0]
        message = f"{union.group(1)}expected {accepted}, got {union.group(2)}"
    # jsonargparse refuses nan and inf typed on the command line, saying only "expected float"
    message = re.sub(r"expected float, got (nan|inf|-inf)\b", r"expected a finite number, got \1", message)
    option = re.match(r"(?:unknown )?option --([\w.]+)", message)
    source = _config_source(option.group(1), argv or []) if option else None
    return f"{message} (in --config {source})" if source else message


def _config_source(key: str, argv: list[str]) -> str | None:
    """The ``--config`` file that last set dotted ``key`` (None if none, or a flag did later)."""
    source = None
    for i, arg in enumerate(argv):
        name, _, value = arg.partition("=")
        if name == "--config":
            value = value or (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                data: Any = _load_yaml(value) if Path(value).is_file() else {}
            except (UserError, OSError, ValueError):
                continue
            for part in key.split("."):
                data = data.get(part, KeyError) if isinstance(data, dict) else KeyError
            source = value if data is not KeyError else source
        elif name == f"--{key}":
            source = None
    return source


def parse_duration(text: str, option: str = "--budget") -> float:
    """'90s', '10m', '1.5h', '2d' or plain seconds -> seconds (> 0)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected a duration such as 600, 90s, 10m, 1.5h") from None
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"{option} {text!r}: must be a positive, finite duration")
    return seconds


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def resolve(argv: list[str], prog: str = "reasonbench run",
            overrides: dict[str, Any] | None = None) -> tuple[RunConfig, bool]:
    """Resolve a run from command-line style arguments, then ``overrides`` (the Python API's
    keyword arguments, dotted keys or nested dicts) applied as an object on top; returns
    (config, print_config)."""
    argv, print_config = _normalise_argv(list(argv))
    names = _required_names(argv, ("model", "task"))
    model_cls = registry.get_model(names["model"])
    task_cls = registry.get_task(names["task"])
    preset = names.get("preset") or default_preset()
    parser = build_parser(model_cls, task_cls, prog)
    stacked = [arg for source in preset_files(names["model"], names["task"], preset, model_cls)
               for arg in ("--config", source)]
    ns = _parse(parser, stacked + argv)
    if overrides:
        try:
            ns = parser.parse_object(nested(overrides), namespace=ns)
        except Exception as exc:  # jsonargparse.ArgumentError and its type errors
            raise UserError(_option_message(one_line(exc))) from None
    return _to_run_config(ns, model_cls, task_cls, training=prog.endswith(" run")), print_config


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"trainer.max_steps": 50, "model": {"hidden_size": 64}}`` -> nested dicts, merged."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, last = str(key).split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict):
            node = node.setdefault(last, {})
            node.update(nested(value))
        else:
            node[last] = value
    return out


def _plain(ns: Namespace) -> dict[str, Any]:
    data = ns.clone().as_dict()
    data.pop("config", None)
    data.pop("__path__", None)
    return json.loads(json.dumps(data, default=str))


def check_trainer(args: dict[str, Any], training: bool = True) -> None:
    """Trainer settings that Lightning accepts but fails on later with a traceback (a division
    by zero, a thousand CPU processes), or that would train nothing."""
    import math
    import os

    def bad(key: str, rule: str) -> UserError:
        return UserError(f"option --trainer.{key}: must be {rule}, got {args[key]!r}")

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if is_int(args.get("accumulate_grad_batches")) and args["accumulate_grad_batches"] < 1:
        raise bad("accumulate_grad_batches", ">= 1")
    if is_int(args.get("num_nodes")) and args["num_nodes"] < 1:
        raise bad("num_nodes", ">= 1")
    for key in ("check_val_every_n_epoch", "log_every_n_steps"):
        if is_int(args.get(key)) and args[key] < 1:
            raise bad(key, "null or >= 1")
    for key in ("min_steps", "min_epochs", "num_sanity_val_steps", "reload_dataloaders_every_n_epochs"):
        if is_int(args.get(key)) and args[key] < (-1 if key == "num_sanity_val_steps" else 0):
            raise bad(key, "null or >= 0" if key != "num_sanity_val_steps" else "null, -1 (all) or >= 0")
    interval = args.get("val_check_interval")
    if is_int(interval) and interval < 1:
        raise bad("val_check_interval", "null, a number of training batches >= 1 or a fraction of an epoch in (0, 1]")
    if isinstance(interval, float) and not 0 < interval <= 1:
        raise bad("val_check_interval", "null, a number of training batches >= 1 or a fraction of an epoch in (0, 1]")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
                "overfit_batches"):
        value = args.get(key)
        if (is_int(value) and value < 0) or (isinstance(value, float) and not 0 <= value <= 1):
            raise bad(key, "a number of batches >= 0 or a fraction in [0, 1]")
    clip = args.get("gradient_clip_val")
    if isinstance(clip, (int, float)) and not isinstance(clip, bool) and not (math.isfinite(clip) and clip >= 0):
        raise bad("gradient_clip_val", "null or a finite number >= 0")
    devices = args.get("devices")
    if isinstance(devices, str) and re.fullmatch(r"\s*-?\d+\s*", devices):  # "4", as Lightning reads it
        devices = int(devices)
    if is_int(devices) and devices < 1 and devices != -1:
        raise bad("devices", "'auto', -1 (all) or >= 1")
    if isinstance(devices, list) and (not devices or any(not is_int(d) or d < 0 for d in devices)):
        raise bad("devices", "a non-empty list of device indices >= 0")
    accelerator = args.get("accelerator", "auto")
    if is_int(devices) and devices > 1 and accelerator in ("cpu", "auto"):
        import torch

        cores = os.cpu_count() or 1
        most = max(8, 4 * cores)  # a few processes per core only run slower; hundreds swamp the machine
        if (accelerator == "cpu" or not torch.cuda.is_available()) and devices > most:
            raise UserError(f"option --trainer.devices: {devices} training processes on the CPU are too many for "
                            f"this machine's {cores} CPU cores (at most {most})")
    if training:
        if args.get("max_steps") == 0:
            raise bad("max_steps", "-1 (no limit) or >= 1 for a training run (0 trains nothing; "
                      "`reasonbench eval` scores a checkpoint)")
        if args.get("max_epochs") == 0:
            raise bad("max_epochs", "null, -1 (no limit) or >= 1 for a training run (0 trains nothing)")
        if is_int(args.get("max_epochs")) and args["max_epochs"] < -1:
            raise bad("max_epochs", "null, -1 (no limit) or >= 1")


def _to_run_config(ns: Namespace, model_cls: type, task_cls: type, training: bool = False) -> RunConfig:
    config = _plain(ns)
    for kind in ("model", "task"):
        registry.check(kind, config[kind]["name"])
        check_name(f"--{kind}", config[kind]["name"])
    check_name("--preset", config["preset"])
    check_seed("--seed", config["seed"])
    check_trainer(config["trainer"], training)
    model_args = {k: v for k, v in config["model"].items() if k != "name"}
    task_args = {k: v for k, v in config["task"].items() if k != "name"}
    if config.get("eval_max_steps") is not None and not 1 <= config["eval_max_steps"] <= MAX_STEPS:
        raise UserError(f"option --eval_max_steps: must be in 1..{MAX_STEPS}, got {config['eval_max_steps']}")
    if config["checkpoint_every"] < 0:
        raise UserError(f"option --checkpoint_every: must be >= 0, got {config['checkpoint_every']}")
    if config.get("budget") is not None:
        parse_duration(config["budget"])
    try:
        optim = OptimConfig(**config["optim"])
        measure = MeasureConfig(**config["measure"])
    except (TypeError, ValueError) as exc:
        raise UserError(one_line(exc)) from None
    return RunConfig(model=config["model"]["name"], task=config["task"]["name"], preset=config["preset"],
                     seed=config["seed"], out=config["out"], model_cls=model_cls, task_cls=task_cls,
                     model_args=model_args, task_args=task_args, optim=optim,
                     trainer_args=dict(config["trainer"]), measure=measure, config=config,
                     checkpoint=config.get("checkpoint"), checkpoint_every=config["checkpoint_every"],
                     budget=config.get("budget"), eval_max_steps=config.get("eval_max_steps"))


def dump(config: dict[str, Any]) -> str:
    """The resolved config as YAML, loadable again with ``--config``."""
    return yaml.safe_dump(config, sort_keys=False)


def overrides_to_argv(overrides: dict[str, Any]) -> list[str]:
    """Python-API overrides (``{"model.hidden_size": 64}`` or nested dicts) -> CLI arguments."""
    argv: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            # strings go as typed (jsonargparse keeps str options verbatim); the rest as JSON
            argv.append(f"--{prefix}={value if isinstance(value, str) else json.dumps(value)}")

    walk("", overrides)
    return argv
