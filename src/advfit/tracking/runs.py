"""What every advfit W&B run shares: the job types, the one ``epoch`` axis (every per-epoch
quantity against the 1-based ``epoch`` of epochs.csv), opening a run beside a training run,
and closing one."""

from __future__ import annotations

import logging
import math
import os
import uuid
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

#: W&B's job types: a training run (conf/logger/wandb.yaml), and the runs that are not
#: training folds (the dashboard leaves them out of a group's mean: their rows would count
#: twice).
TRAIN_JOB, EVALUATE_JOB, REPORT_JOB = "train", "evaluate", "report"

log = logging.getLogger(__name__)


def run_id(save_dir: str | Path) -> str:
    """The W&B run id of a run directory, kept in it so a resumed run continues its W&B run."""
    path = Path(save_dir) / "wandb" / "advfit-run-id"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex[:16]
    path.write_text(new + "\n")
    return new


#: Seconds a W&B run waits for the server when it starts online: the default of
#: ``conf/logger/wandb.yaml``'s ``init_timeout`` (its one number), and of runs whose saved
#: config has none.
INIT_TIMEOUT = 30.0


def own_run(node: DictConfig, root: Path, mode: str, **fields):
    """A new W&B run (a fresh id) beside a training run: in its project and entity (the
    ``logger.wandb`` config ``node``), files under ``root/wandb``, start-up bounded by its
    ``init_timeout``; ``fields`` are ``wandb.init``'s group, name, job type, tags..."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        dir=str(root),
        id=uuid.uuid4().hex[:16],
        mode=mode,
        project=node.get("project"),
        entity=node.get("entity"),
        settings=wandb.Settings(init_timeout=float(node.get("init_timeout", INIT_TIMEOUT))),
        **fields,
    )


def epoch_axis(wandb_run) -> None:
    """Plot every key of ``wandb_run`` against the 1-based ``epoch``."""
    wandb_run.define_metric("epoch")
    wandb_run.define_metric("*", step_metric="epoch")


def log_epoch_rows(wandb_run, rows: pd.DataFrame) -> None:
    """One W&B history row per epoch: ``epoch`` and the row's non-NaN values."""
    if wandb_run is None:
        return
    for row in rows.to_dict("records"):
        values = {
            k: v
            for k, v in row.items()
            if k != "epoch" and not (isinstance(v, float) and math.isnan(v))
        }
        wandb_run.log({"epoch": int(row["epoch"]), **values})


def announce(run) -> None:
    """Say where a W&B run is: its URL, or its offline directory and how to upload it."""
    if run is None or not hasattr(run, "settings"):
        return
    if getattr(run.settings, "_offline", False) or run.settings.mode == "offline":
        offline = Path(run.dir).parent
        log.info("W&B run (offline): %s; upload it with: wandb sync %s", offline, offline)
    elif getattr(run, "url", None):
        log.info("W&B run: %s", run.url)


def close(wandb_run) -> None:
    """Say where the run is, then finish it."""
    if wandb_run is not None:
        announce(wandb_run)
        wandb_run.finish()
