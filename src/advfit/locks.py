"""Exclusive locks on files, shared by run directories, sweeps and data preparation.

``flock`` where the file system has it; where it does not (some network file systems answer
ENOLCK or EOPNOTSUPP), a warning and a lock file created with ``O_EXCL`` instead, so a missing
``flock`` is never mistaken for a lock held by another process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: Errors with which a file system says it has no ``flock`` (as opposed to "it is held").
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTSUP}
#: How often a waiting process looks again at a lock file (the fallback only).
POLL_SECONDS = 0.5


class LockHeld(RuntimeError):
    """The lock is held by another process; the message names it as it named itself."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def holder_line() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _flock(handle, wait: bool) -> bool:
    """Lock ``handle``; False when the file system has no flock. Raises BlockingIOError
    when it is held and ``wait`` is false."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        raise
    except OSError as err:
        if err.errno in NO_FLOCK:
            return False
        raise
    return True


def _alive(holder: str) -> bool:
    """Whether the process a fallback lock file names still runs (unknown on another host:
    assumed alive)."""
    parts = holder.split()
    if len(parts) < 4 or parts[0] != "pid" or parts[2] != "on":
        return True
    if parts[3] != socket.gethostname():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


@contextlib.contextmanager
def _exclusive_file(path: Path, wait: bool) -> Iterator[None]:
    """The fallback: ``<path>.held``, created exclusively and removed on release. A file left
    by a process of this host that no longer runs is taken over."""
    held = path.with_name(path.name + ".held")
    while True:
        try:
            fd = os.open(held, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                holder = held.read_text().strip() or "another process"
            except FileNotFoundError:
                continue
            if not _alive(holder):
                log.warning("%s was left by %s, which no longer runs; taking it over", held, holder)
                held.unlink(missing_ok=True)
                continue
            if not wait:
                raise LockHeld(held, holder) from None
            time.sleep(POLL_SECONDS)
    with os.fdopen(fd, "w") as handle:
        handle.write(holder_line() + "\n")
    try:
        yield
    finally:
        held.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: str | Path, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when absent) for the ``with`` block.

    ``wait=False`` raises :class:`LockHeld` at once when another process holds it; ``wait=True``
    blocks until it is free. The holder writes its pid and host into the file, which the
    message of the next one names.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115  (held until the context ends)
    try:
        try:
            locked = _flock(handle, wait)
        except BlockingIOError:
            handle.seek(0)
            raise LockHeld(path, handle.read().strip() or "another process") from None
        if not locked:
            log.warning(
                "the file system of %s has no working flock; using the lock file %s.held "
                "instead (a process killed on another host may leave it behind: delete it then)",
                path,
                path,
            )
            with _exclusive_file(path, wait):
                yield
            return
        handle.seek(0)
        handle.truncate()
        handle.write(holder_line() + "\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
    finally:
        handle.close()
