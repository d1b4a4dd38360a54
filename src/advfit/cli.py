"""What the entry points share: resolvers, and user errors reported without a traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from advfit.config import register_resolvers
from advfit.errors import user_error

log = logging.getLogger("advfit")


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
