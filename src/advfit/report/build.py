"""A report from finished runs: the mean curves and figures, the distance and verdict rows,
the tables on disk, the document, and the W&B run."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from advfit.report.collect import Sweep, aggregate, collect, judge_learning, pooled_distances
from advfit.report.document import (
    distances_table,
    document,
    folds_table,
    panel_title,
    verdict_blocks,
    verdict_table,
)
from advfit.report.figures import FIGURES, KEY, Figure, draw
from advfit.report.markup import to_html, to_markdown
from advfit.report.paper import paper_distances
from advfit.report.verdict import Thresholds, claim_of, fold_numbers, verdict
from advfit.tracking.artifacts import use_replays
from advfit.tracking.report import log_report, open_report_run

log = logging.getLogger("advfit.report")


def learned(runs: list) -> list:
    """The runs that learned (what the mean curves and the distance tables pool); all of them
    when none did, so that a group's curves still show what happened."""
    return [r for r in runs if not r.not_learned] or runs


def draw_figures(
    sweep: Sweep, groups: dict, claims: dict, out: Path, only: set[str] | None
) -> list[Figure]:
    """Each group's mean curves (``epochs_<group>.csv``) and the figures asked for, each
    drawing the groups of its claim (``claims``: each group's)."""
    tables = {key: aggregate(learned(runs)) for key, runs in groups.items()}
    for key, table in tables.items():
        name = "_".join(str(part).replace("/", "-") for part in key)
        table.to_csv(out / f"epochs_{name}.csv")
    figures = []
    for name, figure in FIGURES.items():
        if only is not None and name not in only:
            continue
        keys = {
            panel_title(k, sweep.group_keys) + ("" if figure.claim else f", {k[1]}"): k
            for k in tables
            if figure.claim in (None, claims[k].value)
        }
        best = {
            title: sorted({int(r.summary["best_epoch"]) for r in groups[k]})
            for title, k in keys.items()
        }
        if draw(figure, {title: tables[k] for title, k in keys.items()}, out, best) is not None:
            figures.append(figure)
    return figures


def distance_rows(sweep: Sweep, groups: dict) -> pd.DataFrame:
    """Per group and attack, the distances of the learned runs pooled, with the paper's
    Tables 2-5 beside where they describe the group."""
    rows = []
    for key, runs in groups.items():
        for row in pooled_distances(learned(runs)).to_dict("records"):
            paper = paper_distances(key[0], key[1], row["attack"], runs[0].config) or {}
            rows.append(
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
    return pd.DataFrame(rows)


def verdict_rows(
    sweep: Sweep, groups: dict, claims: dict, t: Thresholds
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The verdict per group and attack, each group judged by its claim (``claims``), and
    the per-fold numbers it reads."""
    verdicts, folds = [], []
    for key, runs in groups.items():
        where = {"dataset": panel_title(key, sweep.group_keys), "regime": key[1]}
        numbers = fold_numbers(claims[key], runs, t)
        folds += [{**where, **row} for row in numbers.to_dict("records")]
        verdicts += [
            {**where, "folds": len(runs), **row}
            for row in verdict(claims[key], runs, t, numbers).to_dict("records")
        ]
    return pd.DataFrame(verdicts), pd.DataFrame(folds)


def write_tables(
    out: Path,
    distances: pd.DataFrame,
    shown: pd.DataFrame | None,
    verdicts: pd.DataFrame,
    folds: pd.DataFrame,
    t: Thresholds,
    only: set[str] | None,
) -> None:
    """distances.csv/.md/.tex (unless ``--only`` leaves out tables), verdict.csv, verdict.md
    and verdict_folds.csv."""
    if shown is not None and (only is None or "tables" in only):
        distances.to_csv(out / "distances.csv", index=False)
        (out / "distances.md").write_text(shown.to_markdown(index=False) + "\n")
        (out / "distances.tex").write_text(shown.to_latex(index=False))
    if not verdicts.empty:
        verdicts.to_csv(out / "verdict.csv", index=False)
        (out / "verdict.md").write_text(to_markdown(verdict_blocks(verdicts, folds, t)))
        folds.to_csv(out / "verdict_folds.csv", index=False)


def log_to_wandb(
    sweep: Sweep,
    out: Path,
    figures: list[Figure],
    verdicts: pd.DataFrame,
    folds: pd.DataFrame,
    shown: pd.DataFrame | None,
    wandb_mode: str,
) -> None:
    """The report's W&B run, when the sweep's runs logged to W&B."""
    wandb_run = open_report_run([r.config for r in sweep.runs], out, wandb_mode)
    if wandb_run is None:
        return
    use_replays(wandb_run, [r.root for r in sweep.runs])
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


def build(
    paths: list[Path],
    out: Path,
    only: set[str] | None,
    thresholds: Thresholds,
    wandb_mode: str = "auto",
) -> Path:
    """Write the report of the finished runs under ``paths`` to ``out``; its report.md."""
    sweep = collect(paths)
    for kept, copy in sweep.duplicates:
        log.warning("%s is the same run as %s (config, fold and seed): counted once", copy, kept)
    judge_learning(sweep.runs, thresholds.rule())
    groups = sweep.groups()
    # Each group is judged by the claim its regime declares (regime.claim), never its name.
    judged = {key: claim_of(runs) for key, runs in groups.items()}
    claims = {key: claim for key, (claim, _) in judged.items()}
    by_name = [key for key, (_, from_name) in judged.items() if from_name]
    with whole(out) as draft:
        figures = draw_figures(sweep, groups, claims, draft, only)
        distances = distance_rows(sweep, groups)
        verdicts, folds = verdict_rows(sweep, groups, claims, thresholds)
        shown = distances_table(distances)
        write_tables(draft, distances, shown, verdicts, folds, thresholds, only)
        blocks = document(
            paths, draft, sweep, thresholds, verdicts, folds, shown, figures, claims, by_name
        )
        (draft / "report.md").write_text(to_markdown(blocks))
        (draft / "report.html").write_text(to_html(blocks, draft, "advfit report"))
    log_to_wandb(sweep, out, figures, verdicts, folds, shown, wandb_mode)
    return out / "report.md"


@contextlib.contextmanager
def whole(out: Path) -> Iterator[Path]:
    """A draft folder beside ``out`` (a copy of the report there, so ``--only`` redraws part
    of it) that replaces ``out`` once the block completes; on any error or signal the draft
    goes and ``out`` stays as it was. The draft is ``out``'s sibling, so the report's
    relative links read the same from both. The swap itself runs with SIGINT and SIGTERM
    held back, so no moment leaves neither folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(prefix=f".{out.name}.draft-", dir=out.parent))
    try:
        if out.is_dir():
            shutil.copytree(out, draft, dirs_exist_ok=True)
        yield draft
        held = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            old = None
            if out.exists():
                old = out.with_name(f"{draft.name}-old")
                out.rename(old)
            draft.rename(out)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(draft, ignore_errors=True)
