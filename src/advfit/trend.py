"""How a replayed column moves over the epochs: the statistics the report's verdict and the
W&B summary share.

The attacks are crafted on the best epoch's snapshot, so that epoch's ASR is white-box, not
a replay: it enters neither statistic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

#: The first epoch rho reads (the paper discards the unstable first ones): the verdict's
#: default (``Thresholds.first_epoch``), and the W&B summary's ``<attack>/rho_from_epoch_<n>``.
RHO_FIRST_EPOCH = 5
RHO_SUMMARY_KEY = f"rho_from_epoch_{RHO_FIRST_EPOCH}"


def rho_from(epochs: pd.DataFrame, column: str, first_epoch: int, crafted_at: int) -> float:
    """Spearman rho(test accuracy, ``column``) over the epochs from ``first_epoch`` on but
    ``crafted_at`` (the best epoch: its ASR is white-box, not replayed); NaN with fewer than 3
    such epochs or a constant series."""
    e = epochs[(epochs["epoch"] >= first_epoch) & (epochs["epoch"] != crafted_at)]
    e = e.dropna(subset=["test_acc", column])
    if len(e) >= 3 and e["test_acc"].nunique() > 1 and e[column].nunique() > 1:
        return float(stats.spearmanr(e["test_acc"], e[column]).statistic)
    return math.nan


def change_after(epochs: pd.DataFrame, column: str, best: int) -> float:
    """How much ``column`` changes across the epochs after ``best``: the slope of a
    least-squares line through them times their span (every epoch counts, so one noisy epoch
    moves it less than a difference of two would). NaN with fewer than 2 such epochs."""
    e = epochs[epochs["epoch"] > best].dropna(subset=[column])
    if len(e) < 2:
        return math.nan
    slope = np.polyfit(e["epoch"].to_numpy(float), e[column].to_numpy(float), 1)[0]
    return float(slope * (e["epoch"].max() - e["epoch"].min()))
