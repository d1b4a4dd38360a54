"""The tasks behind the entry points: train one run; replay a finished run's adversarials."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from advfit.checkpoints import AtomicCheckpointIO, check_epoch_record, usable_checkpoint
from advfit.config import check_attacks_given, replay_attacks, validate_train_config
from advfit.cores import (
    keep_nvml_check_only_with_nvml,
    parallel_jobs,
    set_cpu_threads,
    spread_over_gpus,
)
from advfit.errors import ConfigError
from advfit.learning import learning_summary
from advfit.provenance import (
    check_data,
    inputs_record,
    library_versions,
    machine,
    run_identity,
)
from advfit.replay import Replay
from advfit.rundir import RunDir, check_run_dir_matches
from advfit.sweep import progress
from advfit.tracking.artifacts import log_evaluate_artifacts
from advfit.tracking.replay import log_replay, open_evaluate_run
from advfit.tracking.runs import close
from advfit.tracking.training import finish_loggers, log_artifacts, start_loggers, summarize
from advfit.trust import open_run_to_evaluate

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group; null entries are skipped."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def build(cfg: DictConfig):
    """The data module (set up), the LightningModule and its plain network, from config."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    net = instantiate(
        cfg.model.net, input_shape=list(datamodule.input_shape), num_classes=datamodule.num_classes
    )
    model = instantiate(cfg.model, net=net, **regime_training(cfg))
    return datamodule, model


def regime_training(cfg: DictConfig) -> dict:
    """What a regime adds to the LightningModule: PGD adversarial training (with the run's
    seed) and a learning-rate schedule, where it sets them."""
    regime = cfg.get("regime") or {}
    out = {}
    if regime.get("adversarial") is not None:
        settings = OmegaConf.to_container(regime.adversarial, resolve=True)
        out["adversarial"] = {**settings, "seed": cfg.seed}
    if regime.get("scheduler") is not None:
        out["scheduler"] = regime.scheduler
    return out


def build_trainer(cfg: DictConfig, loggers: list[Any]) -> pl.Trainer:
    """The Trainer with the configured callbacks. No progress bars when they are switched off
    or when jobs run side by side (their bars would overwrite each other on one terminal):
    each epoch then logs one line ("epoch n trained")."""
    callbacks = instantiate_group(cfg.get("callbacks"))
    bars = cfg.trainer.get("enable_progress_bar", True) and parallel_jobs() == 1
    if not bars:
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    try:
        return instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
            enable_progress_bar=bars,
        )
    except Exception as err:  # Hydra wraps what Lightning refuses (trainer.devices=0, ...)
        cause = err.__cause__
        if not isinstance(cause, MisconfigurationException):
            raise
        raise ConfigError(
            f"the trainer refuses its settings: {cause} (trainer.accelerator="
            f"{cfg.trainer.get('accelerator')}, trainer.devices={cfg.trainer.get('devices')})"
        ) from None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one run end to end and write its run directory; returns its summary."""
    validate_train_config(cfg)
    run = RunDir(cfg.paths.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    check_run_dir_matches(run.root, resolved)
    with run.lock():
        if run.is_done():
            run.check_digests()  # DONE is trusted with the files it vouches for only
            log.info("skipping %s: it is complete (DONE exists)", run.root)
            return run.read_summary()
        set_cpu_threads(cfg)
        keep_nvml_check_only_with_nvml()
        spread_over_gpus(cfg)
        # The contract keeps the resolved config, so evaluate.py and the report need no Hydra.
        run.write_config(resolved)
        return fit(cfg, run, resolved)


def fit(cfg: DictConfig, run: RunDir, resolved: dict[str, Any]) -> dict[str, Any]:
    """Fit (resuming after the last completed epoch when there is one), replay, mark DONE."""
    started = time.perf_counter()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule, model = build(cfg)
    resume = usable_checkpoint(run.last_checkpoint)
    inputs = check_resumable(run, cfg, datamodule, resume)
    loggers = instantiate_group(cfg.get("logger"))
    try:
        trainer = build_trainer(cfg, loggers)
        start_loggers(loggers)
        for logger in loggers:
            logger.log_hyperparams(resolved)
        if resume:
            log.info("resuming %s after epoch %d (%s)", run.root, resume[1], resume[0].name)
        fit_started = time.perf_counter()
        trainer.fit(
            model,
            datamodule=datamodule,
            ckpt_path=resume[0] if resume else None,
            weights_only=True,  # a resume point holds weights and counters, never code
        )
        if trainer.interrupted:
            raise KeyboardInterrupt
        seconds = {
            "setup": fit_started - started,
            "fit_and_replay": time.perf_counter() - fit_started,
        }
        data = inputs["data_sha256"]  # hashed once, before training (inputs.json)
        learned = learning_summary(run.read_epochs(), datamodule.num_classes, len(datamodule.y_val))
        if not learned["learned"]:
            log.warning("%s did not learn: %s", run.root.name, learned["reason"])
        summarize(loggers, learned=learned["learned"])
        summary = run.update_summary(
            **run_identity(cfg),
            learned=learned,
            **({"data_sha256": data} if data else {}),
            best_epoch=run.best_epoch(),
            epochs_completed=int(trainer.current_epoch),
            device=str(trainer.strategy.root_device),
            machine=machine(trainer.strategy.root_device),
            seconds=seconds,
            versions=library_versions(),
        )
        run.mark_done()
        log.info("run complete: %s", run.root)
        log_artifacts(loggers, run)
        if (message := progress(run.root, parallel_jobs())) is not None:
            log.info(message)
        return summary
    finally:
        finish_loggers(loggers)


def check_resumable(
    run: RunDir, cfg: DictConfig, datamodule, resume: tuple[Any, int] | None
) -> dict[str, Any]:
    """Before an epoch trains: the data and config are those ``inputs.json`` recorded before
    the run's first epoch (written now when there is none), and the epochs.csv rows kept on
    resuming are those training wrote (``last.ckpt``'s record). A launch that would mix
    either stops here, having changed nothing. Returns what the run trains on (the record)."""
    record = inputs_record(cfg, datamodule)
    if not run.check_inputs(record, "Resuming it"):
        if run.snapshots():
            log.warning(
                "%s recorded no inputs.json (an earlier version): its data cannot be checked; "
                "recording today's",
                run.root.name,
            )
        run.record_inputs(record)
    if resume:
        check_epoch_record(run, through=resume[1])
    return record


def replayed_table(run: RunDir) -> str:
    """The replay's columns of ``epochs.csv`` as text: test accuracy, and per attack the
    paper's ASR, the ASR among correctly classified sources and their count."""
    epochs = run.read_epochs()
    shown = ["epoch", "test_acc"] + [
        c for c in epochs.columns if c.startswith(("asr_", "n_correct_"))
    ]
    return epochs[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def command_line_overrides() -> list[str]:
    """The overrides of this Hydra launch as typed, spaces removed ([] outside Hydra)."""
    try:
        return [str(o).replace(" ", "") for o in HydraConfig.get().overrides.task]
    except ValueError:
        return []


def evaluate(cfg: DictConfig, opened: tuple[RunDir, DictConfig] | None = None) -> dict[str, Any]:
    """Replay a finished or interrupted run directory with its own saved config.

    ``cfg.attack`` (when given) replaces the run's attacks and ``cfg.replay.n_images`` (when
    given) its number of images; nothing is retrained. Everything is checked first and
    nothing changes when a check fails; ``DONE`` is removed while the run's files change and
    written again at the end when training had completed. ``opened``: what
    :func:`advfit.trust.open_run_to_evaluate` returned for ``cfg``, when the caller checked
    the run directory already.
    """
    run, run_cfg = opened or open_run_to_evaluate(cfg)
    set_cpu_threads(cfg)
    keep_nvml_check_only_with_nvml()
    given = cfg.get("attack")
    if "attack=[]" in command_line_overrides():  # not "the run's own attacks": refused
        check_attacks_given([])
    attacks = dict(instantiate(replay_attacks(given, run_cfg)))
    n_images = cfg.replay.n_images if cfg.replay.n_images is not None else run_cfg.replay.n_images
    metrics = instantiate(run_cfg.metrics) if run_cfg.get("metrics") else None
    datamodule, model = build(run_cfg)
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(int(run_cfg.seed))
    replay = Replay.for_run(
        run, model.net, datamodule, attacks, n_images, metrics, cfg.progress, torch.device(device)
    )
    _, snapshots, _ = replay.check()
    with run.lock():
        was_done = run.is_done()
        if was_done:
            run.check_digests()
        else:  # its epochs.csv is what training wrote before a replay seals it
            check_epoch_record(run)
        check_data(run, run_cfg, datamodule)
        replay.check_snapshots(snapshots)
        # DONE goes while the run's files change, and comes back if the replay fails: a
        # failed evaluate.py leaves the run as complete as it was.
        run.unmark_done()
        wandb_run = open_evaluate_run(run, run_cfg) if cfg.wandb else None
        try:
            try:
                result = replay()
                log_replay(wandb_run, result)
            except BaseException:
                if was_done:
                    run.mark_done(vouch=False)
                raise
            if was_done or len(result.epochs) >= int(run_cfg.trainer.max_epochs):
                run.mark_done()
            # What it read (snapshots, sets) and what it wrote (the replay), on W&B.
            log_evaluate_artifacts(wandb_run, run)
        finally:
            close(wandb_run)
    return result.summary
