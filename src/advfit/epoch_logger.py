"""Lightning's W&B logger on the study's one axis (kept apart from :mod:`advfit.loggers` so
that the report, which logs no training, starts without importing Lightning)."""

from __future__ import annotations

import pandas as pd
from pytorch_lightning.loggers import WandbLogger

from advfit.loggers import epoch_axis, log_epoch_rows


class EpochWandbLogger(WandbLogger):
    """Lightning's WandbLogger, but W&B receives the rows of ``epochs.csv`` (through
    :meth:`log_epoch_rows`), each against the 1-based ``epoch``, rather than Lightning's own
    metrics against its global step: a W&B plot then lines up with the run directory."""

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
        """Lightning's per-step metrics stay out of W&B: the epoch rows carry them."""

    def log_epoch_rows(self, rows: pd.DataFrame) -> None:
        log_epoch_rows(self.experiment, rows)
