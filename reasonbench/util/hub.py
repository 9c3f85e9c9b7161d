"""Data sets and checkpoints named by Hugging Face Hub id: ``hf://OWNER/NAME[@REVISION][:PATH]``.

Files are fetched with ``huggingface_hub`` into its standard cache (``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``), so what one tool downloaded another
reuses. With ``HF_HUB_OFFLINE=1``, or without a network, they are read from that cache; a file
that is not there is one line naming the repository and how to get it (a ``UserError``: exit 2).
Every fetch says which commit it read (the revision resolved to its 40-digit sha), so that a
record can name exactly the data or weights it used.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import printable

PREFIX = "hf://"
# OWNER/NAME as the Hub accepts them: letters, digits, '-', '_', '.'; no '--' or '..'
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO = re.compile(rf"^{_NAME}/{_NAME}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
# a branch, a tag (``v1.0``), a pull request (``refs/pr/1``) or a commit: a name inside the
# repository's cache folder (``refs/<revision>``), never a path of its own
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
MAX_REVISION = 200
_TYPES = {"dataset": "datasets", "model": "models"}  # repo type -> its cache folder prefix


@dataclass(frozen=True)
class HubRef:
    """A parsed ``hf://`` address."""

    repo: str  # OWNER/NAME
    revision: str | None  # branch, tag or commit; None: the default branch
    path: str | None  # a file or folder inside the repository
    text: str  # as the user wrote it

    @property
    def spec(self) -> str:
        return PREFIX + self.repo + (f"@{self.revision}" if self.revision else "")


def is_hub(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def parse(text: str, option: str, repo_type: str = "dataset") -> HubRef:
    """``hf://OWNER/NAME[@REVISION][:PATH]`` (``hf://datasets/OWNER/NAME`` and
    ``hf://models/OWNER/NAME`` are read the same way); a one-line UserError naming
    ``option`` otherwise."""
    rest = text[len(PREFIX):]
    for kind, folder in _TYPES.items():
        if rest.startswith(folder + "/") and rest.count("/") >= 2:
            if kind != repo_type:
                raise UserError(f"{option} {printable(text)}: a {kind} repository, expected a {repo_type} one")
            rest = rest[len(folder) + 1:]
    rest, _, path = rest.partition(":")
    repo, at, revision = rest.partition("@")
    form = f"hf://OWNER/NAME[@REVISION]{'[:PATH]' if repo_type == 'model' else ''}"
    if not _REPO.match(repo) or "--" in repo or ".." in repo:
        raise UserError(f"{option} {printable(text)}: not a Hub repository id (expected {form})")
    if at and not valid_revision(revision):
        raise UserError(f"{option} {printable(text)}: not a revision after '@' (a branch, tag or commit sha: "
                        "letters, digits, '.', '_', '-' and '/' between names)")
    path = path.strip("/")
    if path and (".." in Path(path).parts or path.startswith("~")):
        raise UserError(f"{option} {printable(text)}: PATH must name a file inside the repository")
    return HubRef(repo, revision or None, path or None, text)


def valid_revision(revision: str) -> bool:
    """A revision name that stays a name under ``refs/``: no '..', no leading '/', no spaces."""
    return (bool(revision) and len(revision) <= MAX_REVISION and _REVISION.match(revision) is not None
            and ".." not in revision)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, its links resolved, lies inside ``folder`` (resolved too)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a link loop
        return False
    return True


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_cached(ref: HubRef, repo_type: str, name: str, path: Path) -> Path:
    """``path`` (a file ``name`` of ``ref`` in the cache) if it lies inside the repository's cache
    folder and its bytes still match the hash its blob is named by (sha256 for a large file, the
    git blob sha1 for a small one); a one-line UserError otherwise, so that an edited file is
    never read, nor a build made from it reused."""
    folder = _repo_folder(ref, repo_type)
    if not _inside(path, folder):
        raise UserError(f"{printable(ref.text)}: {printable(name)} in the Hugging Face cache leads outside its folder "
                        f"{printable(folder)}: not read")
    blob = path.resolve()
    if blob.parent.name == "blobs" and blob.parent.parent == folder.resolve():
        expected = blob.name
        actual = sha256_file(blob) if len(expected) == 64 else _git_blob_sha1(blob) if len(expected) == 40 else None
        if actual is not None and actual != expected:
            raise UserError(f"{printable(ref.text)}: {printable(name)} in the Hugging Face cache was changed since it "
                            f"was downloaded (its content does not match its hash {expected[:12]}...): delete "
                            f"{printable(blob)} to download it again")
    return path


# --- the environment, read when used (not when huggingface_hub was imported) -----------------

def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: the cache only."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def cache_dir() -> Path:
    """The Hub cache huggingface_hub uses with this environment."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "huggingface" / "hub"


def _repo_folder(ref: HubRef, repo_type: str) -> Path:
    return cache_dir() / f"{_TYPES[repo_type]}--{ref.repo.replace('/', '--')}"


def _how_to_get(ref: HubRef, repo_type: str) -> str:
    """The command that fetches ``ref``, each word shell-quoted: it is meant to be pasted."""
    words = ["hf", "download", ref.repo, *(["--revision", ref.revision] if ref.revision else []),
             *(["--repo-type", "dataset"] if repo_type == "dataset" else [])]
    return (f"`{printable(shlex.join(words))}` on a machine with internet (then copy its cache folder "
            f"{printable(shlex.quote(str(cache_dir())))} here)")


def _error_kinds(exc: BaseException) -> set[str]:
    """The class names of ``exc`` (huggingface_hub moved its errors between modules)."""
    return {cls.__name__ for cls in type(exc).__mro__}


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)


def _connection_reason(exc: BaseException) -> str:
    """Why the Hub could not be asked, in a few words: the system's error (``[Errno -2] Name
    or service not known``, a time-out) from anywhere in the chain of exceptions, else the
    innermost one's class and message."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(" ".join(str(e).split()) for e in chain)
    system = re.search(r"\[Errno -?\d+\] [^'\")\[\]]+", text)
    if system:
        return system.group(0).strip()
    if "timed out" in text.lower() or any("Timeout" in type(e).__name__ for e in chain):
        return "timed out"
    return _why(chain[-1])


def _remote_error(ref: HubRef, repo_type: str, what: str, exc: BaseException) -> UserError | None:
    """A one-line error for what the Hub answered (None: not an answer, e.g. no network)."""
    kinds = _error_kinds(exc)
    name, what = printable(ref.text), printable(what)
    if "GatedRepoError" in kinds:
        return UserError(f"{name}: the {repo_type} {ref.repo} is gated: accept its terms on "
                         f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{ref.repo} "
                         "and log in (`hf auth login` or HF_TOKEN)")
    if "RepositoryNotFoundError" in kinds:
        return UserError(f"{name}: no {repo_type} repository {ref.repo} on the Hub (or it is private: log in "
                         "with `hf auth login` or set HF_TOKEN)")
    if "RevisionNotFoundError" in kinds:
        return UserError(f"{name}: the {repo_type} {ref.repo} has no revision '{ref.revision}'")
    if "EntryNotFoundError" in kinds and "LocalEntryNotFoundError" not in kinds:
        return UserError(f"{name}: the {repo_type} {ref.repo} has no file {what}")
    if "HfHubHTTPError" in kinds and getattr(getattr(exc, "response", None), "status_code", None) is not None:
        return UserError(f"{name}: the Hub refused {what}: {_why(exc)}")
    return None


def not_cached(ref: HubRef, repo_type: str, what: str, reason: str | None = None) -> UserError:
    """The one line for a file (``what``; empty: the repository) missing from the cache when
    the Hub cannot be asked: offline by choice (``reason`` None) or unreachable (why)."""
    return _not_cached(ref, repo_type, what, reason)


def _not_cached(ref: HubRef, repo_type: str, what: str, reason: str | None) -> UserError:
    where = f"{printable(what)} of " if what else ""
    if reason is None:  # offline by choice
        return UserError(f"{printable(ref.text)}: {where}the {repo_type} {ref.repo} is not in the Hugging Face cache "
                         f"({cache_dir()}) and HF_HUB_OFFLINE is set: run {_how_to_get(ref, repo_type)}, "
                         "or unset HF_HUB_OFFLINE")
    return UserError(f"{printable(ref.text)}: cannot reach the Hugging Face Hub ({reason}) and {where}the {repo_type} "
                     f"{ref.repo} is not in its cache ({cache_dir()}): run {_how_to_get(ref, repo_type)}")


def _import_hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise UserError("hf:// paths need the huggingface_hub package: pip install huggingface_hub") from None
    return huggingface_hub


def _commit_of(local: str | Path) -> str:
    """The commit sha of a file in the cache (its ``snapshots/<sha>/`` folder)."""
    parts = Path(local).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "snapshots":
            return parts[i + 1]
    raise UserError(f"{local}: not a file of the Hugging Face cache (no snapshots/<commit> folder)")


def download(ref: HubRef, filenames: list[str], repo_type: str = "dataset") -> tuple[str, dict[str, Path]]:
    """(commit sha, {name: local path}) of ``filenames`` at ``ref``'s revision, from the
    cache or the Hub; all from one commit (the first file's, when the revision is a branch
    that moved in between)."""
    hub = _import_hub()
    revision, local_only = ref.revision, offline()
    found: dict[str, Path] = {}
    sha: str | None = None
    for name in filenames:
        try:
            path = hub.hf_hub_download(ref.repo, name, repo_type=repo_type, revision=sha or revision,
                                       cache_dir=str(cache_dir()), local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 (huggingface_hub raises many kinds)
            remote = _remote_error(ref, repo_type, name, exc)
            if remote is not None:
                raise remote from None
            if "HFValidationError" in _error_kinds(exc):
                raise UserError(f"{printable(ref.text)}: {_why(exc)}") from None
            # not cached, and offline by choice or no answer from the Hub (no network, a timeout)
            raise _not_cached(ref, repo_type, name, None if local_only else _connection_reason(exc)) from None
        commit = _commit_of(path)
        if not _SHA.match(commit):
            raise UserError(f"{printable(ref.text)}: the Hugging Face cache names commit {printable(commit, 60)!r}, "
                            "not a 40-digit sha")
        sha = sha or commit
        found[name] = check_cached(ref, repo_type, name, Path(path))
    if sha is None:
        raise UserError(f"{printable(ref.text)}: nothing to read")
    return sha, found


def list_files(ref: HubRef, repo_type: str = "model") -> tuple[str, list[str], bool]:
    """(commit sha, the repository's file names, whether they come from the cache) at
    ``ref``'s revision: asked of the Hub, or read from the cache offline (then only the files
    cached are listed)."""
    hub = _import_hub()
    reason: str | None = None
    if not offline():
        try:
            info = hub.HfApi().repo_info(ref.repo, repo_type=repo_type, revision=ref.revision)
            return str(info.sha), sorted(s.rfilename for s in (info.siblings or [])), False
        except Exception as exc:  # noqa: BLE001
            remote = _remote_error(ref, repo_type, "its file list", exc)
            if remote is not None:
                raise remote from None
            reason = _connection_reason(exc)  # no network: the cache may still hold it
    folder = _repo_folder(ref, repo_type)
    wanted = ref.revision or "main"
    sha = wanted if _SHA.match(wanted) else None
    if sha is None and valid_revision(wanted):
        ref_file = folder / "refs" / wanted
        try:  # a commit sha, or nothing: never a path (an absolute one would lead out of the cache)
            text = ref_file.read_text(encoding="utf-8").strip() if ref_file.is_file() and _inside(ref_file, folder) else ""
        except (OSError, UnicodeDecodeError):
            text = ""
        sha = text if _SHA.match(text) else None
    snapshot = folder / "snapshots" / sha if sha else None
    if snapshot is None or not snapshot.is_dir() or not _inside(snapshot, folder):
        raise _not_cached(ref, repo_type, "", reason)
    names = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*")
                   if p.is_file() and _inside(p, folder))
    if not names:
        raise _not_cached(ref, repo_type, "", reason)
    return sha, names, True


# --- hashes -----------------------------------------------------------------------------------

_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces; remembered per (file, size, mtime)."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with real.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


__all__ = ["HubRef", "PREFIX", "cache_dir", "download", "is_hub", "list_files", "offline", "parse", "sha256_file"]
