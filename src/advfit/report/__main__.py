"""Draw the paper's figures, tables and a verdict from one or more sweeps.

python -m advfit.report multirun/demo [more sweeps...] [--out DIR] [--only fig3,tables]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from advfit.errors import ConfigError
from advfit.loggers import WANDB_MODES, log_report, open_report_run
from advfit.report.collect import (
    ReportError,
    aggregate,
    collect,
    judge_learning,
    pooled_distances,
)
from advfit.report.document import (
    Bullets,
    Code,
    Heading,
    Image,
    Para,
    Table,
    to_html,
    to_markdown,
)
from advfit.report.figures import FIGURES, KEY, draw
from advfit.report.paper import paper_distances
from advfit.report.verdict import Thresholds, fold_numbers, verdict

log = logging.getLogger("advfit.report")


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


def verdict_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict as shown: each mean with its 95% interval, the folds that agree."""
    return pd.DataFrame(
        {
            "dataset": verdicts["dataset"],
            "regime": verdicts["regime"],
            "attack": verdicts["attack"],
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
            "verdict": verdicts["holds"],
        }
    )


def signed(value: float) -> str:
    return "" if pd.isna(value) else f"{value:+.3f}"


def folds_table(folds: pd.DataFrame) -> pd.DataFrame:
    """The per-fold numbers as shown, a row per fold: its best epoch, validation drop and loss
    rise, and for each attack the number the verdict reads from it (rho in the normal regime,
    the ASR change after the best in the overfitting one), marked where the fold agrees."""
    rows = []
    keys = ["dataset", "regime", "fold"]
    for (dataset, regime, fold), part in folds.groupby(keys, sort=False):
        first = part.iloc[0]
        row = {
            "dataset": dataset,
            "regime": regime,
            "fold": fold,
            "best epoch": first["best_epoch"],
            "val acc drop": signed(first["val_drop"]),
            "val loss rise": signed(first["val_loss_rise"]),
            "reads": "ASR change after best" if regime == "overfit" else "rho(test acc, ASR)",
        }
        if first.get("not_learned"):
            row["reads"] = f"left out: did not learn ({first['not_learned']})"
        for r in part.to_dict("records"):
            value = r["asr_change"] if regime == "overfit" else r["rho"]
            mark = "" if pd.isna(r["agrees"]) else (" ✓" if r["agrees"] else " ✗")
            row[r["attack"]] = signed(value) + mark
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_blocks(verdicts: pd.DataFrame, folds: pd.DataFrame, t: Thresholds) -> list:
    """The verdict table, each row's reasons and the per-fold table: in the report, and alone
    in verdict.md (which the report prints when it ends)."""
    return [
        Table(verdict_table(verdicts), badge="verdict"),
        Bullets(
            tuple(
                f"{r['dataset']}, {r['regime']}, {r['attack']}: {r['holds']}: {r['claim']}"
                for r in verdicts.to_dict("records")
            )
        ),
        Heading(3, "Per fold"),
        Para(
            "What each fold gives the means above: its best epoch (where the attacks were "
            "crafted), how far validation accuracy falls after it and how far validation loss "
            "ends above its minimum (relative), and for each attack the number the verdict "
            "reads: Spearman rho over the replayed epochs in the normal regime, the ASR change "
            "across the epochs after the best in the overfitting one; ✓ where the fold lies on "
            f"the claim's side (rho at least {t.min_rho}, an ASR change at most "
            f"{t.max_asr_rise}), ✗ where not. Every number per fold and attack is in "
            "verdict_folds.csv."
        ),
        Table(folds_table(folds)),
    ]


def learned(runs: list) -> list:
    """The runs that learned (what the mean curves and the distance tables pool); all of them
    when none did, so that a group's curves still show what happened."""
    return [r for r in runs if not r.not_learned] or runs


def not_learned_note(runs: list) -> str:
    """One sentence naming the runs that did not learn and why, or ""."""
    dead = [r for r in runs if r.not_learned]
    if not dead:
        return ""
    names = "; ".join(f"{r.root.name} ({r.not_learned})" for r in dead)
    return (
        f"{len(dead)} of {len(runs)} runs did not learn and are left out of the verdict, the "
        f"mean curves and the distance tables (advfit.learning's rule): {names}."
    )


def build(
    paths: list[Path],
    out: Path,
    only: set[str] | None,
    thresholds: Thresholds,
    wandb_mode: str = "auto",
) -> Path:
    sweep = collect(paths)
    for kept, copy in sweep.duplicates:
        log.warning("%s is the same run as %s (config, fold and seed): counted once", copy, kept)
    judge_learning(sweep.runs, thresholds.rule())
    groups = sweep.groups()
    out.mkdir(parents=True, exist_ok=True)

    def wanted(name: str) -> bool:
        return only is None or name in only

    tables = {key: aggregate(learned(runs)) for key, runs in groups.items()}
    for key, table in tables.items():
        name = "_".join(str(part).replace("/", "-") for part in key)
        table.to_csv(out / f"epochs_{name}.csv")

    figures = []
    for name, figure in FIGURES.items():
        if not wanted(name):
            continue
        keys = {
            panel_title(k, sweep.group_keys) + ("" if figure.regime else f", {k[1]}"): k
            for k in tables
            if figure.regime in (None, k[1])
        }
        best = {
            title: sorted({int(r.summary["best_epoch"]) for r in groups[k]})
            for title, k in keys.items()
        }
        if draw(figure, {title: tables[k] for title, k in keys.items()}, out, best) is not None:
            figures.append(figure)

    distance_rows, verdict_rows, fold_rows = [], [], []
    for key, runs in groups.items():
        for row in pooled_distances(learned(runs)).to_dict("records"):
            paper = paper_distances(key[0], key[1], row["attack"], runs[0].config) or {}
            distance_rows.append(
                {
                    "dataset": panel_title(key, sweep.group_keys),
                    "regime": key[1],
                    **row,
                    **{
                        f"paper_{metric}_{part}": value
                        for metric, pair in paper.items()
                        for part, value in zip(("mean", "std"), pair, strict=True)
                    },
                }
            )
        numbers = fold_numbers(key[1], runs, thresholds)
        for row in numbers.to_dict("records"):
            fold_rows.append(
                {"dataset": panel_title(key, sweep.group_keys), "regime": key[1], **row}
            )
        for row in verdict(key[1], runs, thresholds, numbers).to_dict("records"):
            verdict_rows.append(
                {
                    "dataset": panel_title(key, sweep.group_keys),
                    "regime": key[1],
                    "folds": len(runs),
                    **row,
                }
            )
    distances = pd.DataFrame(distance_rows)
    verdicts = pd.DataFrame(verdict_rows)
    folds = pd.DataFrame(fold_rows)
    shown = None
    if not distances.empty:
        shown = distances.assign(
            L0=[fmt(m, s) for m, s in zip(distances.l0_mean, distances.l0_std, strict=True)],
            L2=[fmt(m, s) for m, s in zip(distances.l2_mean, distances.l2_std, strict=True)],
            Linf=[fmt(m, s) for m, s in zip(distances.linf_mean, distances.linf_std, strict=True)],
        )[["dataset", "regime", "attack", "folds", "n", "n_fooled", "L0", "L2", "Linf"]]
        if "paper_l2_mean" in distances:  # the paper's Tables 2-5 beside, where comparable
            for metric, name in (("l0", "L0"), ("l2", "L2"), ("linf", "Linf")):
                shown[f"paper {name}"] = [
                    "" if pd.isna(m) else fmt(m, sd)
                    for m, sd in zip(
                        distances[f"paper_{metric}_mean"],
                        distances[f"paper_{metric}_std"],
                        strict=True,
                    )
                ]
        if wanted("tables"):
            distances.to_csv(out / "distances.csv", index=False)
            (out / "distances.md").write_text(shown.to_markdown(index=False) + "\n")
            (out / "distances.tex").write_text(shown.to_latex(index=False))
    if not verdicts.empty:
        verdicts.to_csv(out / "verdict.csv", index=False)
        (out / "verdict.md").write_text(to_markdown(verdict_blocks(verdicts, folds, thresholds)))
        folds.to_csv(out / "verdict_folds.csv", index=False)

    blocks = document(paths, out, sweep, groups, thresholds, verdicts, folds, shown, figures)
    report = out / "report.md"
    report.write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, out, "advfit report"))
    wandb_run = open_report_run([r.config for r in sweep.runs], out, wandb_mode)
    if wandb_run is not None:
        log_report(
            wandb_run,
            out,
            {f.name: f"{f.caption} {KEY}" for f in figures},
            {
                "verdict": None if verdicts.empty else verdict_table(verdicts),
                "verdict_folds": None if folds.empty else folds_table(folds),
                "distances": shown,
            },
            verdicts,
        )
    return report


def document(paths, out, sweep, groups, thresholds, verdicts, folds, distances, figures) -> list:
    """The report's content, the same for report.md and report.html."""
    blocks: list = [
        Heading(1, "advfit report"),
        Para(f"Sweeps: {', '.join(str(Path(p).resolve()) for p in paths)}"),
        Para(
            f"Finished runs: {len(sweep.runs)}; left out (no DONE): {len(sweep.unfinished)}"
            + (
                f"; counted once (the same config, fold and seed found twice): "
                f"{len(sweep.duplicates)}"
                if sweep.duplicates
                else ""
            )
            + ". "
            f"Groups split by: dataset, regime{''.join(', ' + k for k in sweep.group_keys)}."
        ),
        *([Para(note)] if (note := not_learned_note(sweep.runs)) else []),
        Heading(2, "Verdict"),
        Para(
            "Does ASR rise with test accuracy in the normal regime (Spearman rho from epoch "
            f"{thresholds.first_epoch} on at least {thresholds.min_rho}), and does it not rise "
            f"by more than {thresholds.max_asr_rise} after the best epoch in the overfitting "
            "regime? The best epoch's own ASR (the attacks' white-box success on the snapshot "
            "they were crafted on) enters neither. Means over folds with 95% Student-t "
            "intervals over folds; the verdict is read from the interval (see docs/method.md's "
            "rule)."
        ),
    ]
    if verdicts.empty:
        blocks.append(Para("(no verdict: no attack columns)"))
    else:
        blocks += verdict_blocks(verdicts, folds, thresholds)
    blocks.append(Heading(2, "Distances (Tables 2-5)"))
    if distances is not None and "paper L2" in distances:
        blocks.append(
            Para(
                "Over the examples that fool the best snapshot, all folds pooled; 'paper': the "
                "paper's Tables 2-5 (grayscale CIFAR-10 and STL-10), beside the groups they "
                "describe."
            )
        )
    blocks.append(Table(distances) if distances is not None else Para("(none)"))
    blocks.append(Heading(2, "Figures"))
    blocks.append(Para(KEY))
    if note := not_learned_note(sweep.runs):
        blocks.append(Para(note))
    blocks += [Image(f"{f.name}.png", f.caption) for f in figures]
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
    blocks += [
        Heading(2, "Runs"),
        Para(
            f"Computed on: {where}. The same seed gives the same numbers on the same kind of "
            "machine only: another processor or a GPU sums in another order and trains other "
            "networks, which can change a verdict whose interval ends near its threshold."
        ),
        Table(runs, links=(("run", "path"),)),
    ]
    blocks += [
        Heading(2, "Configs"),
        Para("The resolved config of the first run of each group (its folds differ in fold only)."),
    ]
    for key, group in groups.items():
        config = OmegaConf.to_yaml(OmegaConf.create(group[0].config)).rstrip()
        title = f"{panel_title(key, sweep.group_keys)}, {key[1]}"
        blocks += [Heading(3, title), Code(config, "yaml")]
    return blocks


def machine_label(summary: dict) -> str:
    """Where a run was computed, as its summary.json records it: the GPU's name on a GPU,
    else the processor's (runs of versions that did not record it: "not recorded")."""
    found = summary.get("machine") or {}
    return found.get("gpu") or found.get("processor") or "not recorded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: <first sweep>/report")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated: {', '.join(FIGURES)}, tables"
    )
    parser.add_argument(
        "--wandb",
        default="auto",
        choices=WANDB_MODES,
        help="log a `report` W&B run: auto = when the sweep's runs logged to W&B, in their "
        "mode; disabled = never (default: %(default)s)",
    )
    defaults = Thresholds()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    thresholds = Thresholds(**{k: getattr(args, k) for k in vars(defaults)})
    only = set(args.only.split(",")) if args.only else None
    try:
        thresholds.rule()
        report = build(
            args.sweeps, args.out or args.sweeps[0] / "report", only, thresholds, args.wandb
        )
    except (ReportError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verdict_md = report.parent / "verdict.md"
    if verdict_md.is_file():
        print("\nVerdict (means over folds with 95% intervals):\n")
        print(verdict_md.read_text())
    print(f"report: {report.resolve()}")
    print(f"report: {report.with_suffix('.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
