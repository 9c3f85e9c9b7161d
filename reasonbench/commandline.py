"""Every command's parser: jsonargparse, options from typed arguments, ``--help`` at every level,
and bad input raised as a one-line :class:`UserError` (exit 2) with jsonargparse's own words."""

from __future__ import annotations

import argparse
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from .errors import UserError


def command_parser(prog: str, description: str | None = None) -> ArgumentParser:
    """A parser that raises on bad input instead of printing usage and exiting; the YAML it
    reads is bounded (``untrusted.guard_jsonargparse``) and no class path from a value is
    imported unless allowed (``untrusted.restrict_imports``)."""
    from .untrusted import guard_jsonargparse, restrict_imports

    guard_jsonargparse()
    restrict_imports()
    return ArgumentParser(prog=prog, description=description, exit_on_error=False, default_meta=False,
                          allow_abbrev=False)


def one_line(message: Any) -> str:
    return " ".join(str(message).split())


def parse(parser: ArgumentParser, argv: list[str], **kwargs: Any) -> Namespace:
    """``parser.parse_args(argv)``; its error as a UserError on one line, prefixed with the
    command (``bench: unrecognized arguments: --x``)."""
    try:
        return parser.parse_args(argv, **kwargs)
    except argparse.ArgumentError as exc:
        command = parser.prog.removeprefix("reasonbench").strip()
        raise UserError(f"{command}: {one_line(exc)}" if command else one_line(exc)) from None


def split_passthrough(argv: list[str], prefixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(the command's own arguments, the ``--PREFIX... VALUE`` options it hands on unchanged),
    e.g. a sweep's ``--trainer.max_steps 50`` for every run it starts."""
    own, handed_on = [], []
    i = 0
    while i < len(argv):
        if argv[i].startswith(prefixes):
            takes_value = "=" not in argv[i] and i + 1 < len(argv)
            handed_on += argv[i:i + 1 + takes_value]
            i += 1 + takes_value
        else:
            own.append(argv[i])
            i += 1
    return own, handed_on
