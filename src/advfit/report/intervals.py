"""Means over folds with 95% Student-t intervals, and which side of a threshold they lie on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

HOLDS, FAILS, UNDETERMINED = "holds", "does not hold", "undetermined"


@dataclass(frozen=True)
class Interval:
    """Mean over folds with its 95% Student-t confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    @classmethod
    def over(
        cls,
        values: list[float],
        confidence: float = 0.95,
        bounds: tuple[float, float] | None = None,
    ) -> Interval:
        """The t interval of the non-NaN ``values``; ``bounds`` clip it to a quantity's range
        (rho lies in [-1, 1])."""
        x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
        if len(x) == 0:
            return cls(math.nan, math.nan, math.nan, 0)
        mean = float(x.mean())
        if len(x) < 2:
            return cls(mean, math.nan, math.nan, len(x))
        half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        low, high = mean - half, mean + half
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
        return cls(mean, low, high, len(x))

    def side(self, threshold: float, above_holds: bool) -> str:
        """HOLDS when the interval lies on the claim's side of ``threshold`` (above it, or
        at or below it), FAILS on the other, UNDETERMINED when it spans it or is undefined."""
        if math.isnan(self.low):
            return UNDETERMINED
        if above_holds:
            return (
                HOLDS if self.low > threshold else FAILS if self.high < threshold else UNDETERMINED
            )
        return HOLDS if self.high <= threshold else FAILS if self.low > threshold else UNDETERMINED

    def __str__(self) -> str:
        if math.isnan(self.low):
            return f"{self.mean:+.3f} (n={self.n}, no interval)"
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def folds_to_decide(values: list[float], threshold: float, most: int = 1000) -> str:
    """How many folds would decide a row whose interval spans ``threshold``, if its mean and
    spread held: the fewest n with t(0.975, n - 1) * s / sqrt(n) below |mean - threshold|
    (a planning figure, not a promise: more folds move the mean too)."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) < 2:
        return ""
    gap, s = abs(float(x.mean()) - threshold), float(x.std(ddof=1))
    if s == 0:
        return ""
    if gap == 0:
        return "; its mean sits on the threshold, so no number of folds would decide it"
    for n in range(len(x) + 1, most + 1):
        if stats.t.ppf(0.975, n - 1) * s / math.sqrt(n) < gap:
            return f"; at this mean and spread about {n} folds would decide it"
    return f"; at this mean and spread more than {most} folds would decide it"


def judge(
    interval: Interval,
    values: list[float],
    threshold: float,
    above_holds: bool,
    *,
    holds: str,
    fails: str,
    spans: str,
) -> tuple[str, str]:
    """The word ``interval`` gives against ``threshold`` (:meth:`Interval.side`) and its reason:
    ``holds``, ``fails``, or ``spans`` followed by how many folds of ``values`` would decide it."""
    verdict = interval.side(threshold, above_holds)
    spans += folds_to_decide(values, threshold)
    return verdict, {HOLDS: holds, FAILS: fails, UNDETERMINED: spans}[verdict]
