"""What the report says: its tables as shown (means with intervals, per-fold marks, distances
beside the paper's) and its sections, as :mod:`advfit.report.markup` blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from advfit.identity import Claim
from advfit.report.figures import KEY, Figure
from advfit.report.markup import Bullets, Code, Heading, Image, Para, Table
from advfit.report.verdict import CONDITIONAL, RULES, Thresholds, early_gap, survival
from advfit.rundir import GIVEN_CORRECT


def panel_title(key: tuple, group_keys: list[str]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in zip(group_keys, key[2:], strict=True))
    return f"{key[0]}" + (f" ({extra})" if extra else "")


def fmt(mean: float, std: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def interval(mean: float, low: float, high: float) -> str:
    if pd.isna(mean):
        return ""
    if pd.isna(low):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def signed(value: float) -> str:
    return "" if pd.isna(value) else f"{value:+.3f}"


def verdict_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict as shown: each mean with its 95% interval, the folds that agree (and the
    fall of robust validation accuracy where the adversarial regime is reported)."""
    shown = pd.DataFrame(
        {
            "dataset": verdicts["dataset"],
            "regime": verdicts["regime"],
            "attack": verdicts["attack"],
            **({"ASR": verdicts["asr"]} if "asr" in verdicts else {}),
            "folds": verdicts["folds"],
            "rho(test acc, ASR) [95% CI]": [
                interval(*r)
                for r in zip(verdicts.rho_mean, verdicts.rho_low, verdicts.rho_high, strict=True)
            ],
            "ASR change after best [95% CI]": [
                interval(*r)
                for r in zip(
                    verdicts.asr_change_after_best,
                    verdicts.asr_change_low,
                    verdicts.asr_change_high,
                    strict=True,
                )
            ],
            "agreeing": verdicts["folds_agreeing"],
            "verdict": verdicts["verdict"],
        }
    )
    if "robust_drop_after_peak" in verdicts:
        robust = zip(
            verdicts.robust_drop_after_peak,
            verdicts.robust_drop_low,
            verdicts.robust_drop_high,
            strict=True,
        )
        at = list(shown.columns).index("agreeing")
        shown.insert(at, "robust val acc drop [95% CI]", [interval(*r) for r in robust])
    return shown


def folds_table(folds: pd.DataFrame) -> pd.DataFrame:
    """The per-fold numbers as shown, a row per fold: its best epoch, validation drop and loss
    rise, and for each attack the number the verdict reads from it (its claim's: rho for
    generalization, the ASR change after the best for overfitting), marked where the fold
    agrees."""
    rows = []
    keys = ["dataset", "regime", "fold"]
    for (dataset, regime, fold), part in folds.groupby(keys, sort=False):
        first = part.iloc[0]
        rule = RULES[Claim(first["claim"])]
        row = {
            "dataset": dataset,
            "regime": regime,
            "fold": fold,
            "best epoch": first["best_epoch"],
            "val acc drop": signed(first["val_drop"]),
            "val loss rise": signed(first["val_loss_rise"]),
            "reads": rule.reads_label,
        }
        if first.get("not_learned"):
            row["reads"] = f"left out: did not learn ({first['not_learned']})"
        for r in part.to_dict("records"):
            value = r[rule.reads]
            mark = "" if pd.isna(r["agrees"]) else (" ✓" if r["agrees"] else " ✗")
            given = " (given correct)" if r.get("asr") == CONDITIONAL else ""
            row[f"{r['attack'] or r['claim']}{given}"] = signed(value) + mark
        rows.append(row)
    return pd.DataFrame(rows)


def distances_table(distances: pd.DataFrame) -> pd.DataFrame | None:
    """The distances as shown: mean ± standard deviation per norm, and the paper's Tables 2-5
    beside where comparable; None when there are none."""
    if distances.empty:
        return None
    shown = distances.assign(
        L0=[fmt(m, s) for m, s in zip(distances.l0_mean, distances.l0_std, strict=True)],
        L2=[fmt(m, s) for m, s in zip(distances.l2_mean, distances.l2_std, strict=True)],
        Linf=[fmt(m, s) for m, s in zip(distances.linf_mean, distances.linf_std, strict=True)],
    )[["dataset", "regime", "attack", "folds", "n", "n_fooled", "L0", "L2", "Linf"]]
    if "paper_l2_mean" in distances:
        for metric, name in (("l0", "L0"), ("l2", "L2"), ("linf", "Linf")):
            shown[f"paper {name}"] = [
                "" if pd.isna(m) else fmt(m, sd)
                for m, sd in zip(
                    distances[f"paper_{metric}_mean"], distances[f"paper_{metric}_std"], strict=True
                )
            ]
    return shown


def verdict_blocks(verdicts: pd.DataFrame, folds: pd.DataFrame, t: Thresholds) -> list:
    """The verdict table, each row's reasons and the per-fold table: in the report, and alone
    in verdict.md (which the report prints when it ends)."""
    return [
        Table(verdict_table(verdicts), badge="verdict"),
        Bullets(
            tuple(
                f"{r['dataset']}, {r['regime']}, {r['attack'] or r['claim']}"
                + (f" ({r['asr']} ASR)" if r.get("asr") else "")
                + f": {r['verdict']}: {r['reasons']}"
                for r in verdicts.to_dict("records")
            )
        ),
        *survival_blocks(verdicts),
        Heading(3, "Per fold"),
        Para(
            "What each fold gives the means above: its best epoch (where the attacks were "
            "crafted), how far validation accuracy falls after it and how far validation loss "
            "ends above its minimum (relative), and for each attack the number the verdict "
            "reads by its regime's claim: Spearman rho over the replayed epochs for "
            "generalization, the ASR change across the epochs after the best for overfitting; "
            f"✓ where the fold lies on the claim's side (rho at least {t.min_rho}, an ASR "
            f"change at most {t.max_asr_rise}), ✗ where not. Every number per fold and attack "
            "is in verdict_folds.csv."
        ),
        Table(folds_table(folds)),
    ]


def survival_blocks(verdicts: pd.DataFrame) -> list:
    """Whether each answer survives separating fragility from plain error (both readings of
    the ASR judged by the same rule), where both were read."""
    lines = survival(verdicts) if "asr" in verdicts else []
    if not lines:
        return []
    return [
        Heading(3, "Fragility apart from plain error"),
        Para(
            "The paper's ASR counts a source the snapshot already misclassifies as a success. "
            "Each claim is also judged on the ASR among the sources the snapshot classifies "
            "correctly ('given correct' rows, the same rule, interval and folds); does the "
            "paper's answer survive?"
        ),
        Bullets(tuple(lines)),
    ]


def early_gap_sentence(groups: dict, group_keys: list[str], t: Thresholds) -> str:
    """How much of the paper's ASR is plain error at early epochs, per group and attack."""
    first, last = t.first_epoch, t.first_epoch + 5
    parts = []
    for key, runs in groups.items():
        kept = [r for r in runs if not r.not_learned] or runs
        attacks = [
            c[4:] for c in kept[0].epochs.columns if c.startswith("asr_") and GIVEN_CORRECT not in c
        ]
        for attack in attacks:
            gap = early_gap(kept, attack, first, last)
            if not pd.isna(gap):
                parts.append(f"{panel_title(key, group_keys)}, {key[1]}, {attack}: {gap:+.3f}")
    if not parts:
        return ""
    return (
        f"Plain error in the paper's ASR at early epochs (epochs {first}-{last}, mean over "
        "folds of the paper's ASR minus the ASR among correctly classified sources): "
        + "; ".join(parts)
        + "."
    )


def not_learned_note(runs: list) -> str:
    """One sentence naming the runs that did not learn and why, or ""."""
    dead = [r for r in runs if r.not_learned]
    if not dead:
        return ""
    names = "; ".join(
        f"{r.root.name} ({r.not_learned}"
        + ("; judged after the fact: a run of an earlier version" if r.judged_after else "")
        + ")"
        for r in dead
    )
    return (
        f"{len(dead)} of {len(runs)} runs did not learn and are left out of the verdict, the "
        f"mean curves and the distance tables (advfit.learning's rule): {names}."
    )


def machine_label(summary: dict) -> str:
    """Where a run was computed, as its summary.json records it: the GPU's name on a GPU,
    else the processor's (runs of versions that did not record it: "not recorded")."""
    found = summary.get("machine") or {}
    return found.get("gpu") or found.get("processor") or "not recorded"


def head_blocks(
    paths: list[Path], sweep, t: Thresholds, claims: dict, by_name: list[tuple]
) -> list:
    """The title, the sweeps read, the runs counted, and the question the verdict answers."""
    counted_once = (
        f"; counted once (the same config, fold and seed found twice): {len(sweep.duplicates)}"
        if sweep.duplicates
        else ""
    )
    return [
        Heading(1, "advfit report"),
        Para(f"Sweeps: {', '.join(str(Path(p).resolve()) for p in paths)}"),
        Para(
            f"Finished runs: {len(sweep.runs)}; left out (no DONE): {len(sweep.unfinished)}"
            + counted_once
            + ". "
            f"Groups split by: dataset, regime{''.join(', ' + k for k in sweep.group_keys)}."
        ),
        *([Para(note)] if (note := not_learned_note(sweep.runs)) else []),
        Heading(2, "Verdict"),
        Para(
            "Each regime is judged by the claim it declares (regime.claim). "
            + " ".join(
                f"{', '.join(sorted({key[1] for key, c in claims.items() if c == claim}))} "
                f"({claim.value}): {RULES[claim].question(t)}"
                for claim in dict.fromkeys(claims.values())
            )
            + " The best epoch's own ASR (the attacks' white-box success on the snapshot they "
            "were crafted on) enters no statistic. Means over folds with 95% Student-t "
            "intervals over folds; the verdict is read from the interval (see docs/method.md's "
            "rule)."
        ),
        *(
            [
                Para(
                    "Judged by the claim of its regime's name (runs of an earlier version, "
                    "whose saved config declares none): "
                    + ", ".join(f"{key[0]} {key[1]} ({claims[key].value})" for key in by_name)
                    + "."
                )
            ]
            if by_name
            else []
        ),
    ]


def distance_blocks(shown: pd.DataFrame | None) -> list:
    blocks: list = [Heading(2, "Distances (Tables 2-5)")]
    if shown is not None and "paper L2" in shown:
        blocks.append(
            Para(
                "Over the examples that fool the best snapshot, all folds pooled; 'paper': the "
                "paper's Tables 2-5 (grayscale CIFAR-10 and STL-10), beside the groups they "
                "describe."
            )
        )
    blocks.append(Table(shown) if shown is not None else Para("(none)"))
    return blocks


def run_blocks(sweep, out: Path) -> list:
    """Every run: where it is, its seed, fold, best epoch, whether it learned, and the machine
    and versions it was computed with."""
    runs = pd.DataFrame(
        [
            {
                "run": r.root.name,
                "path": Path(os.path.relpath(r.root.resolve(), out.resolve())).as_posix(),
                "seed": r.summary.get("seed"),
                "fold": r.fold,
                "lr": r.summary.get("lr"),
                "best_epoch": r.summary.get("best_epoch"),
                "learned": f"no: {r.not_learned}" if r.not_learned else "yes",
                "machine": machine_label(r.summary),
                "torch": r.summary.get("versions", {}).get("torch"),
                "advertorch": r.summary.get("versions", {}).get("advertorch"),
            }
            for r in sweep.runs
        ]
    )
    counts = runs["machine"].value_counts(sort=False)
    where = "; ".join(f"{name} ({n} run{'s' * (n != 1)})" for name, n in counts.items())
    return [
        Heading(2, "Runs"),
        Para(
            f"Computed on: {where}. The same seed gives the same numbers on the same kind of "
            "machine only: another processor or a GPU sums in another order and trains other "
            "networks, which can change a verdict whose interval ends near its threshold."
        ),
        Table(runs, links=(("run", "path"),)),
    ]


def config_blocks(groups: dict, group_keys: list[str]) -> list:
    blocks: list = [
        Heading(2, "Configs"),
        Para("The resolved config of the first run of each group (its folds differ in fold only)."),
    ]
    for key, group in groups.items():
        config = OmegaConf.to_yaml(OmegaConf.create(group[0].config)).rstrip()
        title = f"{panel_title(key, group_keys)}, {key[1]}"
        blocks += [Heading(3, title), Code(config, "yaml")]
    return blocks


def document(
    paths: list[Path],
    out: Path,
    sweep,
    t: Thresholds,
    verdicts: pd.DataFrame,
    folds: pd.DataFrame,
    shown: pd.DataFrame | None,
    figures: list[Figure],
    claims: dict,
    by_name: list[tuple] = (),
) -> list:
    """The report's content, the same for report.md and report.html; ``claims``: each
    group's claim; ``by_name``: the groups whose claim was read from the regime's name."""
    blocks = head_blocks(paths, sweep, t, claims, list(by_name))
    if verdicts.empty:
        blocks.append(Para("(no verdict: no attack columns)"))
    else:
        blocks += verdict_blocks(verdicts, folds, t)
    blocks += distance_blocks(shown)
    blocks += [Heading(2, "Figures"), Para(KEY)]
    if gap := early_gap_sentence(sweep.groups(), sweep.group_keys, t):
        blocks.append(Para(gap))
    if note := not_learned_note(sweep.runs):
        blocks.append(Para(note))
    blocks += [Image(f"{f.name}.png", f.caption) for f in figures]
    return blocks + run_blocks(sweep, out) + config_blocks(sweep.groups(), sweep.group_keys)
