"""The L_p norms a metric may be configured with, parsed once at the config boundary."""

from __future__ import annotations

import math

from advfit.errors import ConfigError

NORMS = {"inf": math.inf, "2": 2.0, "1": 1.0}


def parse_norm(norm: str | int | float) -> float:
    """``inf``, 2 or 1 as a float; anything else is an error naming the value."""
    key = str(norm).lower().replace(".0", "")
    if key in ("np.inf", "infinity"):
        key = "inf"
    if key not in NORMS:
        raise ConfigError(f"norm={norm!r} is invalid: accepted are 1, 2 and inf")
    return NORMS[key]
