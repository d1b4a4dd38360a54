"""Per-snapshot robustness metrics: which are computed, on which snapshots, and what each cost.

A metric is any callable ``metric(net, x, y) -> float | Score`` (``x`` pixels in [0, 1], ``y``
true labels), declared by one entry of the ``metrics`` config: its key names the
``epochs.csv`` column; a :class:`Score` with ``per_image`` rows also writes ``<key>.csv``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from advfit.errors import ConfigError


@dataclass(frozen=True)
class Score:
    """A metric's value for one snapshot, and optionally one row per scored image."""

    value: float
    #: per-image rows (``test_index`` first), written to ``<metric>.csv`` with the epoch
    per_image: pd.DataFrame | None = None


@dataclass
class SnapshotScores:
    """What the metrics gave for one snapshot."""

    values: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, pd.DataFrame] = field(default_factory=dict)


def no_metrics(**settings: object) -> None:
    """``metrics=none``: no metrics, whatever keys an experiment set under ``metrics`` (its
    ``n_images``, say), so switching them off never depends on what else is configured."""
    return None


Metric = Callable[[nn.Module, torch.Tensor, torch.Tensor], "float | Score"]


class SnapshotMetrics:
    """The robustness scores computed for every (k-th) snapshot during the replay.

    Args:
        n_images: the first ``n_images`` test images are scored (a metric with its own
            ``n_images``, such as CLEVER, scores fewer of them).
        every_k: score every k-th snapshot (epochs k, 2k, ...) and the last one; the others
            get NaN. 1 scores every snapshot.
        **metrics: the metrics by column name; a false or null entry is switched off.
    """

    def __init__(self, n_images: int = 500, every_k: int = 1, **metrics: Metric | None) -> None:
        if int(n_images) < 1:
            raise ConfigError(f"metrics.n_images={n_images} is invalid: it must be >= 1")
        if int(every_k) < 1:
            raise ConfigError(f"metrics.every_k={every_k} is invalid: it must be >= 1")
        self.n_images, self.every_k = int(n_images), int(every_k)
        self.metrics: dict[str, Metric] = {}
        for name, metric in metrics.items():
            if metric is None or metric is False:
                continue
            if not callable(metric):
                raise ConfigError(
                    f"metrics.{name}={metric!r} is invalid: a metric entry needs a _target_ "
                    "(a callable metric(net, x, y)), or null/false to switch it off"
                )
            own = getattr(metric, "n_images", None)
            if own is not None and not 1 <= int(own) <= self.n_images:
                raise ConfigError(
                    f"metrics.{name}.n_images={own} is invalid: "
                    f"accepted are 1..metrics.n_images ({self.n_images})"
                )
            self.metrics[name] = metric

    @property
    def columns(self) -> list[str]:
        return list(self.metrics)

    def check_size(self, n_test: int) -> None:
        """Stop before any work when the test set is smaller than what is scored."""
        if self.n_images > n_test:
            raise ConfigError(
                f"metrics.n_images={self.n_images} is invalid: the test set holds {n_test} images"
            )

    def due(self, epoch: int, last_epoch: int) -> bool:
        return epoch % self.every_k == 0 or epoch == last_epoch

    def skipped(self) -> SnapshotScores:
        return SnapshotScores(values={name: math.nan for name in self.metrics})

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> SnapshotScores:
        """Every metric of ``net`` on the first ``n_images`` of ``x`` (pixels in [0, 1])."""
        x, y = x[: self.n_images], y[: self.n_images]
        scores = SnapshotScores()
        for name, metric in self.metrics.items():
            started = time.perf_counter()
            result = metric(net, x, y)
            scores.seconds[name] = time.perf_counter() - started
            if isinstance(result, Score):
                scores.values[name] = float(result.value)
                if result.per_image is not None:
                    scores.per_image[name] = result.per_image
            else:
                scores.values[name] = float(result)
        return scores
