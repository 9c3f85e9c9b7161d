"""The ``reasonbench`` command: subcommands only, no logic beyond parsing and calling.

Options are parsed by jsonargparse against the chosen model's and task's signatures
(see ``config.resolve``); bad input exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

from reasonbench.config.commandline import command_parser, parse

DESCRIPTION = ("One protocol for small recursive reasoning models: train and test a model on a task into a "
               "self-describing result record, compare records on a leaderboard. "
               "`reasonbench COMMAND --help` lists a command's options.")


def _list(argv: list[str]) -> int:
    from reasonbench.config import registry

    parse(command_parser("reasonbench list", COMMANDS["list"][0] + ": its name, whether it loads (a broken plugin "
                         "is marked, not fatal), its class and where it comes from."), argv)

    for kind in ("model", "task"):
        for name, entry in registry.entries(kind).items():
            origin = "built-in" if entry.builtin else f"from {entry.dist}"
            status = "conflict: " + entry.conflict if entry.conflict else entry.status()
            print(f"{kind:5s}  {name:14s}  {status:6s}  {entry.target} ({origin})")
            for loser in entry.shadowed:
                print(f"{kind:5s}  {name:14s}  ignored: duplicate name from {loser}; the built-in wins")
    return 0


def _run(argv: list[str], mode: str) -> int:
    from reasonbench.config import resolve as config

    loaded = None
    if mode == "eval":
        from reasonbench.execution.build import checkpoint_config_argv

        stored_config, loaded = checkpoint_config_argv(argv)
        argv = stored_config + argv
    cfg, print_config = config.resolve(argv, prog="reasonbench " + ("run" if mode == "train" else mode))
    if print_config:
        print(config.dump(cfg.config), end="")
        return 0
    from reasonbench.execution.execute import execute
    from reasonbench.execution.summary import summary

    record = execute(cfg, mode=mode, command=shlex.join(["reasonbench", *sys.argv[1:]]),
                     loaded_checkpoint=loaded, resume=cfg.resume, overwrite=cfg.overwrite)
    if record.get("_kept"):
        print(f"finished already, nothing run: {record['_path']} (status {record['status']})")
    elif record:
        print(summary(record))
        for depth, one in record.get("_depths", []):  # one test pass read several depths
            metrics, flops = one["metrics"] or {}, one["cost"]["flops_per_example_forward"]["mean"]
            print(f"depth {depth:>3}: exact {100 * metrics.get('exact_accuracy', 0):6.2f}%, "
                  f"forward FLOPs / example {flops:.3g}, record: {one['_path']}")
        if not record.get("_depths"):
            print(f"record: {record['_path']}")
    return 0


def _info(argv: list[str]) -> int:
    import torch

    from reasonbench.config import resolve as config
    from reasonbench.record import measure
    from reasonbench.execution.build import build_model, make_task
    from reasonbench.execution.trainer import quiet_lightning

    cfg, _ = config.resolve(argv, prog="reasonbench info")
    quiet_lightning()
    task = make_task(cfg)
    meta, exact_ids = task.planned_metadata()
    with torch.device("meta"):  # shapes only: instant even at paper size, no data built
        params, extra = measure.count_parameters(build_model(cfg, task, meta))
    own = config.model_preset_file(cfg.model, cfg.task, cfg.preset, cfg.model_cls) is not None
    settings = "" if own else ": none for this task, the model's own defaults"
    print(f"model       {cfg.model} (preset {cfg.preset}{settings})")
    print(f"task        {cfg.task}: vocab {meta.vocab_size}, length {meta.seq_len}, "
          f"{'' if exact_ids else 'at most '}{meta.num_puzzle_ids:,} puzzle ids")
    print(f"parameters  {params:,}")
    print(f"extra       {'' if exact_ids else 'at most '}{extra:,} (puzzle embeddings and other per-puzzle state)")
    if not cfg.flops:
        print("forward     (add --flops to count FLOPs per example on a synthetic batch of the task's shape)")
        return 0
    torch.manual_seed(cfg.seed)
    # no data is built or fetched: a forward pass costs the same on any ids of the task's shape
    # (the model's own halting aside), and the per-puzzle table's rows do not change it, so one
    # row spares a paper-size allocation
    model = build_model(cfg, task, dataclasses.replace(meta, num_puzzle_ids=1))
    uniform = getattr(model, "uniform_eval_cost", False)
    examples = 1 if uniform else cfg.measure.flops_examples
    flops = measure.forward_flops_per_example(model, measure.synthetic_split(meta, examples, cfg.seed), examples)
    counted = f"{flops.examples} synthetic example{'s' if flops.examples != 1 else ''} of length {meta.seq_len}"
    print(f"forward     {flops.mean:,.0f} FLOPs per example (mean; p95 {flops.p95:,.0f}; {counted}, untrained weights)")
    if not uniform:
        print("            this model's cost depends on the data: a run's record counts it on the test examples")
    return 0


def _import_checkpoint(argv: list[str]) -> int:
    from reasonbench.tools.checkpoint_import import main as import_main

    return import_main(argv)


def _leaderboard(argv: list[str]) -> int:
    from reasonbench import leaderboard
    from reasonbench.util.atomic import atomic_writer
    from reasonbench.util.errors import UserError
    from reasonbench.util.untrusted import printable

    parser = command_parser("reasonbench leaderboard", COMMANDS["leaderboard"][0] + ".")
    parser.add_argument("--results", type=str, default="results", help="folder of result records")
    parser.add_argument("--out", type=str, default="site", help="folder to write the leaderboard to")
    parser.add_argument("--reported", type=str, default=str(leaderboard.DEFAULT_REPORTED),
                        help="the papers' published figures (YAML); 'none' for none")
    parser.add_argument("--readme", type=str, default=None,
                        help="also put leaderboard.md into this Markdown file, between its lines "
                             f"'{leaderboard.pages.README_BEGIN} ...' and '{leaderboard.pages.README_END}'")
    parser.add_argument("--ci-rerun", action="append", default=[], metavar="RECORD",
                        help="a record (path under --results) that this project's CI re-runs and checks; its "
                             "track says so (only the project's own board, where it is true; repeatable)")
    parser.add_argument("--docs", type=str, default=None,
                        help="a folder of Markdown pages (docs/) rendered into the site beside the board")
    args = parse(parser, argv)
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {printable(results)}: {'not a folder' if results.exists() else 'no such folder'}")
    reported = None if args.reported == "none" else Path(args.reported)
    readme_text = None
    if args.readme:  # checked before the build: a README without its markers changes nothing
        try:
            readme_text = Path(args.readme).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--readme {args.readme}: cannot read: "
                            f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
        leaderboard.pages.embed_in_readme(readme_text, "", args.readme)
    try:
        site = leaderboard.build(results, Path(args.out), reported, args.ci_rerun,
                                 Path(args.docs) if args.docs else None)
    except OSError as exc:  # an --out that cannot be made or written (a folder without write permission, a full disk)
        raise _write_fault("--out", args.out, exc) from None
    if readme_text is not None:
        section = leaderboard.pages.readme_section(site.markdown)
        try:
            with atomic_writer(args.readme) as handle:
                handle.write(leaderboard.pages.embed_in_readme(readme_text, section, args.readme).encode())
        except OSError as exc:
            raise _write_fault("--readme", args.readme, exc) from None
    for problem in [s.line() for s in site.skipped] + site.warnings:
        print(f"reasonbench leaderboard: {problem}", file=sys.stderr)
    skipped = f", {len(site.skipped)} invalid skipped" if site.skipped else ""
    print(f"{len(site.rows)} leaderboard rows from {site.records} records{skipped}, {len(site.reported)} reported "
          f"figures -> {printable(Path(args.out) / 'index.html')}, leaderboard.md, leaderboard.json")
    return 0


def _write_fault(option: str, path: str, exc: OSError) -> Exception:
    """One line for a place that cannot be written: the machine's fault (a full disk: exit 1) or
    the user's (no permission, a file where a folder should be: exit 2)."""
    from reasonbench.util.atomic import MACHINE_ERRNOS
    from reasonbench.util.errors import MachineError, UserError, cannot_write
    from reasonbench.util.untrusted import printable

    message = printable(cannot_write(option, path, exc, folder=option == "--out"), 500)
    return (MachineError if exc.errno in MACHINE_ERRNOS else UserError)(message)


def _sweep(argv: list[str]) -> int:
    from reasonbench.tools.sweep import command

    return command(argv)


def _bench(argv: list[str]) -> int:
    from reasonbench.tools.bench import main as bench_main

    return bench_main(argv)


def _new_plugin(argv: list[str]) -> int:
    from reasonbench.tools.scaffold import command

    return command(argv)


def _check_plugin(argv: list[str]) -> int:
    from reasonbench.tools.conformance import command

    return command(argv)


def _data(argv: list[str]) -> int:
    from reasonbench.tools import dataops

    parser = command_parser("reasonbench data", COMMANDS["data"][0] + ". `reasonbench data ACTION --task T --help` "
                            "lists every option of that task.")
    actions = parser.add_subcommands(dest="action", title="actions")
    for name, (text, extra) in dataops.ACTIONS.items():
        action = command_parser(f"reasonbench data {name}", text)
        action.add_argument("--task", type=str, required=True, help="registered task name")
        action.add_argument("--preset", type=str, help="preset name ($REASONBENCH_PRESET or mini when not given)")
        for option, (kind, default, help_text) in extra.items():
            action.add_argument(f"--{option}", type=kind, default=default, help=help_text)
        actions.add_subcommand(name, action, help=text)
    asks_help = any(a in ("-h", "--help") for a in argv)
    names_task = any(a == "--task" or a.startswith(("--task=", "--config")) for a in argv)
    if not argv or argv[0] not in dataops.ACTIONS or (asks_help and not names_task):
        parse(parser, argv if asks_help or not argv else argv[:1])  # help, or the error naming the actions
    getattr(dataops, argv[0])(argv[1:])
    return 0


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "list": ("Every installed model and task, one line each", _list),
    "run": ("Train, test and write a result record (--resume continues an interrupted run)",
            lambda argv: _run(argv, "train")),
    "eval": ("Test a checkpoint and write a result record", lambda argv: _run(argv, "eval")),
    "info": ("A model's parameters on a task (instant); --flops: forward FLOPs per example", _info),
    "import-checkpoint": ("Convert a reference HRM/TRM/EqR/SE-RRM checkpoint (a file or hf://) for `reasonbench eval`",
                          _import_checkpoint),
    "data": ("Inspect, build (cached), export (reference CSV) and show a task's data", _data),
    "leaderboard": ("Result records to a static site: index.html, leaderboard.md, leaderboard.json", _leaderboard),
    "sweep": ("Models x tasks x seeds not finished yet, here or as one SLURM job array", _sweep),
    "bench": ("Training/evaluation throughput, peak memory, FLOPs and MFU of every model", _bench),
    "new-plugin": ("Write a model plugin that trains as generated (CONTRIBUTING.md)", _new_plugin),
    "check-plugin": ("The conformance kit: PASS/FAIL per check with what to change", _check_plugin),
}


def top_parser() -> Any:
    """``reasonbench``: its commands, for ``--help`` and the error on an unknown one."""
    parser = command_parser("reasonbench", DESCRIPTION)
    commands = parser.add_subcommands(dest="command", title="commands")
    for name, (text, _) in COMMANDS.items():
        commands.add_subcommand(name, command_parser(f"reasonbench {name}"), help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    from reasonbench.util.errors import MachineError, UserError
    from reasonbench.util.untrusted import printable

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(top_parser().format_help(), end="", file=sys.stderr)
        return 2
    previous = _sigterm_as_interrupt()
    try:
        if argv[0] not in COMMANDS:  # --help, or an unknown command: the parser prints or raises
            parse(top_parser(), ["--help"] if argv[0] == "help" else argv[:1])
        return COMMANDS[argv[0]][1](argv[1:])
    except UserError as exc:  # names from files and folders may hold escape sequences: shown escaped
        print(f"reasonbench: error: {printable(exc, 4000)}", file=sys.stderr)
        return 2
    except MachineError as exc:
        print(f"reasonbench: error: {printable(exc, 4000)}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # a parser's --help: its status, also for callers in this process
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"reasonbench: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`reasonbench list | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt():  # noqa: ANN202
    """SIGTERM (``kill``, a batch system before SIGKILL) stops a command like Ctrl-C: one line,
    exit 130, no partial record. Not inside a SLURM job, where Lightning bypasses SIGTERM so
    that its requeue on the warning signal (USR1) can finish. Returns the handler it replaced
    (None if it installed none), for ``main`` to restore."""
    import os
    import signal
    import threading

    if "SLURM_JOB_ID" in os.environ or threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt("terminated (SIGTERM)")

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    sys.exit(main())
