"""Errors a user can fix; the entry points print their message without a traceback."""

from __future__ import annotations

import errno
import sys
from typing import NoReturn


class DataError(ValueError):
    """A data set is missing, unreadable or malformed; the message says what to do."""


class ConfigError(ValueError):
    """A config value is invalid; the message names it and what is accepted."""


class RunError(RuntimeError):
    """A run directory is not usable as asked (not a run, no snapshots, a corrupt file)."""


UserError = (ConfigError, DataError, RunError)


def refuse(message: object) -> NoReturn:
    """Stop with one line on stderr and exit status 2: a user's mistake, refused before any
    work (the entry points', the sweeper's and the data command's refusals alike)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def first_line(err: BaseException) -> str:
    """An error's message in one line (its first), or its type's name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class DiskFull(OSError):
    """A write failed for want of space; the message says what to do."""


#: What a full disk (or quota) says, as an errno or in the words torch's writer uses.
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_WORDS = ("No space left on device", "Disk quota exceeded")


def disk_full(exc: BaseException, where: object = None) -> DiskFull | None:
    """A :class:`DiskFull` when ``exc`` or an error behind it (its cause or context) is a full
    disk, else None; ``where``: the file being written, when the error does not name it."""
    if isinstance(exc, DiskFull):
        return exc
    seen, visited = exc, set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        full = isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS
        if full or any(words in str(seen) for words in _FULL_WORDS):
            where = getattr(seen, "filename", None) or where
            return DiskFull(
                f"no space left on the device{f' writing {where}' if where else ''}: free "
                "some space and run the same command again; it resumes after the last "
                "completed epoch (files are written whole or not at all)"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def user_error(exc: BaseException) -> BaseException | None:
    """The user-fixable error behind ``exc`` (Hydra wraps errors raised while instantiating),
    a full disk included."""
    seen = exc
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__
    return disk_full(exc)
