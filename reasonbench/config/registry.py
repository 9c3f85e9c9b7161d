"""Name -> class tables for models and tasks, filled from Python entry points.

Built-in plugins are declared in reasonbench's own pyproject exactly like third-party ones
(groups ``reasonbench.models`` and ``reasonbench.tasks``). Discovery reads only entry-point
metadata; a plugin is imported when somebody asks for it, so a plugin that fails to import
breaks only the run that uses it.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any

import re

from reasonbench.util.errors import UnknownNameError, UserError

# A preset, model or task name becomes part of a path (preset files, result records, run
# folders): a plain name, never a path of its own (``is_plain_name``: this pattern and no '..')
PLAIN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
PLAIN_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit, no '..'"

# the preset a command runs without --preset: mini, sized for a CPU, a number that means
# something (smoke, a seconds-long check, must be asked for); REASONBENCH_PRESET changes it
DEFAULT_PRESET = "mini"


def default_preset() -> str:
    """The preset used where none is named: ``$REASONBENCH_PRESET`` if set, else mini."""
    import os

    preset = os.environ.get("REASONBENCH_PRESET") or DEFAULT_PRESET
    if not is_plain_name(preset):
        raise UserError(f"REASONBENCH_PRESET {preset!r}: not a valid preset name ({PLAIN_NAME_RULE})")
    return preset


def is_plain_name(text: str) -> bool:
    """Whether ``text`` may name a preset, model or task (``PLAIN_NAME_RULE``): safe as one part
    of a path."""
    return PLAIN_NAME_PATTERN.fullmatch(text) is not None and ".." not in text

GROUPS = {"model": "reasonbench.models", "task": "reasonbench.tasks"}
BUILTIN_DIST = "reasonbench"


@dataclass
class Entry:
    """One registered name: where it comes from and, once loaded, its class or load error."""

    name: str
    kind: str
    target: str  # "module:attr"
    dist: str
    builtin: bool
    shadowed: list[str] = field(default_factory=list)  # duplicates that lost to this entry
    conflict: str | None = None  # set when two third-party plugins claim the same name
    _ep: Any = None
    _obj: Any = None
    _error: str | None = None

    def load(self) -> Any:
        if self.conflict:
            raise UserError(self.conflict)
        if self._obj is None and self._error is None:
            try:
                self._obj = self._ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self._error is not None:
            raise UserError(f"{self.kind} '{self.name}' ({self.target}, from {self.dist}) "
                            f"failed to load: {self._error}")
        return self._obj

    def status(self) -> str:
        """'ok' or 'broken: reason' (imports the plugin)."""
        try:
            self.load()
            return "ok"
        except UserError as exc:
            return f"broken: {self._error or exc}"


_tables: dict[str, dict[str, Entry]] = {}


def _dist_name(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "?"


def _build(kind: str) -> dict[str, Entry]:
    table: dict[str, Entry] = {}
    seen: set[tuple[str, str, str]] = set()
    # walk distributions ourselves: entry_points() keeps one entry per name, hiding duplicates
    all_eps = (ep for d in md.distributions() for ep in d.entry_points if ep.group == GROUPS[kind])
    for ep in all_eps:
        dist = _dist_name(ep)
        key = (ep.name, ep.value, dist)
        if key in seen:  # the same distribution visible twice on sys.path (editable installs)
            continue
        seen.add(key)
        entry = Entry(ep.name, kind, ep.value, dist, dist == BUILTIN_DIST, _ep=ep)
        old = table.get(ep.name)
        if old is None:
            table[ep.name] = entry
        elif old.builtin and not entry.builtin:
            old.shadowed.append(f"{entry.target} (from {entry.dist})")
        elif entry.builtin and not old.builtin:
            entry.shadowed = old.shadowed + [f"{old.target} (from {old.dist})"]
            table[ep.name] = entry
        else:
            old.conflict = (f"{kind} name '{ep.name}' is claimed by both {old.target} (from {old.dist}) "
                            f"and {entry.target} (from {entry.dist}); uninstall one of them")
    return table


def entries(kind: str) -> dict[str, Entry]:
    """All registered entries of a kind ('model' or 'task'), sorted by name."""
    if kind not in _tables:
        _tables[kind] = dict(sorted(_build(kind).items()))
    return _tables[kind]


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin in the same process)."""
    _tables.clear()


def check(kind: str, name: str) -> None:
    """Raise UnknownNameError (listing the valid names) unless ``name`` is registered; imports nothing."""
    table = entries(kind)
    if name not in table:
        valid = ", ".join(table) or "none installed"
        raise UnknownNameError(f"unknown {kind} '{name}'; valid {kind}s: {valid}")


def get(kind: str, name: str) -> Any:
    """The class registered under ``name``; a clear UserError if unknown or broken."""
    check(kind, name)
    return entries(kind)[name].load()


def get_model(name: str) -> Any:
    return get("model", name)


def get_task(name: str) -> Any:
    return get("task", name)


def list_models() -> list[str]:
    return list(entries("model"))


def list_tasks() -> list[str]:
    return list(entries("task"))
