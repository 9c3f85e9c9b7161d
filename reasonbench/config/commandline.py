"""Every command's parser: jsonargparse, options from typed arguments, ``--help`` at every level,
and bad input raised as a one-line :class:`UserError` (exit 2) with jsonargparse's own words."""

from __future__ import annotations

import argparse
import re
from typing import Any, Iterable

from jsonargparse import ArgumentParser, Namespace

from reasonbench.util.errors import UserError


def command_parser(prog: str, description: str | None = None) -> ArgumentParser:
    """A parser that raises on bad input instead of printing usage and exiting; the YAML it
    reads is bounded (``untrusted.guard_jsonargparse``) and no class path from a value is
    imported unless allowed (``config.imports.restrict_imports``)."""
    from reasonbench.config.imports import restrict_imports
    from reasonbench.util.untrusted import guard_jsonargparse

    guard_jsonargparse()
    restrict_imports()
    return ArgumentParser(prog=prog, description=description, exit_on_error=False, default_meta=False,
                          allow_abbrev=False)


def collapse_whitespace(message: Any) -> str:
    """``message`` on one line: every run of whitespace (newlines too) made one space."""
    return " ".join(str(message).split())


def parse(parser: ArgumentParser, argv: list[str], **kwargs: Any) -> Namespace:
    """``parser.parse_args(argv)``; its error as a UserError on one line, prefixed with the
    command (``bench: unrecognized arguments: --x``), with the closest valid name of a mistyped
    option or choice (:func:`explain`)."""
    try:
        return parser.parse_args(argv, **kwargs)
    except argparse.ArgumentError as exc:
        command = parser.prog.removeprefix("reasonbench").strip()
        message = explain(parser, exc)
        raise UserError(f"{command}: {message}" if command else message) from None


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[len(b)]


def closest(word: str, valid: Iterable[str]) -> str | None:
    """The valid name ``word`` is most likely a typo of: at most one edit per four characters
    (one edit for short words), the first of equally close ones; None when none is that close."""
    allowed = max(1, min(3, len(word.lstrip("-")) // 4))
    best = min(((edit_distance(word, name), name) for name in valid if name != word), default=None,
               key=lambda pair: pair[0])
    return best[1] if best is not None and best[0] <= allowed else None


def option_names(parser: ArgumentParser) -> list[str]:
    """Every option string ``parser`` accepts (``--trainer.max_steps``, ``-h``, ...)."""
    return [name for action in parser._actions for name in action.option_strings]


def explain(parser: ArgumentParser, exc: BaseException) -> str:
    """``exc`` (a parse error) on one line; an unrecognized option or an invalid choice close
    to a valid one names both: ``unrecognized option --trainer.max_step: did you mean
    --trainer.max_steps?``, ``invalid choice: 'rnu', did you mean 'run'? (choose from ...)``."""
    message = collapse_whitespace(exc)
    unrecognized = re.search(r"unrecognized arguments: (.*)$", message, flags=re.IGNORECASE)
    if unrecognized:
        words = unrecognized.group(1).split()
        valid = option_names(parser)
        for word in words:
            name = word.split("=", 1)[0]
            if name.startswith("-") and name not in valid:
                suggestion = closest(name, valid)
                if suggestion:
                    return f"unrecognized option {name}: did you mean {suggestion}?"
        return message
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        suggestion = closest(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        if suggestion:
            return message.replace(f"invalid choice: '{choice.group(1)}'",
                                   f"invalid choice: '{choice.group(1)}', did you mean '{suggestion}'?", 1)
    return message


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
