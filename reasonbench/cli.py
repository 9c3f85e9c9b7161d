"""The ``reasonbench`` command: subcommands only, no logic beyond parsing and calling.

Options are parsed by jsonargparse against the chosen model's and task's signatures
(see ``config.resolve``); bad input exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

USAGE = """usage: reasonbench <command> [options]

commands:
  list                                   models and tasks, one line each
  run  --model M --task T [--preset P] [--seed N] [--out DIR] [--config F.yaml ...]
       [--model.KEY V --task.KEY V --optim.KEY V --trainer.KEY V ...] [--print_config]
       [--resume] [--overwrite] [--checkpoint_every N] [--budget 10m]
                                         train, test and write a result record; --resume continues
                                         from the run's newest readable checkpoint (a finished run is
                                         kept); an existing record is replaced only with --overwrite
  eval --model M --task T --checkpoint CKPT [--preset P] [--out DIR] [--overwrite] [...]
                                         test a checkpoint and write a record
  info --model M --task T [--preset P] [--flops]
                                         parameters (instant); with --flops, forward FLOPs per example
  import-checkpoint --from hrm|trm PATH --task T --out CKPT [--preset P] [--reference-config F.yaml]
                                         convert a reference HRM/TRM checkpoint for `reasonbench eval`
  data info|build|export|show --task T [--preset P] [--task.KEY V ...]
       build [--out DIR] | export --split S [--limit N] --out F.csv | show [--split S] --index I
                                         inspect, build (cached), export (reference CSV), render data
  leaderboard [--results DIR] [--out SITE] [--reported F.yaml|none]
                                         records -> static site SITE/index.html, leaderboard.md, .json
  sweep --models A,B --tasks T --seeds 0-2 [--preset P] [--out DIR] [--executor local|slurm]
        [--parallel N] [--partition P --time 4:00:00 --cpus-per-task N --mem 8G --wait]
        [--dry-run] [--trainer.KEY V ...] | sweep --status --out DIR
                                         every run not finished yet (DIR/sweep.json lists them), here
                                         or as one SLURM job array; again: skips finished, reruns failed
  bench [--models M,...] [--tasks T,...] [--preset P] [--quick] [--steps N] [--device cpu|cuda]
        [--bf16] [--compile] [--out bench.json]
                                         training/evaluation throughput, peak memory, FLOPs, MFU of
                                         every model (table + JSON); --quick: a few CPU minutes
  new-plugin NAME [--package DIR | --in-tree]
                                         write a model plugin that trains as generated: model, smoke
                                         and mini presets for every task, tests (CONTRIBUTING.md)
  check-plugin NAME [--tasks T1,T2] [--no-record]
                                         the conformance kit: PASS/FAIL per check with what to change

`reasonbench run --model M --task T --help` lists every option of that model and task."""


def _list(argv: list[str]) -> int:
    from . import registry

    if any(a in ("-h", "--help") for a in argv):
        print("usage: reasonbench list\n\nEvery installed model and task, one line each: its name, whether it loads "
              "(a broken plugin is marked, not fatal), its class and where it comes from.")
        return 0

    for kind in ("model", "task"):
        for name, entry in registry.entries(kind).items():
            origin = "built-in" if entry.builtin else f"from {entry.dist}"
            status = "conflict: " + entry.conflict if entry.conflict else entry.status()
            print(f"{kind:5s}  {name:14s}  {status:6s}  {entry.target} ({origin})")
            for loser in entry.shadowed:
                print(f"{kind:5s}  {name:14s}  ignored: duplicate name from {loser}; the built-in wins")
    return 0


def _run(argv: list[str], mode: str) -> int:
    from . import config

    if any(a in ("-h", "--help") for a in argv) and not any(a.startswith(("--model", "--config")) for a in argv):
        print(USAGE)
        return 0
    resume, overwrite = "--resume" in argv, "--overwrite" in argv
    # `--max-steps K`: the issue-tracker spelling of --eval_max_steps
    argv = ["--eval_max_steps" if a == "--max-steps" else a.replace("--max-steps=", "--eval_max_steps=")
            for a in argv if a not in ("--resume", "--overwrite")]
    if resume and mode != "train":
        raise_user("reasonbench eval: --resume is for `reasonbench run`")
    loaded = None
    if mode == "eval":
        from .runner import checkpoint_config_argv

        stored_config, loaded = checkpoint_config_argv(argv)
        argv = stored_config + argv
    cfg, print_config = config.resolve(argv, prog="reasonbench " + ("run" if mode == "train" else mode))
    if print_config:
        print(config.dump(cfg.config), end="")
        return 0
    if mode == "train" and cfg.checkpoint:
        raise_user("reasonbench run: --checkpoint is for `reasonbench eval`")
    from . import runner

    record = runner.execute(cfg, mode=mode, command=shlex.join(["reasonbench", *sys.argv[1:]]),
                            loaded_checkpoint=loaded, resume=resume, overwrite=overwrite)
    if record.get("_kept"):
        print(f"finished already, nothing run: {record['_path']} (status {record['status']})")
    elif record:
        print(runner.summary(record))
        print(f"record: {record['_path']}")
    return 0


def _info(argv: list[str]) -> int:
    import torch

    from . import config, measure, runner

    if _asks_help_without(argv, ("--model", "--task")) and not any(a.startswith("--config") for a in argv):
        print(USAGE)
        return 0
    with_flops = "--flops" in argv
    argv = [a for a in argv if a != "--flops"]
    cfg, _ = config.resolve(argv, prog="reasonbench info")
    runner.quiet_lightning()
    task = runner.make_task(cfg)
    meta, exact_ids = task.planned_metadata()
    with torch.device("meta"):  # shapes only: instant even at paper size, no data built
        params, extra = measure.count_parameters(runner.build_model(cfg, task, meta))
    print(f"model       {cfg.model} (preset {cfg.preset})")
    print(f"task        {cfg.task}: vocab {meta.vocab_size}, length {meta.seq_len}, "
          f"{'' if exact_ids else 'at most '}{meta.num_puzzle_ids:,} puzzle ids")
    print(f"parameters  {params:,}")
    print(f"extra       {'' if exact_ids else 'at most '}{extra:,} (puzzle embeddings and other per-puzzle state)")
    if not with_flops:
        print("forward     (add --flops to build the data and measure FLOPs per example)")
        return 0
    task.setup("fit")
    torch.manual_seed(cfg.seed)
    model = runner.build_model(cfg, task)
    flops = measure.forward_flops_per_example(model, task.splits["test"], cfg.measure.flops_examples)
    print(f"data        {task.sizes()}")
    print(f"forward     {flops.mean:,.0f} FLOPs per example (mean; p95 {flops.p95:,.0f}; "
          f"{flops.examples} test examples, untrained weights)")
    return 0


def _import_checkpoint(argv: list[str]) -> int:
    from .checkpoint_import import main as import_main

    return import_main(argv)


def _leaderboard(argv: list[str]) -> int:
    from jsonargparse import ArgumentParser

    from . import leaderboard
    from .errors import UserError
    from .leaderboard.records import one_line  # not config's: that imports torch, which this command avoids

    parser = ArgumentParser(prog="reasonbench leaderboard", exit_on_error=False)
    parser.add_argument("--results", type=str, default="results", help="folder of result records")
    parser.add_argument("--out", type=str, default="site", help="folder to write the leaderboard to")
    parser.add_argument("--reported", type=str, default=str(leaderboard.DEFAULT_REPORTED),
                        help="the papers' published figures (YAML); 'none' for none")
    try:
        args = parser.parse_args(argv)
    except Exception as exc:
        raise UserError(one_line(exc)) from None
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {results}: {'not a folder' if results.exists() else 'no such folder'}")
    reported = None if args.reported == "none" else Path(args.reported)
    site = leaderboard.build(results, Path(args.out), reported)
    for problem in [s.line() for s in site.skipped] + site.warnings:
        print(f"reasonbench leaderboard: {problem}", file=sys.stderr)
    skipped = f", {len(site.skipped)} invalid skipped" if site.skipped else ""
    print(f"{len(site.rows)} leaderboard rows from {site.records} records{skipped}, {len(site.reported)} reported "
          f"figures -> {Path(args.out) / 'index.html'}, leaderboard.md, leaderboard.json")
    return 0


def _sweep(argv: list[str]) -> int:
    from .sweep import command

    return command(argv)


def _bench(argv: list[str]) -> int:
    from .bench import main as bench_main

    return bench_main(argv)


def _new_plugin(argv: list[str]) -> int:
    from .scaffold import command

    return command(argv)


def _check_plugin(argv: list[str]) -> int:
    from .testing import command

    return command(argv)


DATA_USAGE = """usage: reasonbench data info|build|export|show --task T [--preset P] [--task.KEY V ...]

  info    sources, split sizes, encoding, fingerprint, cache file, where the data came from
  build   [--out DIR]                       build (or generate, or fetch from the Hub) and cache
  export  --split train|val|test|ood [--limit N] --out F.csv   the reference CSV layout
  show    --index I [--split S]             render one puzzle and its answer

`reasonbench data ACTION --task T --help` lists every option of that task."""


def _asks_help_without(argv: list[str], needed: tuple[str, ...]) -> bool:
    """``--help`` given without the options that the detailed help is built from."""
    asked = any(a in ("-h", "--help") for a in argv)
    return asked and not all(any(a == n or a.startswith(n + "=") or a.startswith(n + ".") for a in argv)
                             for n in needed)


def _data(argv: list[str]) -> int:
    from . import dataops

    actions = {"info": dataops.info, "build": dataops.build, "export": dataops.export, "show": dataops.show}
    if argv and argv[0] in ("-h", "--help"):
        print(DATA_USAGE)
        return 0
    if argv and argv[0] in actions and _asks_help_without(argv[1:], ("--task",)):
        print(DATA_USAGE)
        return 0
    if not argv or argv[0] not in actions:
        given = f"unknown action '{argv[0]}'; " if argv else ""
        raise_user(f"reasonbench data: {given}expected one of {', '.join(actions)}")
    actions[argv[0]](argv[1:])
    return 0


def raise_user(message: str) -> None:
    from .errors import UserError

    raise UserError(message)


def main(argv: list[str] | None = None) -> int:
    from .errors import MachineError, UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    commands = {"list": lambda: _list(rest), "run": lambda: _run(rest, "train"),
                "eval": lambda: _run(rest, "eval"), "info": lambda: _info(rest),
                "leaderboard": lambda: _leaderboard(rest), "data": lambda: _data(rest),
                "import-checkpoint": lambda: _import_checkpoint(rest), "bench": lambda: _bench(rest), "sweep": lambda: _sweep(rest),
                "new-plugin": lambda: _new_plugin(rest), "check-plugin": lambda: _check_plugin(rest)}
    if command not in commands:
        print(f"reasonbench: error: unknown command '{command}'; valid commands: {', '.join(commands)}",
              file=sys.stderr)
        return 2
    previous = _sigterm_as_interrupt()
    try:
        return commands[command]()
    except UserError as exc:
        print(f"reasonbench: error: {exc}", file=sys.stderr)
        return 2
    except MachineError as exc:
        print(f"reasonbench: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # a parser's --help: its status, also for callers in this process
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"reasonbench: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
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
