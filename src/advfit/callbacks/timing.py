"""Where a run's training time goes: seconds training and validating, per launch."""

from __future__ import annotations

import time

import pytorch_lightning as pl

from advfit.rundir import RunDir


class StageSeconds(pl.Callback):
    """Time each epoch's training and validation passes and add them to ``summary.json``
    (``seconds.train``, ``seconds.validate``, ``seconds.epochs_timed``: this launch's epochs;
    a resumed launch times only the epochs it trained; ``seconds.train_epochs``: each epoch's
    training seconds, so that a first epoch's one-off costs can be told from the others').
    The replay times its own stages (``replay.seconds``, ``metrics_seconds_per_snapshot``)."""

    def __init__(self, run_dir: str) -> None:
        self.run = RunDir(run_dir)
        self.validate = 0.0
        # Each timed epoch's training seconds; their sum and count go into the summary.
        self.train_epochs: list[float] = []
        self._epoch_started = self._val_started = 0.0
        self._val_in_epoch = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_started, self._val_in_epoch = time.perf_counter(), 0.0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._val_started = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._val_started
        self.validate += seconds
        if not trainer.sanity_checking:
            self._val_in_epoch += seconds

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Lightning validates inside the training epoch: count that time once, as validation.
        self.train_epochs.append(time.perf_counter() - self._epoch_started - self._val_in_epoch)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.run.update_summary(
            seconds={
                "train": sum(self.train_epochs),
                "validate": self.validate,
                "epochs_timed": len(self.train_epochs),
                "train_epochs": self.train_epochs,
            }
        )
