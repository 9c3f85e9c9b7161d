"""The ``reasonbench`` command: the top parser, the table of subcommands, the dispatch and how
errors, interrupts and SIGTERM end a command. The subcommands that do more than hand over to a
tool live beside this module (``run``: run and eval; ``info``: list and info; ``data``;
``leaderboard``); no logic beyond parsing and calling.

Options are parsed by jsonargparse against the chosen model's and task's signatures
(see ``config.resolve``); bad input exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from reasonbench.cli import data, info, leaderboard, run
from reasonbench.config.commandline import command_parser, parse

DESCRIPTION = ("One protocol for small recursive reasoning models: train and test a model on a task into a "
               "self-describing result record, compare records on a leaderboard. "
               "`reasonbench COMMAND --help` lists a command's options.")


def _import_checkpoint(argv: list[str]) -> int:
    from reasonbench.tools.checkpoint_import import main as import_main

    return import_main(argv)


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


# each command's one-line summary (the top help) and its function; the commands that need more
# than handing over to a tool live in their own modules of this package
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "list": (info.LIST_SUMMARY, info.list_command),
    "run": (run.RUN_SUMMARY, run.train_command),
    "eval": (run.EVAL_SUMMARY, run.eval_command),
    "info": (info.INFO_SUMMARY, info.info_command),
    "import-checkpoint": ("Convert a reference HRM/TRM/EqR/SE-RRM checkpoint (a file or hf://) for `reasonbench eval`",
                          _import_checkpoint),
    "data": (data.SUMMARY, data.command),
    "leaderboard": (leaderboard.SUMMARY, leaderboard.command),
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
    """Run the command ``argv`` names (default: the process's arguments); returns its exit
    status: 0, 1 (a failure of the machine or a tool), 2 (bad input: one line on stderr) or 130
    (interrupted)."""
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
