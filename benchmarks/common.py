"""Helpers for the benchmarks: interleaved repeats, medians with their spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Run each contender once per round, ``repeats`` rounds; seconds per run, by name."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def ratios(times: dict[str, list[float]], numerator: str, denominator: str) -> list[float]:
    """Per-round ratios, so that a noisy round affects both contenders alike."""
    return [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]
