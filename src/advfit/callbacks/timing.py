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
        self.train = self.validate = 0.0
        self.epochs = 0
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
        seconds = time.perf_counter() - self._epoch_started - self._val_in_epoch
        self.train += seconds
        self.train_epochs.append(seconds)
        self.epochs += 1

    def on_fit_end(self, trainer, pl_module) -> None:
        self.run.update_summary(
            seconds={
                "train": self.train,
                "validate": self.validate,
                "epochs_timed": self.epochs,
                "train_epochs": self.train_epochs,
            }
        )
