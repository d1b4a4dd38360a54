"""The tasks behind the entry points: train one run; replay a finished run's adversarials."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advfit.config import validate_train_config
from advfit.rundir import RunDir

log = logging.getLogger(__name__)

VERSIONED = ("torch", "torchvision", "pytorch-lightning", "hydra-core", "torchmetrics",
             "advertorch", "wandb", "numpy", "scikit-learn")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group; null entries are skipped."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    return {
        "dataset": cfg.data.name,
        "regime": cfg.regime.name,
        "fold": int(cfg.fold),
        "n_folds": int(cfg.n_folds),
        "seed": int(cfg.seed),
        "lr": float(cfg.regime.lr),
        "max_epochs": int(cfg.trainer.max_epochs),
        "batch_size": int(cfg.data.batch_size),
    }


def finish_loggers(loggers: list[Any]) -> None:
    """Close W&B whatever happened, so one failed job does not poison the next in a sweep."""
    for logger in loggers:
        if isinstance(logger, pl.loggers.WandbLogger):
            import wandb

            wandb.finish()


def build(cfg: DictConfig):
    """The data module (set up), the LightningModule and its plain network, from config."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    net = instantiate(
        cfg.model.net, input_shape=list(datamodule.input_shape), num_classes=datamodule.num_classes
    )
    model = instantiate(cfg.model, net=net)
    return datamodule, model


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one run end to end and write its run directory; returns its summary."""
    validate_train_config(cfg)
    run = RunDir(cfg.paths.output_dir)
    if run.is_done():
        log.info("skipping %s: it is complete (DONE exists)", run.root)
        return run.read_summary()

    started = time.perf_counter()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule, model = build(cfg)
    loggers = instantiate_group(cfg.get("logger"))
    try:
        trainer = instantiate(
            cfg.trainer, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False
        )
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        resume = run.last_checkpoint if run.last_checkpoint.is_file() else None
        if resume:
            log.info("resuming %s from %s", run.root, resume)
        fit_started = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
        if trainer.interrupted:
            raise KeyboardInterrupt
        seconds = {"setup": fit_started - started, "fit": time.perf_counter() - fit_started}
        summary = run.update_summary(
            **run_identity(cfg),
            best_epoch=run.best_epoch(),
            epochs_completed=int(trainer.current_epoch),
            device=str(trainer.strategy.root_device),
            seconds=seconds,
            versions=library_versions(),
        )
        run.mark_done()
        log.info("run complete: %s", run.root)
        return summary
    finally:
        finish_loggers(loggers)
