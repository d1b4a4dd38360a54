"""Did a run learn? A stated rule, so that a network that never left chance is named and left
out of the verdict and the mean curves instead of being counted as evidence.

A run did not learn when either holds:

- its validation accuracy never rose above the chance band by more than ``margin``: the
  band's upper end is the 97.5th percentile of the accuracy of guessing (binomial with
  success 1/K over the n validation images; 0.119 for K = 10 and n = 1,000);
- its training loss stayed within ``loss_tolerance`` of ln K (the loss of predicting every
  class with probability 1/K) at every epoch.

A snapshot that predicts one class for every test image is a separate matter, decided per
snapshot by the replay: its ASR is undefined (NaN), not 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from advfit.errors import ConfigError


@dataclass(frozen=True)
class LearningRule:
    """The rule's two thresholds (the report's ``--learned-margin`` and
    ``--learned-loss-tolerance``)."""

    margin: float = 0.0
    loss_tolerance: float = 0.01

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ConfigError(
                f"learned margin={self.margin} is invalid: a validation accuracy margin "
                "above the chance band, 0 or more"
            )
        if not (math.isfinite(self.loss_tolerance) and self.loss_tolerance > 0):
            raise ConfigError(
                f"learned loss tolerance={self.loss_tolerance} is invalid: a distance from "
                "ln K in nats, more than 0"
            )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def chance_band(n_classes: int, n_val: int, confidence: float = 0.95) -> float:
    """The upper end of the ``confidence`` binomial interval of guessing's accuracy."""
    return float(stats.binom.ppf(0.5 + confidence / 2, int(n_val), 1 / int(n_classes)) / n_val)


def not_learned(
    epochs: pd.DataFrame, n_classes: int, n_val: int, rule: LearningRule = LearningRule()
) -> str | None:
    """Why the run whose ``epochs.csv`` this is did not learn, or None when it did."""
    band = chance_band(n_classes, n_val)
    best = float(epochs["val_acc"].max())
    if best <= band + rule.margin:
        margin = f" + {rule.margin:g}" if rule.margin else ""
        return (
            f"validation accuracy <= {best:.3f}, chance band up to {band:.3f}{margin} "
            f"({n_classes} classes, {n_val} validation images)"
        )
    chance_loss = math.log(n_classes)
    loss = epochs["train_loss"].astype(float)
    if (loss - chance_loss).abs().max() <= rule.loss_tolerance:
        return (
            f"training loss {loss.min():.4f}..{loss.max():.4f} at every epoch, within "
            f"{rule.loss_tolerance:g} of ln {n_classes} = {chance_loss:.4f}"
        )
    return None


def learning_summary(
    epochs: pd.DataFrame, n_classes: int, n_val: int, rule: LearningRule = LearningRule()
) -> dict:
    """What ``summary.json`` records under ``learned``."""
    reason = not_learned(epochs, n_classes, n_val, rule)
    return {
        "learned": reason is None,
        "reason": reason,
        "n_classes": int(n_classes),
        "n_val": int(n_val),
        "chance_band": chance_band(n_classes, n_val),
        "rule": rule.as_dict(),
    }


def judge_recorded(
    summary: dict, epochs: pd.DataFrame, rule: LearningRule = LearningRule()
) -> str | None:
    """Why a finished run did not learn under ``rule``, from its epochs and the class and
    validation counts its ``summary.json`` recorded; None when it learned, or when it was
    written before advfit recorded them (such runs count as before)."""
    recorded = summary.get("learned")
    if not isinstance(recorded, dict) or "n_classes" not in recorded:
        return None
    k, n = recorded.get("n_classes"), recorded.get("n_val")
    if not (isinstance(k, int) and isinstance(n, int) and k >= 2 and n >= 1):
        raise ValueError(
            f"summary.json's learned.n_classes={k!r} and learned.n_val={n!r} are invalid: "
            "integers, at least 2 classes and 1 validation image"
        )
    return not_learned(epochs, k, n, rule)


#: The training sets advfit reads by name (10 classes each), for runs of earlier versions that
#: recorded no class and validation counts: (classes, training images).
KNOWN_DATA = {
    "fashion_mnist": (10, 60_000),
    "mnist": (10, 60_000),
    "cifar10": (10, 50_000),
    "stl10": (10, 5_000),
}


def counts_from_config(config: dict) -> tuple[int, int] | None:
    """(classes, validation images) of a run from its saved config alone: the classes of its
    data (a data set advfit knows by name, or a custom ``.npz``'s training labels), the
    validation fold its training subset and fold count leave. None when they cannot be told."""
    data = config.get("data") or {}
    n_folds = int(config.get("n_folds") or data.get("n_folds") or 5)
    known = KNOWN_DATA.get(str(data.get("name")))
    if known is not None:
        classes, train = known
    elif data.get("path") and Path(str(data["path"])).is_file():
        try:
            with np.load(str(data["path"]), allow_pickle=False) as arrays:
                labels = arrays["y_train"]
        except (OSError, ValueError, KeyError):
            return None
        classes, train = len(np.unique(labels)), len(labels)
    else:
        return None
    subset = data.get("train_subset")
    train = min(train, int(subset)) if subset else train
    return classes, max(1, train // n_folds)


def judge_after_the_fact(
    config: dict, epochs: pd.DataFrame, rule: LearningRule = LearningRule()
) -> str | None:
    """Why a run of an earlier version (no ``learned`` record) did not learn, judged now
    from its epochs.csv and :func:`counts_from_config`; None when it learned or cannot be
    judged."""
    counts = counts_from_config(config)
    return None if counts is None else not_learned(epochs, *counts, rule)
