"""Run the adversarial replay when fitting ends."""

from __future__ import annotations

import copy

import pytorch_lightning as pl
import torch

from advfit.attacks import Attack
from advfit.metrics import SnapshotMetrics
from advfit.replay import Replay, check_settings
from advfit.rundir import RunDir
from advfit.tracking.replay import log_replay
from advfit.tracking.training import wandb_run_of


class AdversarialReplay(pl.Callback):
    """At the end of fitting: craft every attack against the best-validation snapshot and
    replay the sets on every snapshot (see :class:`advfit.replay.Replay`).

    Args:
        run_dir: the run directory.
        attacks: the attacks by name (the ``attack`` config group, instantiated).
        n_images: craft on the first ``n_images`` correctly classified test images.
        seed: seeds attacks with random starts, so a replay is repeatable.
        progress: show progress bars.
        metrics: robustness scores per snapshot (the ``metrics`` config group), or None.
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

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check the settings against the test set before training, not after it."""
        trainer.datamodule.setup(stage)
        check_settings(self.n_images, self.attacks, self.metrics, len(trainer.datamodule.y_test))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.interrupted:
            return
        torch.manual_seed(self.seed)
        replay = Replay.for_run(
            self.run,
            copy.deepcopy(pl_module.net),
            trainer.datamodule,
            self.attacks,
            n_images=self.n_images,
            metrics=self.metrics,
            progress=self.progress and trainer.progress_bar_callback is not None,
            # The trainer's device, not the module's: Lightning calls on_fit_end after its
            # teardown has moved the module to the CPU, so pl_module.device is the CPU here.
            device=trainer.strategy.root_device,
        )
        log_replay(wandb_run_of(trainer), replay())
