"""What the entry points share: resolvers, argument spellings, and user errors reported
without a traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from advfit.config import register_resolvers
from advfit.errors import user_error

log = logging.getLogger("advfit")

# Spellings the command line accepts for a config group that Hydra itself would refuse:
# ``metrics=null`` (no metrics) is the group option ``metrics=none``.
_GROUP_NULLS = {"metrics=null": "metrics=none"}


def normalize_argv(argv: list[str]) -> list[str]:
    """The command line with the spellings above rewritten for Hydra."""
    return [argv[0], *(_GROUP_NULLS.get(a, a) for a in argv[1:])]


def reports_user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Exit with status 2 and the error's message when ``task`` fails on a user's mistake."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            log.error("%s", cause)
            sys.exit(2)

    return wrapper


register_resolvers()
