"""Run the adversarial replay when fitting ends."""

from __future__ import annotations

import copy
import logging

import pytorch_lightning as pl
import torch

from advfit.attacks import Attack
from advfit.metrics.robustness import SnapshotMetrics
from advfit.replay import Replay
from advfit.rundir import RunDir

log = logging.getLogger(__name__)


def wandb_run_of(trainer: pl.Trainer):
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.WandbLogger):
            return logger.experiment
    return None


class AdversarialReplay(pl.Callback):
    """At the end of fitting: craft every attack against the best-validation snapshot and
    replay the sets on every snapshot (see :class:`advfit.replay.Replay`).

    Args:
        run_dir: the run directory.
        attacks: the attacks by name (the ``attack`` config group, instantiated).
        n_images: craft on the first ``n_images`` correctly classified test images.
        seed: seeds attacks with random starts, so a replay is repeatable.
        progress: show progress bars.
        metrics: robustness scores per snapshot (the ``metrics`` config), or None.
    """

    def __init__(
        self,
        run_dir: str,
        attacks: dict[str, Attack],
        n_images: int = 1000,
        seed: int = 0,
        progress: bool = True,
        metrics: SnapshotMetrics | None = None,
    ) -> None:
        self.run = RunDir(run_dir)
        self.attacks = dict(attacks)
        self.n_images, self.seed, self.progress = n_images, seed, progress
        self.metrics = metrics

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.interrupted:
            return
        datamodule = trainer.datamodule
        datamodule.to(pl_module.device)
        torch.manual_seed(self.seed)
        Replay(
            self.run,
            copy.deepcopy(pl_module.net),
            datamodule.x_test,
            datamodule.y_test,
            self.attacks,
            n_images=self.n_images,
            batch_size=datamodule.eval_batch_size,
            progress=self.progress and trainer.progress_bar_callback is not None,
            wandb_run=wandb_run_of(trainer),
            metrics=self.metrics,
        )()
