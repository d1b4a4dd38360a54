"""Everything W&B: the logger (offline by default, online once logged in), the run a replay
logs to, what it logs, and closing runs so one failed job does not poison a sweep."""

from __future__ import annotations

import math
import netrc
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from advfit.errors import ConfigError
from advfit.rundir import TRAIN_COLUMNS, RunDir

if TYPE_CHECKING:
    from advfit.replay import ReplayResult

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_logged_in() -> bool:
    """True when W&B has credentials: WANDB_API_KEY or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    if mode not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode!r} is invalid: accepted are {', '.join(WANDB_MODES)}"
        )
    if os.environ.get("WANDB_MODE") and mode == "auto":
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if wandb_logged_in() else "offline"
    return mode


def run_id(save_dir: str | Path) -> str:
    """The W&B run id of a run directory, kept in it so a resumed run continues its W&B run."""
    path = Path(save_dir) / "wandb" / "advfit-run-id"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex[:16]
    path.write_text(new + "\n")
    return new


def wandb_logger(save_dir: str, mode: str = "auto", **kwargs) -> WandbLogger:
    """Lightning's WandbLogger with the mode resolved and a stable run id."""
    mode = resolve_wandb_mode(mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        save_dir=save_dir,
        offline=mode == "offline",
        mode=mode,
        id=run_id(save_dir),
        resume="allow",
        **kwargs,
    )


def wandb_run_of(trainer: pl.Trainer):
    """The W&B run of a Trainer's loggers, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def finish_loggers(loggers: list[Any]) -> None:
    """Close W&B whatever happened, so one failed job does not poison the next in a sweep."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


def open_wandb_run(run: RunDir, run_cfg: DictConfig):
    """Continue the run's own W&B run (same id), when it logged to W&B; else None."""
    node = OmegaConf.select(run_cfg, "logger.wandb")
    if not node:
        return None
    import wandb

    mode = resolve_wandb_mode(node.get("mode", "auto"))
    return wandb.init(
        dir=str(run.root),
        id=run_id(run.root),
        resume="allow",
        mode=mode,
        project=node.get("project"),
        entity=node.get("entity"),
        group=node.get("group"),
        name=node.get("name"),
        job_type=node.get("job_type"),
    )


def log_replay(wandb_run, result: ReplayResult) -> None:
    """The replay's per-snapshot numbers (``replay/*`` against ``snapshot/epoch``) and its
    distances as a table."""
    if wandb_run is None:
        return
    import wandb

    wandb_run.define_metric("snapshot/epoch")
    wandb_run.define_metric("replay/*", step_metric="snapshot/epoch")
    for row in result.epochs.to_dict("records"):
        values = {
            f"replay/{k}": v
            for k, v in row.items()
            if k not in TRAIN_COLUMNS and not (isinstance(v, float) and math.isnan(v))
        }
        wandb_run.log({"snapshot/epoch": int(row["epoch"]), **values})
    wandb_run.log({"replay/distances": wandb.Table(dataframe=result.distances)})
