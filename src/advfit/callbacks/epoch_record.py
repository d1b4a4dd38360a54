"""Snapshot the network after every epoch and record the epoch's training metrics."""

from __future__ import annotations

import logging

import pandas as pd
import pytorch_lightning as pl

from advfit.checkpoints import EPOCH_ROWS
from advfit.files import atomic_torch_save
from advfit.rundir import (
    ROBUST_TRAIN_COLUMNS,
    TRAIN_COLUMNS,
    RunDir,
    training_cells,
    training_columns,
)

log = logging.getLogger(__name__)


def log_rows(trainer: pl.Trainer, rows: pd.DataFrame) -> None:
    """Hand the training columns of epochs.csv rows to the loggers that take them (W&B:
    :mod:`advfit.tracking.training`); the replay logs its own columns."""
    rows = rows[training_columns(rows.columns)]
    if len(rows):
        for logger in trainer.loggers:
            if hasattr(logger, "log_epoch_rows"):
                logger.log_epoch_rows(rows)


class EpochSnapshots(pl.callbacks.Checkpoint):
    """After each epoch: save the network's weights (``checkpoints/epoch_NNN.pt``, 1-based),
    append the epoch's ``train_loss, train_acc, val_loss, val_acc`` to ``epochs.csv``, then
    write what resuming needs (``checkpoints/last.ckpt``: optimizer state, loop counters).

    The snapshots hold the plain network's ``state_dict`` only (a few hundred KB for
    LeNet). ``last.ckpt`` is written last, so a run killed at any moment resumes after its
    last completed epoch: at worst it repeats one epoch, never loses a snapshot. On resume,
    rows of epochs that the restored checkpoint has not completed are dropped, so that they
    are written again.

    A ``Checkpoint`` subclass, so Lightning runs its ``on_train_epoch_end`` after the
    LightningModule's (which logs the epoch's training metrics).
    """

    def __init__(self, run_dir: str) -> None:
        self.run = RunDir(run_dir)
        self.restored_logged = False
        #: Each trained epoch's row as written to epochs.csv, kept in last.ckpt (its
        #: callback state): evaluate.py and a resume check the file against it
        #: (advfit.checkpoints.check_epoch_record).
        self.rows: dict[str, dict[str, str]] = {}

    def state_dict(self) -> dict:
        return {EPOCH_ROWS: dict(self.rows)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = dict(state_dict.get(EPOCH_ROWS, {}))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = self.run.read_epochs()
        completed = trainer.current_epoch
        if len(epochs) and (epochs["epoch"] > completed).any():
            log.warning(
                "dropping epochs.csv rows after epoch %d: resuming from the checkpoint of that epoch",
                completed,
            )
            self.run.write_epochs(epochs[epochs["epoch"] <= completed])

        # A resumed launch logs the epochs it restored, so that its own experiment run (the
        # W&B run of this launch) holds every epoch.
        log_rows(trainer, epochs[epochs["epoch"] <= completed])
        self.restored_logged = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restored_logged = False

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A launch that found training complete (killed in the replay) still logs every
        epoch's training row (``on_train_start`` does not run when no epoch is left)."""
        if not self.restored_logged and not trainer.interrupted:
            epochs = self.run.read_epochs()
            log_rows(trainer, epochs[epochs["epoch"] <= trainer.current_epoch])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        net = pl_module.net
        atomic_torch_save(
            {k: v.detach().cpu() for k, v in net.state_dict().items()}, self.run.snapshot(epoch)
        )
        metrics = trainer.callback_metrics
        row = {"epoch": epoch}
        for column in TRAIN_COLUMNS[1:] + ROBUST_TRAIN_COLUMNS:
            key = column.replace("_", "/", 1)
            if key in metrics or column in TRAIN_COLUMNS:  # robust ones: adversarial regime
                row[column] = float(metrics[key]) if key in metrics else float("nan")
        epochs = self.run.read_epochs()
        epochs = epochs[epochs["epoch"] != epoch]
        frame = pd.DataFrame([row]) if epochs.empty else pd.concat([epochs, pd.DataFrame([row])])
        self.run.write_epochs(frame)
        self.rows[str(epoch)] = training_cells(pd.DataFrame([row]))[epoch]
        log_rows(trainer, pd.DataFrame([row]))
        # The full state (optimizer, loops, callbacks): resuming needs all of it.
        trainer.save_checkpoint(self.run.last_checkpoint, weights_only=False)
        # The run is named: jobs side by side interleave these lines on one terminal.
        snapshot = self.run.snapshot(epoch).relative_to(self.run.root)
        log.info("epoch %d trained: %s/%s", epoch, self.run.root.name, snapshot)
