"""Errors a user can fix; the entry points print their message without a traceback."""

from __future__ import annotations


class DataError(ValueError):
    """A data set is missing, unreadable or malformed; the message says what to do."""


class ConfigError(ValueError):
    """A config value is invalid; the message names it and what is accepted."""


class RunError(RuntimeError):
    """A run directory is not usable as asked (not a run, no snapshots, a corrupt file)."""


UserError = (ConfigError, DataError, RunError)


def first_line(err: BaseException) -> str:
    """An error's message in one line (its first), or its type's name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def user_error(exc: BaseException) -> BaseException | None:
    """The user-fixable error behind ``exc`` (Hydra wraps errors raised while instantiating)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__
    return None
