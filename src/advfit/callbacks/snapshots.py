"""Snapshot the network after every epoch and record the epoch's training metrics."""

from __future__ import annotations

import logging

import pandas as pd
import pytorch_lightning as pl

from advfit.rundir import TRAIN_COLUMNS, RunDir, atomic_torch_save

log = logging.getLogger(__name__)


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

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs = self.run.read_epochs()
        completed = trainer.current_epoch
        if len(epochs) and (epochs["epoch"] > completed).any():
            log.warning(
                "dropping epochs.csv rows after epoch %d: resuming from the checkpoint of that epoch",
                completed,
            )
            self.run.write_epochs(epochs[epochs["epoch"] <= completed])

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
        for column in TRAIN_COLUMNS[1:]:
            key = column.replace("_", "/", 1)
            row[column] = float(metrics[key]) if key in metrics else float("nan")
        epochs = self.run.read_epochs()
        epochs = epochs[epochs["epoch"] != epoch]
        frame = pd.DataFrame([row]) if epochs.empty else pd.concat([epochs, pd.DataFrame([row])])
        self.run.write_epochs(frame)
        trainer.save_checkpoint(self.run.last_checkpoint)
        log.info("epoch %d trained: %s", epoch, self.run.snapshot(epoch).name)
