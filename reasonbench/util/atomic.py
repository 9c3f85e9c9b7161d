"""Files that are either the old version or the whole new one, never half of either.

Everything reasonbench writes that a later step reads (records, checkpoints, manifests, the
site) goes through ``atomic_writer``: a temporary file in the destination's own folder (so the
rename never crosses filesystems), flushed and fsynced, then renamed over the destination, and
the folder fsynced so the rename itself survives a power cut. A failure at any point (a full
disk, a signal) removes the temporary and leaves the old file as it was.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

TEMP_SUFFIX = ".tmp"
# errors that are the machine's fault, not the user's: exit 1, not 2
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}


def current_umask() -> int:
    """The process's umask (reading it means setting it: it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str | Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary handle; on a clean exit its bytes replace ``path`` atomically with
    permissions ``mode`` (less the umask, as ``open`` would give)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_writer(path, mode) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def probe_folder(folder: str | Path) -> None:
    """Raise the OSError that writing into ``folder`` (made as needed) would meet; creates
    nothing: the nearest existing folder above it must take a new file."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(existing))
    try:
        fd, probe = tempfile.mkstemp(prefix=".reasonbench-write-test.", dir=existing)
    except OSError as exc:  # named by the folder, not by the probe's random name
        raise OSError(exc.errno, exc.strerror, str(existing)) from None
    os.close(fd)
    os.unlink(probe)


def stale_temporaries(folder: Path, name: str) -> list[Path]:
    """Temporaries ``atomic_writer`` left beside ``folder/name`` when its process was killed."""
    return sorted(folder.glob(f".{name}.*{TEMP_SUFFIX}")) if folder.is_dir() else []
