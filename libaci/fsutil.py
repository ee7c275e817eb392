"""Small filesystem primitives the store is built from: locks, atomic files.

Everything that becomes visible in the store goes through :func:`atomic_write`
or a rename from the store's own temporary directory, so a process killed at
any moment leaves either the old state or the new one, never half of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator

from libaci.errors import ConflictError, StoreError


@contextlib.contextmanager
def flocked(path: str, *, exclusive: bool = True, blocking: bool = True,
            what: str = "") -> Iterator[int]:
    """Hold a flock on ``path`` (a lock file or directory) for the block."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    if not os.path.isdir(path):
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        raise StoreError(f"cannot open lock {path}: {e.strerror}") from None
    try:
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if not blocking:
            op |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            raise ConflictError(f"{what or path} is locked by another process") from None
        yield fd
    finally:
        os.close(fd)


def try_flock(fd: int, exclusive: bool = True) -> bool:
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def mkdir_shared(path: str, mode: int = 0o700) -> None:
    """Make ``path`` (its parent exists) unless it is there: a directory other writers
    may remove when they leave it empty, so the caller opens in it and retries on ENOENT.

    Not ``os.makedirs(exist_ok=True)``: when the directory goes between its mkdir
    (EEXIST) and its isdir check, makedirs raises FileExistsError.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, mode: int = 0o644, tmpdir: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    d = tmpdir or os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"cannot write {path}: {e.strerror}") from None
    fsync_dir(os.path.dirname(path) or ".")


def rmtree(path: str) -> None:
    """Remove a tree without following symlinks, even with read-only dirs in it."""
    try:  # an empty directory (a fetch's staging, once committed) needs no shutil
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    import shutil

    def onerror(func, p, exc):  # type: ignore[no-untyped-def]
        err = exc[1] if isinstance(exc, tuple) else exc
        if isinstance(err, FileNotFoundError):
            return
        if isinstance(err, PermissionError) or getattr(err, "errno", None) == errno.EACCES:
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(p), 0o700)
                func(p)
                return
        raise err

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path, onerror=onerror)
