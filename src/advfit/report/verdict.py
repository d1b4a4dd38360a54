"""A verdict the paper leaves to the reader: does its claim hold on this sweep, and how sure is it?

The attacks are crafted on the best epoch's snapshot, so that epoch's ASR is the attacks'
white-box success rate, not a replay: it enters neither statistic (in the normal regime the
best epoch is also the most accurate, so counting it would add a point high on both axes by
construction; in the overfitting regime the ASR could never rise above it).

Per fold: Spearman rho(test accuracy, ASR) over the replayed epochs from ``first_epoch`` on;
the ASR change across the epochs after the best (a least-squares line through them: its slope
times their span); the validation accuracy's drop from the best epoch to the last and the
validation loss's rise from its minimum. Across folds: the mean with a 95% Student-t
confidence interval over the folds (mean +- t(0.975, n - 1) * s / sqrt(n), s with ddof 1) and
how many folds agree. The claim is decided from the interval alone: it holds when the whole
interval is on the claim's side of the threshold, does not hold when the whole interval is on
the other side, and is undetermined when the interval spans the threshold or there are too
few folds or epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from advfit.config import check_claim
from advfit.identity import Claim, flat_config
from advfit.learning import LearningRule
from advfit.report.collect import Run
from advfit.report.intervals import (
    HOLDS,
    UNDETERMINED,
    Interval,
    judge,
)
from advfit.rundir import GIVEN_CORRECT
from advfit.trend import RHO_FIRST_EPOCH, change_after, rho_from


@dataclass
class Thresholds:
    """When the claim counts as holding (all configurable on the command line): what each
    threshold means is :data:`THRESHOLD_HELP`, which ``python -m advfit.report --help``
    prints."""

    first_epoch: int = RHO_FIRST_EPOCH
    min_rho: float = 0.3
    max_asr_rise: float = 0.02
    min_val_drop: float = 0.01
    min_val_loss_rise: float = 0.1
    min_robust_drop: float = 0.01
    learned_margin: float = LearningRule.margin
    learned_loss_tolerance: float = LearningRule.loss_tolerance

    def rule(self) -> LearningRule:
        """The learning rule these thresholds set (ConfigError for values out of range)."""
        return LearningRule(self.learned_margin, self.learned_loss_tolerance)


#: What each threshold of :class:`Thresholds` means, for ``--help`` and the docs.
THRESHOLD_HELP = {
    "first_epoch": "epochs before it are left out of rho (the paper discards the unstable "
    "first ones)",
    "min_rho": "generalization: Spearman rho(test accuracy, ASR) must lie above this for the "
    "claim to hold (the whole 95%% interval)",
    "max_asr_rise": "overfitting: the ASR may rise by at most this across the epochs after "
    "the best (the least-squares line's change)",
    "min_val_drop": "overfitting: the runs overfit when validation accuracy falls by more "
    "than this from the best epoch to the last ...",
    "min_val_loss_rise": "... or when validation loss ends more than this fraction above its "
    "minimum (else the claim is not tested: undetermined)",
    "min_robust_drop": "robust overfitting: holds when robust validation accuracy falls by "
    "more than this across the epochs after its peak",
    "learned_margin": "a run did not learn when its validation accuracy never rises more "
    "than this above the chance band (such runs are left out)",
    "learned_loss_tolerance": "... or when its training loss stays within this of ln K "
    "(K classes) at every epoch",
}


#: The name of robust overfitting's one row (it reads robust validation accuracy, no attack).
ROBUST_CLAIM = Claim.ROBUST_OVERFITTING.value


def columns(claim: Claim, runs: list[Run]) -> dict[str, str]:
    """What the verdict decides for a group judged by ``claim``, by name: each attack's ASR
    column (both readings), or robust validation accuracy for robust overfitting."""
    if not RULES[claim].reads_asr:
        every = all("val_robust_acc" in run.epochs.columns for run in runs)
        return {ROBUST_CLAIM: "val_robust_acc"} if every else {}
    return {column[len("asr_") :]: column for column in attack_columns(runs)}


def claim_of(runs: list[Run]) -> tuple[Claim, bool]:
    """The claim a group's runs are judged by (their saved config's ``regime.claim``), and
    whether it was read from the regime's name (runs of an earlier version, which saved
    none); a ConfigError naming the run and the claims there are when it has none."""
    run = runs[0]
    flat = flat_config(run.config)
    where = f"{run.root / '.hydra' / 'config.yaml'} (regime {run.summary.get('regime')})"
    check_claim(flat.get("regime.claim"), where)
    saved = "claim" in (run.config.get("regime") or {})
    return Claim(flat["regime.claim"]), not saved


#: The verdict's two readings of an attack's ASR (its ``asr`` column): the paper's, and the
#: ASR among the sources each snapshot classifies correctly (``asr_<attack>_given_correct``).
PAPERS, CONDITIONAL = "paper's", "given correct"


def reading(name: str) -> tuple[str, str]:
    """(attack, reading) of a claim's name: ``fgsm`` -> (fgsm, paper's), ``fgsm_given_correct``
    -> (fgsm, given correct); the adversarial regime's claim has no ASR reading ("")."""
    if name == ROBUST_CLAIM:
        return "", ""
    if name.endswith(GIVEN_CORRECT):
        return name[: -len(GIVEN_CORRECT)], CONDITIONAL
    return name, PAPERS


def attack_columns(runs: list[Run]) -> list[str]:
    """The ASR columns every run of the group has (a run replayed with fewer attacks by
    evaluate.py leaves the others out of the group's verdict)."""
    shared = [c for c in runs[0].epochs.columns if c.startswith("asr_")]
    return [c for c in shared if all(c in run.epochs.columns for run in runs)]


def per_fold(run: Run, column: str, t: Thresholds) -> dict[str, float]:
    """One fold's rho and changes after the best epoch (NaN where too few epochs)."""
    epochs = run.epochs.set_index("epoch")
    best, last = int(run.summary["best_epoch"]), int(epochs.index.max())
    out = {
        "fold": run.fold,
        "rho": rho_from(run.epochs, column, t.first_epoch, crafted_at=best),
        "asr_change": change_after(run.epochs, column, best),
        "val_drop": float(epochs.loc[best, "val_acc"] - epochs.loc[last, "val_acc"]),
        "val_loss_rise": float(epochs.loc[last, "val_loss"] / epochs["val_loss"].min() - 1),
        "best_is_last": best == last,
    }
    if column == "val_robust_acc":  # the adversarial regime: no ASR is read
        # The fall after the peak as the least-squares change across the epochs after it: the
        # peak itself, a maximum over noisy epochs, is left out, so noise alone gives no fall.
        out.update(
            rho=math.nan,
            asr_change=math.nan,
            robust_peak=float(epochs.loc[best, column]),
            robust_drop=-change_after(run.epochs, column, best),
        )
    return out


def _agree(agrees: pd.Series) -> str:
    """ "k of n folds": the folds on the claim's side (``fold_numbers``' ``agrees``) among
    those with a number (None: none)."""
    kept = agrees.dropna()
    return f"{int(kept.astype(bool).sum())} of {len(kept)} folds"


def decide(claim: Claim, folds: pd.DataFrame, t: Thresholds) -> tuple[str, list[str], dict]:
    """The verdict on ``claim`` for one attack, every reason for it, and its numbers."""
    numbers = {
        "rho": Interval.over(folds["rho"].tolist(), bounds=(-1.0, 1.0)),
        "asr_change": Interval.over(folds["asr_change"].tolist()),
        "val_drop": Interval.over(folds["val_drop"].tolist()),
        "val_loss_rise": Interval.over(folds["val_loss_rise"].tolist()),
        "agree": _agree(folds["agrees"]),
    }
    if "robust_drop" in folds:
        numbers["robust_drop"] = Interval.over(folds["robust_drop"].tolist())
    word, reasons = RULES[claim].decide(folds, numbers, t)
    return word, reasons, numbers


def decide_normal(folds: pd.DataFrame, numbers: dict, t: Thresholds) -> tuple[str, list[str]]:
    """Normal regime: ASR rises with test accuracy when rho's interval lies above ``min_rho``."""
    rho, agree = numbers["rho"], numbers["agree"]
    if rho.n < 2:
        return UNDETERMINED, [
            f"rho needs at least 3 varying replayed epochs from epoch {t.first_epoch} on "
            f"in at least 2 folds; {rho.n} fold(s) have them"
        ]
    verdict, reason = judge(
        rho,
        folds["rho"].tolist(),
        t.min_rho,
        above_holds=True,
        holds=f"ASR rises with test accuracy: rho {rho} lies above {t.min_rho}",
        fails=f"ASR does not rise with test accuracy: rho {rho} lies below {t.min_rho}",
        spans=f"rho {rho} spans the threshold {t.min_rho}",
    )
    return verdict, [f"{reason} ({agree} at or above it)"]


def decide_overfit(folds: pd.DataFrame, numbers: dict, t: Thresholds) -> tuple[str, list[str]]:
    """Overfitting regime: when the runs overfit (validation accuracy falls or its loss rises
    clearly), the ASR must not rise by more than ``max_asr_rise`` after the best epoch."""
    rise, drop, loss_rise = numbers["asr_change"], numbers["val_drop"], numbers["val_loss_rise"]
    if folds["best_is_last"].all():
        return UNDETERMINED, ["the best epoch is the last in every fold: no overfitting to test"]
    if drop.n < 2:
        return UNDETERMINED, [f"{drop.n} fold(s): an interval needs at least 2"]
    if rise.n < 2:
        return UNDETERMINED, [
            f"{rise.n} fold(s) have at least 2 epochs after the best: the ASR change "
            "needs at least 2 folds"
        ]
    by_accuracy = drop.side(t.min_val_drop, above_holds=True) == HOLDS
    by_loss = loss_rise.side(t.min_val_loss_rise, above_holds=True) == HOLDS
    if not (by_accuracy or by_loss):
        return UNDETERMINED, [
            f"validation accuracy after the best epoch falls by {drop}, not clearly more "
            f"than {t.min_val_drop}, and validation loss ends {loss_rise} above its "
            f"minimum (relative), not clearly more than {t.min_val_loss_rise}: the runs "
            "do not clearly overfit"
        ]
    overfit = (
        f"validation accuracy falls by {drop} after the best epoch"
        if by_accuracy
        else f"validation loss ends {loss_rise} above its minimum (relative; validation "
        f"accuracy falls by {drop} after the best epoch)"
    )
    verdict, reason = judge(
        rise,
        folds["asr_change"].tolist(),
        t.max_asr_rise,
        above_holds=False,
        holds=f"ASR does not rise as the network overfits: its change after the best epoch, "
        f"{rise}, stays at or below {t.max_asr_rise}",
        fails=f"ASR rises as the network overfits: its change after the best epoch, {rise}, "
        f"lies above {t.max_asr_rise}",
        spans=f"ASR change after the best epoch {rise} spans the threshold {t.max_asr_rise}",
    )
    return verdict, [f"the runs overfit: {overfit}", f"{reason} ({numbers['agree']})"]


def decide_adversarial(folds: pd.DataFrame, numbers: dict, t: Thresholds) -> tuple[str, list[str]]:
    """Adversarial regime: robust overfitting holds when robust validation accuracy falls by
    more than ``min_robust_drop`` across the epochs after its peak (the best epoch; the
    least-squares change, as the overfitting regime's ASR change)."""
    drop = numbers["robust_drop"]
    if folds["best_is_last"].all():
        return UNDETERMINED, [
            "robust validation accuracy peaks at the last epoch in every fold: no fall to test"
        ]
    if drop.n < 2:
        return UNDETERMINED, [
            f"{drop.n} fold(s) have at least 2 epochs after the peak: an interval needs 2"
        ]
    fall = f"robust validation accuracy falls by {drop} across the epochs after its peak"
    verdict, reason = judge(
        drop,
        folds["robust_drop"].tolist(),
        t.min_robust_drop,
        above_holds=True,
        holds=f"{fall}, more than {t.min_robust_drop}: the network overfits robustly",
        fails=f"{fall}, less than {t.min_robust_drop}: no robust overfitting",
        spans=f"the fall of robust validation accuracy after its peak, {drop}, spans the "
        f"threshold {t.min_robust_drop}",
    )
    return verdict, [f"{reason} ({numbers['agree']} above it)"]


@dataclass(frozen=True)
class ClaimRule:
    """How the verdict judges one claim: the number it reads per fold, when a fold agrees,
    the decision over folds, and the report's words for it."""

    #: The per-fold number read (a ``fold_numbers`` column) and its label in the report.
    reads: str
    reads_label: str
    #: Whether a fold's number lies on the claim's side.
    agrees: Callable[[float, Thresholds], bool]
    #: The decision over the folds: (verdict, reasons).
    decide: Callable[[pd.DataFrame, dict, Thresholds], tuple[str, list[str]]]
    #: The question the report asks of the claim.
    question: Callable[[Thresholds], str]
    #: It reads each attack's ASR (else robust validation accuracy).
    reads_asr: bool = True


#: One record per claim (``regime.claim``): the verdict and the report read each claim's
#: rule and words here, never a regime's name.
RULES: dict[Claim, ClaimRule] = {
    Claim.GENERALIZATION: ClaimRule(
        reads="rho",
        reads_label="rho(test acc, ASR)",
        agrees=lambda value, t: value >= t.min_rho,
        decide=decide_normal,
        question=lambda t: (
            f"does ASR rise with test accuracy (Spearman rho from epoch {t.first_epoch} on "
            f"at least {t.min_rho})?"
        ),
    ),
    Claim.OVERFITTING: ClaimRule(
        reads="asr_change",
        reads_label="ASR change after best",
        agrees=lambda value, t: value <= t.max_asr_rise,
        decide=decide_overfit,
        question=lambda t: (
            f"does ASR not rise by more than {t.max_asr_rise} after the best epoch as the "
            "network overfits?"
        ),
    ),
    Claim.ROBUST_OVERFITTING: ClaimRule(
        reads="robust_drop",
        reads_label="robust val acc drop after its peak",
        agrees=lambda value, t: value > t.min_robust_drop,
        decide=decide_adversarial,
        question=lambda t: (
            f"does robust validation accuracy fall by more than {t.min_robust_drop} across "
            "the epochs after its peak (robust overfitting)?"
        ),
        reads_asr=False,
    ),
}


def fold_numbers(claim: Claim | str, runs: list[Run], t: Thresholds) -> pd.DataFrame:
    """One row per attack and fold: what the verdict reads from that fold (its best epoch,
    rho, ASR change after the best, validation drop and loss rise) and whether the fold lies
    on the claim's side (:attr:`ClaimRule.agrees`): the report's per-fold table. A fold that
    did not learn (``not_learned``: why) keeps its numbers for the table but agrees with
    nothing (None): the verdict leaves it out."""
    claim = Claim(claim)
    rule = RULES[claim]
    rows = []
    for name, column in columns(claim, runs).items():
        for run in runs:
            numbers = per_fold(run, column, t)
            value = numbers[rule.reads]
            dead = run.not_learned or ""
            attack, asr = reading(name)
            rows.append(
                {
                    "claim": claim.value,
                    "attack": attack,
                    "asr": asr,
                    "best_epoch": int(run.summary["best_epoch"]),
                    **numbers,
                    "agrees": None if math.isnan(value) or dead else bool(rule.agrees(value, t)),
                    "not_learned": dead,
                }
            )
    return pd.DataFrame(rows)


def left_out(folds: pd.DataFrame) -> str:
    """ "fold 0 did not learn (why)" for each fold of ``folds`` that did not learn."""
    dead = folds[folds["not_learned"] != ""].drop_duplicates("fold")
    return "; ".join(f"fold {r.fold} did not learn ({r.not_learned})" for r in dead.itertuples())


def verdict(
    claim: Claim | str, runs: list[Run], t: Thresholds, numbers: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per attack and reading of its ASR: the per-fold numbers' means with 95%
    intervals, the folds that agree, the verdict on ``claim`` and its reasons. ``numbers``:
    ``fold_numbers(claim, runs, t)``, where the caller has them already (the report shows
    them too)."""
    claim = Claim(claim)
    rows = []
    if numbers is None:
        numbers = fold_numbers(claim, runs, t)
    for name in columns(claim, runs):
        attack, asr = reading(name)
        mine = (numbers["attack"] == attack) & (numbers["asr"] == asr)
        every = numbers[mine].reset_index(drop=True)
        folds = every[every["not_learned"] == ""].reset_index(drop=True)
        dead = left_out(every)
        if dead and len(folds) < 2:  # too few folds because some did not learn
            word = UNDETERMINED
            reasons = [
                f"{len(folds)} of {len(every)} folds learned: the verdict needs at least 2"
                + (f" ({dead})" if dead else "")
            ]
            n = {
                key: Interval.over(folds[key].tolist() if len(folds) else [])
                for key in ("rho", "asr_change", "val_drop", "val_loss_rise", "robust_drop")
                if key in every
            }
            n["agree"] = _agree(folds["agrees"]) if len(folds) else "0 of 0 folds"
        else:
            word, reasons, n = decide(claim, folds, t)
            if dead:
                reasons.append(f"left out: {dead}")
        robust = n.get("robust_drop")
        rows.append(
            {
                "claim": claim.value,
                "attack": attack,
                "asr": asr,
                "rho_mean": n["rho"].mean,
                "rho_low": n["rho"].low,
                "rho_high": n["rho"].high,
                "asr_change_after_best": n["asr_change"].mean,
                "asr_change_low": n["asr_change"].low,
                "asr_change_high": n["asr_change"].high,
                "val_drop_best_to_last": n["val_drop"].mean,
                "val_loss_rise": n["val_loss_rise"].mean,
                **(
                    {}
                    if robust is None
                    else {
                        "robust_drop_after_peak": robust.mean,
                        "robust_drop_low": robust.low,
                        "robust_drop_high": robust.high,
                    }
                ),
                "folds_learned": len(folds),
                "folds_not_learned": len(every) - len(folds),
                "folds_agreeing": n["agree"],
                "verdict": word,
                "reasons": "; ".join(reasons),
            }
        )
    return pd.DataFrame(rows)


def survival(verdicts: pd.DataFrame) -> list[str]:
    """Per dataset, regime and attack read both ways: whether the paper's answer survives
    separating fragility from plain error (its reading and the conditional one both hold),
    or only one reading holds, or neither; an undetermined reading is named as such."""
    lines = []
    keys = ["dataset", "regime", "attack"]
    for (dataset, regime, attack), part in verdicts.groupby(keys, sort=False):
        words = dict(zip(part["asr"], part["verdict"], strict=True))
        if PAPERS not in words or CONDITIONAL not in words:
            continue
        paper, given = words[PAPERS], words[CONDITIONAL]
        if paper == HOLDS and given == HOLDS:
            said = "survives: the claim holds in both readings"
        elif UNDETERMINED in (paper, given):
            said = (
                f"cannot be told yet: the paper's reading {_says(paper)}, the conditional "
                f"one {_says(given)}"
            )
        elif paper == HOLDS:
            said = (
                "does not survive: only the paper's reading holds (the ASR among correctly "
                "classified sources does not bear it out)"
            )
        elif given == HOLDS:
            said = (
                "only the conditional reading holds: once plain error is left out, the claim "
                "holds where the paper's ASR did not show it"
            )
        else:
            said = "neither reading holds"
        lines.append(f"{dataset}, {regime}, {attack}: {said}")
    return lines


def _says(word: str) -> str:
    return {UNDETERMINED: "is undetermined"}.get(word, word)


def early_gap(runs: list[Run], attack: str, first: int, last: int) -> float:
    """How much of the paper's ASR is plain error at early epochs: the mean over the runs of
    the mean over epochs ``first``..``last`` of ASR minus the conditional ASR (NaN where
    neither is read)."""
    gaps = []
    for run in runs:
        paper, given = f"asr_{attack}", f"asr_{attack}{GIVEN_CORRECT}"
        if paper not in run.epochs or given not in run.epochs:
            continue
        early = run.epochs[(run.epochs["epoch"] >= first) & (run.epochs["epoch"] <= last)]
        gap = (early[paper] - early[given]).dropna()
        if len(gap):
            gaps.append(float(gap.mean()))
    return float(sum(gaps) / len(gaps)) if gaps else math.nan
