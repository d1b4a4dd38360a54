"""A verdict the paper leaves to the reader: does its claim hold on this sweep?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from advfit.report.collect import Run


@dataclass
class Thresholds:
    """When the claim counts as holding (all configurable on the command line).

    first_epoch: epochs before it are left out (the paper discards the unstable first ones).
    min_rho: normal regime: mean Spearman rho(test_acc, ASR) must be at least this.
    max_asr_rise: overfit regime: ASR may rise by at most this from the best epoch to the last.
    min_val_drop: overfit regime: validation accuracy must fall by at least this from the
        best epoch to the last.
    """

    first_epoch: int = 5
    min_rho: float = 0.3
    max_asr_rise: float = 0.02
    min_val_drop: float = 0.01


def attack_columns(runs: list[Run]) -> list[str]:
    return [c for c in runs[0].epochs.columns if c.startswith("asr_")]


def verdict(regime: str, runs: list[Run], t: Thresholds) -> pd.DataFrame:
    """One row per attack: rho mean/std over folds, ASR change best -> last, and whether
    the paper's claim holds for this regime."""
    rows = []
    for column in attack_columns(runs):
        rhos, rises, drops = [], [], []
        for run in runs:
            e = run.epochs[run.epochs["epoch"] >= t.first_epoch].dropna(subset=["test_acc", column])
            if len(e) >= 3 and e["test_acc"].nunique() > 1 and e[column].nunique() > 1:
                rhos.append(spearmanr(e["test_acc"], e[column]).statistic)
            best = int(run.summary["best_epoch"])
            epochs = run.epochs.set_index("epoch")
            last = int(epochs.index.max())
            rises.append(epochs.loc[last, column] - epochs.loc[best, column])
            drops.append(epochs.loc[best, "val_acc"] - epochs.loc[last, "val_acc"])
        rho = float(np.mean(rhos)) if rhos else float("nan")
        rise, drop = float(np.mean(rises)), float(np.mean(drops))
        if regime == "normal":
            if not rhos:
                holds = None
                claim = f"fewer than 3 varying epochs from epoch {t.first_epoch} on"
            else:
                holds = bool(rho >= t.min_rho)
                claim = f"ASR rises with test accuracy (rho {rho:+.2f} {'>=' if holds else '<'} {t.min_rho})"
        elif all(int(r.summary["best_epoch"]) == int(r.epochs["epoch"].max()) for r in runs):
            holds = None
            claim = "the best epoch is the last in every fold, so nothing follows it"
        else:
            holds = bool(rise <= t.max_asr_rise and drop >= t.min_val_drop)
            claim = (
                f"ASR stable or falling (change {rise:+.3f}, allowed <= {t.max_asr_rise}) while "
                f"validation accuracy falls (by {drop:+.3f}, needed >= {t.min_val_drop})"
            )
        rows.append(
            {
                "attack": column[len("asr_") :],
                "rho_mean": rho,
                "rho_std": float(np.std(rhos, ddof=1)) if len(rhos) > 1 else float("nan"),
                "asr_change_best_to_last": rise,
                "holds": {True: "holds", False: "does not hold", None: "undetermined"}[holds],
                "claim": claim,
            }
        )
    return pd.DataFrame(rows)
