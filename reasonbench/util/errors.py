"""User-facing errors: the CLI prints them as one line on stderr and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a name, an option, a file). Never a bug in reasonbench."""


class MachineError(Exception):
    """A fault of the machine, not of the input (a full disk, an I/O error): one line, exit 1."""


class UnknownNameError(UserError, KeyError):
    """A model or task name that no installed plugin provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def unreadable_torch_file(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in a few words: torch's own messages run to
    paragraphs (with terminal escapes) and never say "truncated"."""
    import re

    text = str(exc)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:  # a pickled object of some class: never unpickled here (it could run code)
        return (f"holds a {refused.group(1)} object; only tensors and plain data are loaded "
                "(weights_only), so this is not a checkpoint reasonbench reads")
    detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else text
    detail = next((line.strip() for line in detail.splitlines() if line.strip()), "").split(". ")[0].rstrip(".")
    detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"truncated or not a torch file ({detail[:120]})"


def invalid_yaml(where: str, exc: BaseException) -> str:
    """``WHERE:LINE:COLUMN: not valid YAML: PROBLEM (CONTEXT at line N)`` from a PyYAML error,
    rather than its several-line rendering with carets."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return f"{where}: not valid YAML: {' '.join(str(exc).split())}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    around = f" ({context} at line {context_mark.line + 1})" if context and context_mark is not None else ""
    return f"{where}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}{around}"


def cannot_write(option: str, path, exc: OSError, folder: bool = False, inside=None) -> str:  # noqa: ANN001
    """``--out PATH: cannot write: ...`` naming a file that stands where a folder should be, else
    the OS's reason (and the place it names, when that is not PATH). ``folder``: PATH itself must
    be a folder; ``inside``: what is really written under PATH (a record deep in an ``--out``)."""
    from pathlib import Path

    written = Path(inside if inside is not None else path)
    places = [written, *written.parents] if folder else list(written.parents)
    blocker = next((p for p in places if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{option} {path}: cannot write: {blocker} is a file, not a folder"
    where = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(path) else ""
    return f"{option} {path}: cannot write: {where}{exc.strerror or ' '.join(str(exc).split())}"
