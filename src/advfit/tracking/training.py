"""Lightning's W&B logger for a training run, on the study's one axis: W&B receives the rows
of ``epochs.csv``, each against the 1-based ``epoch``."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from advfit.errors import RunError, first_line
from advfit.rundir import ROBUST_TRAIN_COLUMNS, TRAIN_COLUMNS
from advfit.tracking.artifacts import log_training_run
from advfit.tracking.mode import resolve_wandb_mode, wandb_server
from advfit.tracking.runs import INIT_TIMEOUT, close, epoch_axis, log_epoch_rows, run_id

#: What advfit's LightningModule logs (``train/loss`` ... ``val/robust_acc``): the epoch rows
#: carry these, as their ``epochs.csv`` columns.
OWN_METRICS = frozenset(c.replace("_", "/", 1) for c in TRAIN_COLUMNS[1:] + ROBUST_TRAIN_COLUMNS)


def _own(key: str) -> bool:
    return key.removesuffix("_step").removesuffix("_epoch") in OWN_METRICS


class EpochWandbLogger(WandbLogger):
    """Lightning's WandbLogger, but W&B receives the rows of ``epochs.csv`` (through
    :meth:`log_epoch_rows`), each against the 1-based ``epoch``, rather than Lightning's own
    metrics against its global step: a W&B plot then lines up with the run directory. What
    else is logged with ``self.log`` reaches W&B on the same axis (:meth:`log_metrics`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Lightning passes anonymous=None to wandb.init when it is not set, and W&B then
        # warns in every job that "the anonymous setting has no effect".
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @property
    def experiment(self):
        fresh = self._experiment is None
        run = super().experiment
        if fresh and hasattr(run, "define_metric"):
            epoch_axis(run)  # replaces Lightning's global step
        return run

    def log_metrics(self, metrics, step=None) -> None:
        """What a LightningModule or any callback logs with ``self.log`` or ``log_dict``, on
        the 1-based ``epoch`` axis (Lightning passes the 0-based ``epoch`` with each call).
        advfit's own training metrics (``train/loss``, ``val/acc``, ...) are left to the
        epoch rows, which carry them once per epoch under their ``epochs.csv`` names."""
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        theirs = {k: v for k, v in metrics.items() if not _own(k)}
        if theirs and epoch is not None:
            self.experiment.log({**theirs, "epoch": int(epoch) + 1})

    def log_epoch_rows(self, rows: pd.DataFrame) -> None:
        log_epoch_rows(self.experiment, rows)


def wandb_logger(
    save_dir: str, mode: str = "auto", init_timeout: float = INIT_TIMEOUT, **kwargs
) -> EpochWandbLogger:
    """The training run's logger (``conf/logger/wandb.yaml``): the mode resolved, a stable run
    id, and a bounded wait for the server (``init_timeout`` seconds) when online."""
    import wandb

    mode = resolve_wandb_mode(mode)
    os.environ.setdefault("WANDB_SILENT", "true")  # advfit says where the run is (announce)
    return EpochWandbLogger(
        save_dir=save_dir,
        offline=mode == "offline",
        mode=mode,
        id=run_id(save_dir),
        resume="allow",
        settings=wandb.Settings(init_timeout=float(init_timeout)),
        **kwargs,
    )


def start_loggers(loggers: list[Any]) -> None:
    """Start the W&B run before training, so a server that cannot be reached (no network, a
    bad key) stops the run at once with a message instead of a traceback. Without a W&B
    logger (``logger=none``, ``logger=csv``) wandb is not imported."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            try:
                _ = logger.experiment
            except wandb.errors.Error as err:
                host = wandb_server()
                raise RunError(
                    f"W&B could not start an online run at {host}: {first_line(err)}. Check "
                    "`wandb login` (or WANDB_API_KEY) and the network, or log offline with "
                    "logger.wandb.mode=offline (upload later with `make sync`)."
                ) from None


def wandb_run_of(trainer: pl.Trainer):
    """The W&B run of a Trainer's loggers, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def summarize(loggers: list[Any], **values: Any) -> None:
    """Put ``values`` in the W&B run's summary (beside the replay's headline numbers), where
    the run logs to W&B."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(values)


def log_artifacts(loggers: list[Any], run) -> None:
    """The sealed run's snapshots, adversarial sets and replay as W&B artifacts
    (:mod:`advfit.tracking.artifacts`), where the run logs to W&B."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            log_training_run(logger.experiment, run)


def finish_loggers(loggers: list[Any]) -> None:
    """Close W&B whatever happened, so one failed job does not poison the next in a sweep."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        close(wandb.run)
