"""Which classes a value may name: ``--trainer.logger``, ``--trainer.callbacks`` and a
``class_path`` in a config come from Lightning's callbacks and loggers, reasonbench and the
installed plugins' modules, and what ``--allow-import`` adds. Anything else is refused before it
is imported: importing a module runs it, and a NAME.py in the working folder would be found first."""

from __future__ import annotations

import re

from reasonbench.config import registry
from reasonbench.util.untrusted import UntrustedInput, printable

ALWAYS_IMPORTABLE = ("lightning.pytorch.callbacks", "lightning.pytorch.loggers", "reasonbench")
_importable: list[str] = []


def importable_roots(extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The modules (and everything under them) a class path from a value may name."""
    roots = list(ALWAYS_IMPORTABLE)
    for kind in ("model", "task"):
        roots += [entry.target.split(":", 1)[0] for entry in registry.entries(kind).values()]
    return list(dict.fromkeys(roots + [str(name) for name in extra]))


def restrict_imports(extra: tuple[str, ...] | list[str] = ()) -> None:
    """Make jsonargparse refuse, before importing, every class path from a value outside
    ``importable_roots(extra)``; ``extra`` adds to what earlier calls allowed (per process)."""
    from jsonargparse import set_parsing_settings

    for name in extra:
        if not DOTTED_MODULE.fullmatch(str(name)) or str(name).split(".")[0] == "jsonargparse":
            raise UntrustedInput(f"--allow-import {printable(name, 80)}: expected a module name such as mypackage.callbacks")
    roots = importable_roots([*_importable, *extra])
    set_parsing_settings(import_path_denylist=["*"], import_path_allowlist=roots)
    _importable[:] = roots


DOTTED_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def check_importable(class_path: str, option: str) -> None:
    """UntrustedInput unless ``class_path`` lies under a module ``restrict_imports`` allowed."""
    roots = _importable or importable_roots()
    text = str(class_path)
    if DOTTED_MODULE.fullmatch(text) and any(text == root or text.startswith(root + ".") for root in roots):
        return
    raise UntrustedInput(f"{option}: {printable(text, 120)}: not a class of Lightning's callbacks or loggers, "
                         f"reasonbench or an installed plugin (--allow-import MODULE allows another module)")
