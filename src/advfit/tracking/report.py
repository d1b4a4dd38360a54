"""The report's W&B run: its figures, tables and verdict words, and report.html / report.md as
an artifact, in the project its sweep's runs logged to."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from advfit.report.verdict import CONDITIONAL
from advfit.tracking.mode import resolve_wandb_mode
from advfit.tracking.runs import REPORT_JOB, close, own_run

log = logging.getLogger(__name__)


def open_report_run(configs: list[dict], out: Path, mode: str = "auto"):
    """A W&B run (job type ``report``) for a sweep's report, in the project and entity its
    runs logged to, with its files under ``out/wandb``; None when no run logged to W&B or
    ``mode`` is ``disabled``."""
    nodes = (OmegaConf.select(OmegaConf.create(c), "logger.wandb") for c in configs if c)
    node = next((n for n in nodes if n), None)
    if not node:
        return None
    mode = resolve_wandb_mode(node.get("mode", "auto") if mode == "auto" else mode)
    if mode == "disabled":
        return None
    import wandb

    tasks = sorted({str(c.get("task_name")) for c in configs if c.get("task_name")})
    out.mkdir(parents=True, exist_ok=True)
    try:
        return own_run(
            node,
            out,
            mode,
            group="report",
            job_type=REPORT_JOB,
            name=f"report-{'-'.join(tasks) or 'sweep'}",
            tags=["report", *tasks],
        )
    except wandb.errors.Error as err:  # the report's files are written already
        log.warning("W&B did not start the report's run (%s); the report is on disk only", err)
        return None


def log_report(
    wandb_run,
    out: Path,
    figures: dict[str, str],
    tables: dict[str, pd.DataFrame | None],
    verdicts: pd.DataFrame,
) -> None:
    """The report on W&B: each figure (``figures/<name>``, captioned), the verdict and
    distance tables, each verdict word as summary, and report.html / report.md as an
    artifact of type ``report``; then the run is closed."""
    import wandb

    row: dict[str, Any] = {
        f"figures/{name}": wandb.Image(str(out / f"{name}.png"), caption=caption)
        for name, caption in figures.items()
    }
    row.update({name: wandb.Table(dataframe=t) for name, t in tables.items() if t is not None})
    wandb_run.log(row)
    for r in verdicts.to_dict("records") if not verdicts.empty else []:
        reading = "/given_correct" if r.get("asr") == CONDITIONAL else ""
        key = f"verdict/{r['dataset']}/{r['regime']}/{r['attack'] or r['claim']}{reading}"
        wandb_run.summary[key] = r["verdict"]
    artifact = wandb.Artifact(f"{wandb_run.name}-report", type="report")
    for name in ("report.html", "report.md"):
        artifact.add_file(str(out / name))
    wandb_run.log_artifact(artifact)
    close(wandb_run)
