"""Resolving a run's configuration: preset files, then ``--config`` files, then dotted
overrides, validated against the chosen model's and task's signatures by jsonargparse.

Presets live beside their owners: a task's ``<task package>/presets/<preset>.yaml`` defines the
data, shared by every model so that a preset's numbers are comparable; a model's
``<model package>/presets/<task>/<preset>.yaml`` holds the model, optimizer and trainer settings
(``plugins/trm/presets/sudoku/mini.yaml``). Packages written for the earlier layout ship
``<package>/presets/models/<model>/<task>/<preset>.yaml``, which is read too. A model without a
preset for a task runs on the task's preset with its own defaults, and says so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from reasonbench.config import registry
from reasonbench.model import testtime
from reasonbench.config.commandline import closest, collapse_whitespace, command_parser, explain
from reasonbench.record.schema import is_neutral
from reasonbench.config.registry import PLAIN_NAME_RULE, default_preset, is_plain_name
from reasonbench.util.errors import UserError
from reasonbench.record.metrics import MAX_STEPS
from reasonbench.model.optim import OptimConfig

SEED_MAX = 2**32 - 1  # numpy's (and Lightning's seed_everything's) seed range is 0..2**32-1

# Trainer arguments the runner owns (logging, checkpoints, output folder).
# (``trainer.logger`` and ``trainer.callbacks`` are the user's: see run.trainer.user_logger)
TRAINER_MANAGED = {"default_root_dir", "enable_checkpointing", "plugins", "profiler", "use_distributed_sampler"}


@dataclass
class MeasureConfig:
    """How costs are measured.

    Args:
        flops_examples: test examples run one at a time under the FLOP counter.
        train_flop_steps: training steps run under the FLOP counter.
    """

    flops_examples: int = 16
    train_flop_steps: int = 2

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
    # `eval --eval-depth 1,2,4`: the depths one test pass reads (ascending, eval_max_steps the last);
    # empty for one depth
    eval_depths: tuple[int, ...] = ()
    # test-time breadth (trajectories per example), how one is chosen, their noise's seed and scale
    eval_breadth: int = 1
    eval_select: str = "vote"
    eval_breadth_seed: int = 0
    eval_breadth_noise: float = 1.0
    resume: bool = False  # continue from the newest readable checkpoint (run)
    overwrite: bool = False  # replace an existing record (run, eval)
    flops: bool = False  # count forward FLOPs (info)
    overrides: dict[str, Any] = field(default_factory=dict)  # settings beyond the preset (settings_beyond)


def check_name(option: str, name: Any) -> str:
    """``name`` if it is a plain name (``registry.is_plain_name``); a one-line UserError naming
    ``option`` otherwise."""
    text = str(name)
    if not is_plain_name(text):
        raise UserError(f"{option} {text!r}: not a valid name ({PLAIN_NAME_RULE})")
    return text


def check_seed(option: str, seed: Any) -> int:
    """An integer seed in numpy's range 0..2**32-1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UserError(f"option {option}: must be an integer in 0..{SEED_MAX} (numpy's seed range), got {seed!r}")
    return seed


def _package_dir(cls: type) -> Path:
    """The folder of the package that defines ``cls`` (``plugins/trm`` for the TRM model)."""
    return Path(importlib.import_module(cls.__module__.rsplit(".", 1)[0]).__file__).parent


def model_preset_dirs(model: str, task: str, model_cls: type | None) -> list[Path]:
    """Where a model's presets for ``task`` may live, in order of precedence."""
    if model_cls is None:
        return []
    own = _package_dir(model_cls) / "presets"
    return [own / task, own / "models" / model / task]


def task_preset_dirs(task: str, task_cls: type | None = None) -> list[Path]:
    """Where a task's presets may live: its own package's ``presets``."""
    task_cls = task_cls or registry.get_task(task)
    return [_package_dir(task_cls) / "presets"]


def _preset_names(folders: list[Path]) -> str:
    return ", ".join(sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})) or "none"


def _first_file(folders: list[Path], preset: str) -> Path | None:
    return next((f for f in (d / f"{preset}.yaml" for d in folders) if f.is_file()), None)


def task_preset_file(task: str, preset: str, task_cls: type | None = None) -> Path | None:
    check_name("--preset", preset)
    return _first_file(task_preset_dirs(task, task_cls), preset)


def model_preset_file(model: str, task: str, preset: str, model_cls: type | None) -> Path | None:
    """The model's preset file for ``task``, or None when the model has none of that name."""
    check_name("--preset", preset)
    return _first_file(model_preset_dirs(model, task, model_cls), preset)


def preset_files(model: str, task: str, preset: str, model_cls: type | None = None,
                 task_cls: type | None = None) -> list[str]:
    """The task's and the model's settings for ``preset`` (as ``--config`` sources); a UserError
    if the task has no such preset. Without a model preset of that name the model's own defaults
    apply (``model_preset_file`` tells). A model preset may name the task preset it runs on with
    a top-level ``task_preset`` key (e.g. CMM's ``tiny`` model on the ``paper`` data)."""
    model_file = model_preset_file(model, task, preset, model_cls)
    sources, task_preset = [], preset
    if model_file is not None:
        data = _load_yaml(str(model_file))
        if "task_preset" in data:
            task_preset = str(data.pop("task_preset"))
            if not is_plain_name(task_preset):
                raise UserError(f"{model_file}: task_preset {task_preset!r}: not a valid preset name "
                                f"({PLAIN_NAME_RULE})")
            sources.append(json.dumps(data))
        else:
            sources.append(str(model_file))
    task_file = task_preset_file(task, task_preset, task_cls)
    if task_file is None:
        known = _preset_names(task_preset_dirs(task, task_cls) + model_preset_dirs(model, task, model_cls))
        raise UserError(f"no preset '{task_preset}' for task '{task}'; available: {known}")
    return [str(task_file), *sources]


def _parse(parser: ArgumentParser, argv: list[str]) -> Namespace:
    """``parser.parse_args(argv)``; an error as one line in jsonargparse's words, naming the
    ``--config`` file (a preset or one given) that holds the bad value, when one does."""
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as exc:
        denied = _denied_import(exc)
        if denied:
            raise UserError(denied) from None
        source = _failing_config(parser, argv, collapse_whitespace(exc))
        raise UserError(explain(parser, exc) + (f" (in --config {source})" if source else "")) from None


def _denied_import(exc: Exception) -> str | None:
    """jsonargparse's refusal of a class path outside the allowed modules, as one short line."""
    from reasonbench.util.untrusted import printable

    text = str(exc)
    name = re.search(r"Importing '([^']*)' is not allowed", text)
    if name is None:
        return None
    key = re.search(r'Parser key "([^"]+)"', text)
    option = f"option --{key.group(1)}" if key else "a class path"
    return (f"{option}: {printable(name.group(1), 120)}: not a class of Lightning's callbacks or loggers, reasonbench "
            "or an installed plugin, so it is not imported (--allow-import MODULE allows another module)")


def _failing_config(parser: ArgumentParser, argv: list[str], error: str) -> str | None:
    """The ``--config`` file that brings ``error`` in: parsed with the names and the config
    files before it, it fails so where they alone did not. None: a flag is wrong (or a
    required option missing)."""
    names = [arg for key, value in _scan_names(argv).items() if key in ("model", "task")
             for arg in (f"--{key}.name", value)]
    configs: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            configs.append(argv[i + 1])
        elif arg.startswith("--config="):
            configs.append(arg.split("=", 1)[1])

    def error_of(sources: list[str]) -> str | None:
        try:
            parser.parse_args([arg for c in sources for arg in ("--config", c)] + names)
        except argparse.ArgumentError as exc:
            return collapse_whitespace(exc)
        return None

    before = error_of([])
    for k, source in enumerate(configs):
        now = error_of(configs[:k + 1])
        if now == error and before != error:
            return source if Path(source).is_file() else None
        before = now
    return None


def _required_names(argv: list[str], kinds: tuple[str, ...]) -> dict[str, str]:
    """Model/task/preset names from argv and config files; the kinds asked for must be given
    and registered (checked before any plugin is imported)."""
    names = _scan_names(argv)
    for kind in kinds:
        if kind not in names:
            flags = [arg.split("=", 1)[0] for arg in argv if arg.startswith("--")]
            typo = next((flag for flag in flags if closest(flag, [f"--{kind}", f"--{kind}.name"])), None)
            if typo:  # `--modle trm`: the flag was mistyped, not left out
                raise UserError(f"unrecognized option {typo}: did you mean --{kind}?")
            valid = ", ".join(registry.entries(kind)) or "none installed"
            raise UserError(f"missing --{kind} (one of: {valid})")
        registry.check(kind, names[kind])
        check_name(f"--{kind}", names[kind])  # a registered name still becomes a path: never '../x'
    if "preset" in names:
        check_name("--preset", names["preset"])
    return names


RUN_HELP = ("Train a model on a task, test it and write a result record. "
            "`--model M --task T --help` lists every option of that model and task, the preset's values as defaults.")
EVAL_HELP = "Test a checkpoint (final.pt, final.safetensors or a Lightning .ckpt) and write a result record."
INFO_HELP = "A model's parameters on a task (instant); with --flops, forward FLOPs per example."


DEPTH_HELP = ("reasoning steps (segments) at evaluation, to test deeper than trained (default: the model's own "
              "halt_max_steps); not the training length, which is --trainer.max_steps. --max-steps is its former "
              "name, still accepted")
EVAL_DEPTHS_HELP = ("; a comma list too (1,2,4,8): each test batch runs once to the largest depth, read at every "
                    "listed one, and each depth writes the record an evaluation at that depth alone would, in "
                    "OUT/depth<D>/ (as with --out OUT/depth<D>)")
RUN_DEPTH_HELP = "; one depth (`reasonbench eval` takes a comma list)"


def build_parser(model_cls: type | None, task_cls: type | None, prog: str = "reasonbench run") -> ArgumentParser:
    """The parser of ``run``, ``eval`` or ``info`` (the last word of ``prog``; anything else
    parses as ``run``): the command's own options, then the model's and task's signatures
    (left out when not known yet, for ``--help`` without them)."""
    import lightning as L

    command = prog.rsplit(" ", 1)[-1]
    helps = {"eval": EVAL_HELP, "info": INFO_HELP}
    parser = command_parser(prog, helps.get(command, RUN_HELP))
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config file(s), applied after the preset")
    parser.add_argument("--preset", type=str, default=default_preset(),
                        help="preset name (the task's and the model's presets/ folders; $REASONBENCH_PRESET or mini when not given)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--allow-import", type=str, help="a module whose classes --trainer.logger and --trainer.callbacks "
                        "may name, beyond Lightning's, reasonbench's and the installed plugins' (repeatable; command "
                        "line only, never read from a config file)")
    parser.add_argument("--model.name", type=str, required=True, help="registered model name (--model M)")
    parser.add_argument("--task.name", type=str, required=True, help="registered task name (--task T)")
    if command == "info":
        parser.add_argument("--flops", action="store_true",
                            help="count forward FLOPs per example on a synthetic batch of the task's shape (no data "
                                 "built or fetched; the model runs on the CPU, which takes a while at paper size)")
    else:
        parser.add_argument("--out", type=str, default="results", help="folder of result records")
        parser.add_argument("--overwrite", action="store_true", help="replace an existing record (and run folder)")
        parser.add_argument("--eval-depth", "--max-steps", "--eval_max_steps", dest="eval_max_steps",
                            type=int | None, default=None,
                            help=DEPTH_HELP + (EVAL_DEPTHS_HELP if command == "eval" else RUN_DEPTH_HELP))
        parser.add_argument("--breadth", dest="eval_breadth", type=int, metavar="B", default=1,
                            help="test-time breadth: trajectories per example, each from a seeded noisy start "
                                 "(trajectory 0: the model's own), one answer chosen by --select (recursive models)")
        parser.add_argument("--select", dest="eval_select", type=str, metavar="RULE", default="vote",
                            help="how --breadth's answer is chosen: vote (the answer most trajectories give), "
                                 "residual (the trajectory whose state moved least in its last step), "
                                 "convergence (EqR's: whose answer logits moved least over its last 3 steps) or "
                                 "halt (the highest halting logit)")
        parser.add_argument("--breadth-seed", dest="eval_breadth_seed", type=int, metavar="SEED", default=0,
                            help="seed of the trajectories' starting noise")
        parser.add_argument("--breadth-noise", dest="eval_breadth_noise", type=float, metavar="STD", default=1.0,
                            help="standard deviation of the Gaussian noise added to a trajectory's initial state")
    if command == "eval":
        parser.add_argument("--checkpoint", type=str, required=True, help="the weights to evaluate")
    elif command != "info":
        parser.add_argument("--resume", action="store_true",
                            help="continue from the run's newest readable checkpoint (a finished run is kept)")
        parser.add_argument("--checkpoint_every", type=int, default=200,
                            help="training steps between the checkpoints --resume continues from (0: at validation only)")
        parser.add_argument("--budget", type=str | None, default=None,
                            help="stop training at this device time (wall time x devices), e.g. 10m, 1h, 600")
    if model_cls is not None:
        parser.add_class_arguments(model_cls, "model", skip={"metadata", "optim"})
    if task_cls is not None:
        parser.add_class_arguments(task_cls, "task")
    parser.add_class_arguments(OptimConfig, "optim")
    parser.add_class_arguments(MeasureConfig, "measure")
    parser.add_class_arguments(L.Trainer, "trainer", skip=TRAINER_MANAGED)
    _hide_name_groups_loaders(parser)
    _order_help(parser, command, model_cls, task_cls)
    return parser


def _order_help(parser: ArgumentParser, command: str, model_cls: type | None, task_cls: type | None) -> None:
    """``--help`` reads from what a run is made of to how it is run: the model's and the task's
    options, the optimizer's, the command's own, then how costs are measured and Lightning's
    Trainer; each group under a heading that names its option prefix. The usage line stays
    short (the full list is the help itself)."""
    titles = {"model": f"model {_registered_name('model', model_cls)} (--model.*)",
              "task": f"task {_registered_name('task', task_cls)} (--task.*)",
              "optim": "--optim.*", "measure": "--measure.*",
              "trainer": "Lightning Trainer (--trainer.*; logging, checkpoints and the output folder are the runner's)"}
    groups = {}
    for key, title in titles.items():
        group = parser.groups.get(key)
        if group is not None:
            summary = (group.title or "").rstrip(":")
            group.title = title if key == "trainer" or not summary else f"{title}: {summary}"
            groups[key] = group
    own = parser._optionals  # argparse's default group: --help and the command's own options
    own.title = f"{command if command in ('eval', 'info') else 'run'} options"
    rest = [g for g in parser._action_groups if g is not own and g not in groups.values()]
    parser._action_groups[:] = rest + [groups[k] for k in ("model", "task", "optim") if k in groups] + [own] + \
        [groups[k] for k in ("measure", "trainer") if k in groups]
    parser.usage = f"{parser.prog} --model MODEL --task TASK [--preset PRESET] [OPTION ...]"


def _registered_name(kind: str, cls: type | None) -> str:
    """The name ``cls`` is registered under (its class name if none)."""
    if cls is None:
        return ""
    for name, entry in registry.entries(kind).items():
        if entry._obj is cls:  # loaded already: the class was got through the registry
            return name
    return cls.__name__


def _hide_name_groups_loaders(parser: ArgumentParser) -> None:
    """jsonargparse gives each class group a ``--model CONFIG`` (a YAML of the group); ``--model``
    and ``--task`` name the model and task here (``_normalise_argv``), so help must not offer those two."""
    for action in parser._actions:
        if action.option_strings in (["--model"], ["--task"]):
            action.help = argparse.SUPPRESS


def resolve_task(argv: list[str], prog: str, extra: dict[str, tuple[Any, Any, str]] | None = None,
                 overrides: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """A task alone (for ``reasonbench data``): its preset file, ``--config`` files, flags, then
    ``overrides`` as an object. ``extra`` adds plain options {name: (type, default, help)};
    returns (task class, config)."""
    argv, _ = _normalise_argv(list(argv))
    names = _required_names(argv, ("task",))
    task_cls = registry.get_task(names["task"])
    preset = names.get("preset") or default_preset()
    parser = command_parser(prog)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config file(s), applied after the preset")
    parser.add_argument("--preset", type=str, default=default_preset(), help="preset name")
    parser.add_argument("--task.name", type=str, required=True, help="registered task name (--task T)")
    parser.add_class_arguments(task_cls, "task")
    _hide_name_groups_loaders(parser)
    for name, (typ, default, text) in (extra or {}).items():
        parser.add_argument(f"--{name}", type=typ, default=default, help=text)
    task_file = task_preset_file(names["task"], preset, task_cls)
    if task_file is None:
        raise UserError(f"no preset '{preset}' for task '{names['task']}'; "
                        f"available: {_preset_names(task_preset_dirs(names['task'], task_cls))}")
    if any(a in ("-h", "--help") for a in argv):  # the task's options, the preset's values as defaults
        given = [a for a in argv if a not in ("-h", "--help")]
        _help_with_defaults(parser, _parse(parser, ["--config", str(task_file), *given]))
    ns = _parse(parser, ["--config", str(task_file), *argv])
    if overrides:
        ns = _parse_object(parser, overrides, ns)
    apply_own_data_defaults(ns, task_cls, argv, overrides)
    config = _plain(ns)
    check_name("--preset", config["preset"])
    return task_cls, config


def _task_options_given(argv: list[str], overrides: dict[str, Any] | None) -> set[str]:
    """The task options the user set (not the preset): ``--task.X`` flags, the ``task:``
    section of ``--config`` files given, and the Python API's overrides."""
    given = {arg.split("=", 1)[0].removeprefix("--task.") for arg in argv if arg.startswith("--task.")}
    for i, arg in enumerate(argv):
        source = argv[i + 1] if arg == "--config" and i + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--config=") else None)
        if source is not None:
            section = _load_yaml(source).get("task")
            given |= set(section) if isinstance(section, dict) else set()
    section = nested(overrides or {}).get("task")
    return given | (set(section) if isinstance(section, dict) else set())


def apply_own_data_defaults(ns: Namespace, task_cls: type, argv: list[str],
                            overrides: dict[str, Any] | None = None) -> None:
    """With ``task.path`` set by the user, the task's ``own_data_defaults`` for the options
    they did not set too: the preset's sizes shrink to what the files hold (``fit_to_files``),
    and a generated-only split is left out, said on one line. Sizes the user set stay as set
    (and fail as before where the files cannot give them)."""
    given = _task_options_given(argv, overrides)
    if "path" not in given or ns.get("task.path") is None:
        return
    import sys

    sizes_given = bool(given & set(getattr(task_cls, "own_data_sizes", ())))
    for key, value in getattr(task_cls, "own_data_defaults", {}).items():
        if key in given or f"task.{key}" not in ns or ns[f"task.{key}"] == value:
            continue
        if key == "fit_to_files" and sizes_given:
            continue
        if key == "num_ood":
            print(f"reasonbench: --task.path {ns['task.path']}: no out-of-distribution split (the preset's "
                  f"{ns['task.num_ood']:,} are generated examples, left out with data of your own)", file=sys.stderr)
        ns[f"task.{key}"] = value


def _help_with_defaults(parser: ArgumentParser, values: Namespace) -> None:
    """Print ``parser``'s help with ``values`` (a preset's, as parsed) as its defaults; exits 0."""
    known = {action.dest for action in parser._actions}
    parser.set_defaults({k: v for k, v in _plain(values, flat=True).items() if k in known})
    parser.parse_args(["--help"])


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


DEPTH_OPTIONS = ("--eval-depth", "--max-steps", "--eval_max_steps")


def _depth_list(argv: list[str], prog: str) -> tuple[list[str], tuple[int, ...]]:
    """``--eval-depth``'s comma list (``eval`` only): ``argv`` with the largest depth in its place
    and the depths (ascending, distinct; empty where one depth is given, which parses as before).
    The last ``--eval-depth`` given wins, as for any option."""
    out: list[str] = []
    depths: tuple[int, ...] = ()
    i = 0
    while i < len(argv):
        option, joined, value = argv[i].partition("=")
        if option not in DEPTH_OPTIONS or not (joined or i + 1 < len(argv)):
            out.append(argv[i])
            i += 1
            continue
        value = value if joined else argv[i + 1]
        taken = argv[i:i + (1 if joined else 2)]
        i += len(taken)
        depths = ()
        if "," not in value:
            out += taken
            continue
        if not prog.endswith(" eval"):
            raise UserError(f"option {option}: {prog} tests at one depth, got {value!r} "
                            f"(`reasonbench eval --eval-depth 1,2,4` reads several in one pass)")
        try:
            listed = testtime.parse_depths(value, MAX_STEPS)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        out.append(f"{option}={listed[-1]}")
        depths = listed if len(listed) > 1 else ()
    return out, depths


def _load_yaml(text_or_path: str) -> dict[str, Any]:
    """A ``--config`` value (a file, or YAML/JSON given inline) as a mapping, read as untrusted:
    a regular file of at most ``untrusted.MAX_YAML_BYTES``, aliases' expansion, nodes and
    nesting capped; every refusal one line that names the option, never the file's content."""
    from reasonbench.util.untrusted import MAX_YAML_BYTES, load_yaml, printable, read_text

    inline = text_or_path.lstrip().startswith(("{", "[")) or "\n" in text_or_path
    path = Path(text_or_path)
    where = f"--config {printable(text_or_path if not inline else '(inline)', 200)}"
    is_file = not inline and (path.exists() or path.is_symlink())
    text = read_text(path, where, MAX_YAML_BYTES) if is_file else text_or_path
    data = load_yaml(text, where)
    if not isinstance(data, dict) and not is_file:
        raise UserError(f"{where}: no such file")
    if data is not None and not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of options (key: value), got a {type(data).__name__}")
    if isinstance(data, dict):
        _check_option_names(data, where)
    return data if isinstance(data, dict) else {}


OPTION_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_.+-]{0,99}")


def _check_option_names(data: dict[str, Any], where: str) -> None:
    """Every key of a config is an option name: a file that is not a config at all (``--config
    /etc/shadow`` reads as a mapping whose key is the file's first line) is refused without
    repeating any of its content."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if not (isinstance(key, str) and OPTION_NAME.fullmatch(key)):
                    raise UserError(f"{where}: not a config file: it holds a key that is not an option name "
                                    "(options are names such as model, optim, trainer; the key is not shown)")
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _allowed_imports(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv without its ``--allow-import MODULE`` options, the modules): read from the command
    line alone, never from a config file, and given to ``config.imports.restrict_imports``."""
    from reasonbench.config.imports import restrict_imports

    rest, modules, i = [], [], 0
    while i < len(argv):
        if argv[i] == "--allow-import" and i + 1 < len(argv):
            modules.append(argv[i + 1])
            i += 2
            continue
        if argv[i].startswith("--allow-import="):
            modules.append(argv[i].split("=", 1)[1])
        else:
            rest.append(argv[i])
        i += 1
    restrict_imports(modules)
    return rest, modules


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


def resolve(argv: list[str], prog: str = "reasonbench run",
            overrides: dict[str, Any] | None = None) -> tuple[RunConfig, bool]:
    """Resolve a run from command-line style arguments, then ``overrides`` (the Python API's
    keyword arguments, dotted keys or nested dicts) applied as an object on top; returns
    (config, print_config)."""
    argv, print_config = _normalise_argv(list(argv))
    argv, _ = _allowed_imports(argv)
    argv, depths = _depth_list(argv, prog)
    asks_help = any(a in ("-h", "--help") for a in argv)
    if asks_help and not {"model", "task"} <= _scan_names(argv).keys():
        build_parser(None, None, prog).parse_args(["--help"])  # prints the command's options, exits 0
    names = _required_names(argv, ("model", "task"))
    model_cls = registry.get_model(names["model"])
    task_cls = registry.get_task(names["task"])
    preset = names.get("preset") or default_preset()
    parser = build_parser(model_cls, task_cls, prog)
    stacked = [arg for source in preset_files(names["model"], names["task"], preset, model_cls, task_cls)
               for arg in ("--config", source)]
    if asks_help:  # every option, with the preset's values as defaults (read as `run` reads them)
        names_given = ["--model.name", names["model"], "--task.name", names["task"]]
        _help_with_defaults(parser, _parse(build_parser(model_cls, task_cls), stacked + names_given))
    ns = _parse(parser, stacked + argv)
    if overrides:
        ns = _parse_object(parser, overrides, ns)
    apply_own_data_defaults(ns, task_cls, argv, overrides)
    cfg = _to_run_config(ns, model_cls, task_cls, training=prog.endswith(" run"))
    cfg.eval_depths = depths
    # what the preset alone gives: every setting that differs from it, whatever gave it, is recorded
    required = ["--checkpoint", cfg.checkpoint] if cfg.checkpoint is not None else []  # eval's
    preset_alone = _parse(parser, stacked + ["--model.name", cfg.model, "--task.name", cfg.task, *required])
    cfg.overrides = settings_beyond(cfg.config, _plain(preset_alone))
    return cfg, print_config


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (lists and scalars are values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def settings_beyond(config: dict[str, Any], preset_alone: dict[str, Any]) -> dict[str, Any]:
    """{dotted setting: value} of ``config`` that differ from ``preset_alone`` (the preset's own
    resolution), neutral settings left out, in name order: what a record calls its overrides,
    however they were given (command line, ``--config`` files, ``reasonbench.run`` keywords)."""
    given, base = flatten(config), flatten(preset_alone)
    missing = object()
    return {key: given[key] for key in sorted(given)
            if not is_neutral(key) and base.get(key, missing) != given[key]}


def _parse_object(parser: ArgumentParser, overrides: dict[str, Any], ns: Namespace) -> Namespace:
    """``overrides`` (dotted keys or nested dicts) applied on top of ``ns``, validated."""
    try:
        return parser.parse_object(nested(overrides), namespace=ns)
    except argparse.ArgumentError as exc:
        raise UserError(_denied_import(exc) or collapse_whitespace(exc)) from None


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


def _plain(ns: Namespace, flat: bool = False) -> dict[str, Any]:
    """The namespace as JSON-able data (nested dicts, or dotted keys with ``flat``)."""
    ns = ns.clone()
    for key in ("config", "__path__"):
        if key in ns:
            del ns[key]
    if flat:
        return {key: ns[key] for key in ns.keys() if not isinstance(ns[key], Namespace)}
    return json.loads(json.dumps(ns.as_dict(), default=str))


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
    # what the command does, not part of the run's reproducible configuration
    actions = {key: bool(config.pop(key, False)) for key in ("resume", "overwrite", "flops")}
    config.pop("allow_import", None)  # taken from the command line before parsing (_allowed_imports)
    for kind in ("model", "task"):
        registry.check(kind, config[kind]["name"])
        check_name(f"--{kind}", config[kind]["name"])
    check_name("--preset", config["preset"])
    check_seed("--seed", config["seed"])
    check_trainer(config["trainer"], training)
    model_args = {k: v for k, v in config["model"].items() if k != "name"}
    task_args = {k: v for k, v in config["task"].items() if k != "name"}
    if config.get("eval_max_steps") is not None and not 1 <= config["eval_max_steps"] <= MAX_STEPS:
        raise UserError(f"option --eval-depth: must be in 1..{MAX_STEPS}, got {config['eval_max_steps']}")
    test_time = {key: config[key] for key in ("eval_breadth", "eval_select", "eval_breadth_seed", "eval_breadth_noise")
                 if key in config}
    if test_time:
        try:
            testtime.check(test_time["eval_breadth"], test_time["eval_select"], test_time["eval_breadth_noise"])
        except ValueError as exc:
            raise UserError(str(exc)) from None
        check_seed("--breadth-seed", test_time["eval_breadth_seed"])
    if config.get("checkpoint_every", 0) < 0:
        raise UserError(f"option --checkpoint_every: must be >= 0, got {config['checkpoint_every']}")
    if config.get("budget") is not None:
        parse_duration(config["budget"])
    try:
        optim = OptimConfig(**config["optim"])
        measure = MeasureConfig(**config["measure"])
    except (TypeError, ValueError) as exc:
        raise UserError(collapse_whitespace(exc)) from None
    return RunConfig(model=config["model"]["name"], task=config["task"]["name"], preset=config["preset"],
                     seed=config["seed"], out=config.get("out", "results"), model_cls=model_cls, task_cls=task_cls,
                     model_args=model_args, task_args=task_args, optim=optim,
                     trainer_args=dict(config["trainer"]), measure=measure, config=config,
                     checkpoint=config.get("checkpoint"), checkpoint_every=config.get("checkpoint_every", 200),
                     budget=config.get("budget"), eval_max_steps=config.get("eval_max_steps"), **test_time, **actions)


def dump(config: dict[str, Any]) -> str:
    """The resolved config as YAML, loadable again with ``--config``."""
    return yaml.safe_dump(config, sort_keys=False)
