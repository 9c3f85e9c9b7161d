"""Files and text from outside, read one way: result records (the leaderboard, publish,
reproduce), sweep manifests, safetensors metadata, checkpoint configs and ``--config`` files.

Every reader here refuses before it can hang, exhaust memory or crash: only a regular file is
opened (a FIFO, a device or a link to /dev/zero is refused on its stat), at most a fixed number
of bytes is read, JSON is strict (no NaN or Infinity, no number too large for a float) and
nested at most ``MAX_DEPTH`` deep, YAML has its aliases' expansion, its nodes and its nesting
capped. What fails is one line naming the file and the reason (``UntrustedInput``, a UserError:
exit 2); what is printed from such a file goes through ``printable`` first.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from reasonbench.util.errors import MachineError, UserError

MAX_JSON_BYTES = 16 * 2**20  # a real record is a few kB; an ARC submission adds a few hundred
MAX_DEPTH = 64  # a record nests 6 deep; a config a few more
MAX_YAML_BYTES = 2**20  # a config file is a few kB
MAX_YAML_NODES = 20_000  # keys and values after alias expansion; a preset has about a hundred


class UntrustedInput(UserError, ValueError):
    """A file or value from outside that is not one to use: one line, exit 2."""


# --- terminal safety ------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe for one terminal line: control characters (newlines, escape
    sequences, lone surrogates) shown as escapes, and long text cut in the middle (a schema
    message quotes the offending value first and says what is wrong with it last)."""
    text = _CONTROL.sub(lambda m: ascii(m.group())[1:-1], str(text))
    return text if len(text) <= limit else f"{text[:limit // 2]} ... {text[-limit // 2:]}"


# --- files ----------------------------------------------------------------------------------

def file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def read_bytes(path: str | Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of the regular file at ``path``; ValueError (what it is, or that it is too
    large) or OSError. A FIFO, a socket, a device (a link to /dev/zero) or a folder is refused
    on its stat, before any open that could block or have effects, and checked again on the
    open file (it may have been swapped since). A symbolic link to a regular file is read like
    the file: results are often gathered by links."""
    kind = file_kind(os.stat(path).st_mode)  # follows a link, opens nothing
    if kind:
        raise ValueError(f"not a regular file: {kind}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind:
            raise ValueError(f"not a regular file: {kind}")
        chunks, size = [], 0
        while True:  # not st_size: the file may grow while it is read
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"larger than {_size(limit)}")
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 2**20 else f"{limit >> 10} KiB"


def read_text(path: str | Path, what: str, limit: int = MAX_JSON_BYTES) -> str:
    """``read_bytes`` as UTF-8 text; one line naming ``what`` (e.g. ``--config run.yaml``)
    on any failure: UntrustedInput for a bad file, MachineError for a fault of the disk."""
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise UntrustedInput(f"{what}: not UTF-8 text") from None
    except ValueError as exc:
        raise UntrustedInput(f"{what}: {exc}") from None
    except OSError as exc:
        raise os_error(what, exc) from None


def os_error(what: str, exc: OSError) -> UserError | MachineError:
    """``WHAT: cannot read: REASON``; a fault of the machine (EIO, ...) as a MachineError (exit 1)."""
    from reasonbench.util.atomic import MACHINE_ERRNOS

    reason = exc.strerror or printable(exc, 120)
    kind = MachineError if exc.errno in MACHINE_ERRNOS else UntrustedInput
    return kind(f"{what}: cannot read: {reason}")


# --- JSON -----------------------------------------------------------------------------------

def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def depth(value: Any) -> int:
    """How deep ``value`` nests (a scalar 0, ``[1]`` 1), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
    return deepest


def _bracket_depth(data: bytes | str) -> int:
    """An upper bound of a text's nesting (brackets inside strings counted too): a cheap look
    before a parser whose recursion a deep text would exhaust. A JSON text over the bound is
    looked at again without its strings (``loads_json``)."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    level = deepest = 0
    for run in re.finditer(r"[\[{]+|[\]}]+", text):
        token = run.group()
        if token[0] in "[{":
            level += len(token)
            deepest = max(deepest, level)
        else:
            level = max(0, level - len(token))
    return deepest


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _as_bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")


def loads_json(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON: ValueError with the reason (``line N: not valid JSON: ...``, ``NaN is not
    a number``, ``nested too deeply``) for anything else."""
    if _bracket_depth(data) > max_depth and _bracket_depth(_JSON_STRING.sub(b'""', _as_bytes(data))) > max_depth:
        raise ValueError(f"nested too deeply (more than {max_depth} levels)")
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(exc.lineno, exc.msg) from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError(f"nested too deeply (more than {max_depth} levels)") from None
    return value


class InvalidJSON(ValueError):
    """A syntax error, with its line."""

    def __init__(self, lineno: int, msg: str) -> None:
        super().__init__(f"line {lineno}: not valid JSON: {msg}")
        self.lineno, self.msg = lineno, msg


def load_json(path: str | Path, what: str | None = None, limit: int = MAX_JSON_BYTES,
              max_depth: int = MAX_DEPTH) -> Any:
    """The JSON file at ``path``, read by ``read_bytes`` and parsed by ``loads_json``; one line
    naming ``what`` (default: the path) and the reason when it is not usable."""
    what = printable(what or path)
    try:
        data = read_bytes(path, limit)
    except ValueError as exc:
        raise UntrustedInput(f"{what}: {exc}") from None
    except OSError as exc:
        raise os_error(what, exc) from None
    try:
        return loads_json(data, max_depth)
    except InvalidJSON as exc:  # FILE:LINE: as compilers say it
        raise UntrustedInput(f"{what}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise UntrustedInput(f"{what}: {printable(exc)}") from None


def schema_error(data: Any, schema: dict[str, Any], what: str) -> str | None:
    """The first violation of ``schema`` by ``data`` as ``WHAT: invalid at PATH: REASON``, or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return printable(f"{what}: invalid at {where}: {error.message}")


# --- YAML -----------------------------------------------------------------------------------

def _yaml_loader() -> type:
    """PyYAML's pure-Python safe loader: its composer checks Python's recursion limit (the C
    one recurses on the C stack), so a deep document is a RecursionError, not a crash."""
    import yaml

    return yaml.SafeLoader


def check_yaml(text: str, what: str) -> None:
    """Refuse (UntrustedInput, one line) a YAML text that is too large, nested too deep or
    expands to too many nodes through its aliases (a few hundred bytes of nested anchors,
    "billion laughs", expand to billions of values in whatever copies the result)."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise UntrustedInput(f"{what}: larger than {_size(MAX_YAML_BYTES)}")
    if _bracket_depth(text) > MAX_DEPTH:
        raise UntrustedInput(f"{what}: nested too deeply (more than {MAX_DEPTH} levels)")
    loader = _yaml_loader()(text)
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
    except RecursionError:
        raise UntrustedInput(f"{what}: nested too deeply (more than {MAX_DEPTH} levels)") from None
    except yaml.YAMLError:
        return  # the caller's parser words the syntax error
    finally:
        loader.dispose()
    counts: dict[int, int] = {}
    levels: dict[int, int] = {}
    for root in nodes:
        count, level = _expanded(root, counts, levels)
        if count > MAX_YAML_NODES:
            raise UntrustedInput(f"{what}: more than {MAX_YAML_NODES:,} keys and values (aliases expanded)")
        if level > MAX_DEPTH:
            raise UntrustedInput(f"{what}: nested too deeply (more than {MAX_DEPTH} levels)")


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded(root: Any, counts: dict[int, int], levels: dict[int, int]) -> tuple[int, int]:
    """(nodes, depth) of ``root`` as constructed data: an alias counts as many nodes as what it
    names, each time; memoised per node, so the walk is linear in the document. Iterative: no
    recursion on a deep document. A cycle (a recursive alias) counts as too many."""
    stack, on_path = [(root, False)], set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            counts[key] = min(1 + sum(counts[id(k)] for k in kids), MAX_YAML_NODES + 1)
            levels[key] = 1 + max((levels[id(k)] for k in kids), default=0)
            continue
        if key in counts:
            continue
        if key in on_path:
            counts[key], levels[key] = MAX_YAML_NODES + 1, MAX_DEPTH + 1
            continue
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in counts)
    return counts[id(root)], levels[id(root)]


def load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load(text)`` after ``check_yaml``; a syntax error as one line."""
    import yaml

    from reasonbench.util.errors import invalid_yaml

    check_yaml(text, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UntrustedInput(invalid_yaml(what, exc)) from None
    except RecursionError:
        raise UntrustedInput(f"{what}: nested too deeply (more than {MAX_DEPTH} levels)") from None


_installed = False


def guard_jsonargparse() -> None:
    """Every YAML jsonargparse reads (``--config`` files, option values) goes through
    ``check_yaml`` first. Idempotent."""
    global _installed
    if _installed:
        return
    from jsonargparse import get_loader, set_loader

    plain = get_loader("yaml")

    def bounded(stream: str) -> Any:
        check_yaml(stream, "config")
        return plain(stream)

    import yaml

    set_loader("yaml", bounded, exceptions=(yaml.YAMLError, UntrustedInput))
    _installed = True
