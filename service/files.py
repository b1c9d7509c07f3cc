"""Files written so that no reader ever sees half of one: a temporary name, fsync, then a rename or
a link into place, and the folder fsynced after. Used by the model store and its pointers."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.errors import StorageFull, is_out_of_storage


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn a full (or read-only) disk into ``StorageFull``; other OS errors pass through."""
    try:
        yield
    except OSError as exc:
        if is_out_of_storage(exc):
            raise StorageFull(
                f"{what} failed: {exc.strerror or exc} on the model store's disk; nothing partial was "
                "kept; free space there and try again"
            ) from exc
        raise


def make_folder(folder: Path) -> None:
    """``mkdir -p``, where a file in the way is said as such (mkdir's own word for it is "File
    exists")."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)


def open_allocated(path: str | Path, size: int) -> int:
    """A read-write descriptor of ``path`` (made if absent) whose first ``size`` bytes have their
    disk blocks: writes through a map of it never meet a full disk, which would be a SIGBUS.
    Raises ``OSError`` (the descriptor closed) when the disk cannot give them."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(folder: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp creates 0600; workers and other machines may read the store as other users.
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        # A full disk fails the write or the close: a partial temp file would hold the space.
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; with ``exclusive``, fail if ``path`` exists."""
    tmp = _write_temp(path.parent, data)
    try:
        if exclusive:
            os.link(tmp, path)  # raises FileExistsError: the claim is atomic
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
