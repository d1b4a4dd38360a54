"""Everything W&B: the logger (offline by default, online once logged in; its Lightning class
is :class:`advfit.epoch_logger.EpochWandbLogger`), the run a replay logs to, what it logs,
and closing runs so one failed job does not poison a sweep."""

from __future__ import annotations

import logging
import math
import netrc
import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from advfit.errors import ConfigError, RunError, first_line
from advfit.rundir import TRAIN_COLUMNS, RunDir

if TYPE_CHECKING:  # Lightning is imported where a training run needs it: the report does not
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import WandbLogger

    from advfit.replay import ReplayResult

WANDB_MODES = ("auto", "online", "offline", "disabled")
#: The W&B job types of runs that are not training folds (the dashboard leaves them out of a
#: group's mean: their rows would count twice).
EVALUATE_JOB, REPORT_JOB = "evaluate", "report"

log = logging.getLogger(__name__)


#: W&B's own server, unless ``WANDB_BASE_URL`` names another (a self-hosted one).
WANDB_SERVER = "https://api.wandb.ai"


def wandb_server() -> str:
    return os.environ.get("WANDB_BASE_URL") or WANDB_SERVER


def wandb_logged_in() -> bool:
    """True when W&B has credentials: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc
    for the W&B host in use (``WANDB_BASE_URL``, a self-hosted server included)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(wandb_server()).hostname
    try:
        return netrc.netrc().authenticators(host or "api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_reachable(timeout: float = 5.0) -> bool:
    """True when this machine opens a connection to the W&B server in ``timeout`` seconds
    (a cluster's compute nodes often have no route out)."""
    url = urlparse(wandb_server())
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def resolve_wandb_mode(mode: str) -> str:
    if mode not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode!r} is invalid: accepted are {', '.join(WANDB_MODES)}"
        )
    if os.environ.get("WANDB_MODE") and mode == "auto":
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        if not wandb_logged_in():
            return "offline"
        if not wandb_reachable():
            log.warning(
                "W&B: logged in, but the server cannot be reached from %s: logging offline; "
                "upload later with make sync",
                socket.gethostname(),
            )
            return "offline"
        return "online"
    return mode


def run_id(save_dir: str | Path) -> str:
    """The W&B run id of a run directory, kept in it so a resumed run continues its W&B run."""
    path = Path(save_dir) / "wandb" / "advfit-run-id"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex[:16]
    path.write_text(new + "\n")
    return new


def wandb_logger(
    save_dir: str, mode: str = "auto", init_timeout: float = 30, **kwargs
) -> WandbLogger:
    """Lightning's WandbLogger with the mode resolved, a stable run id, and a bounded wait
    for the server (``init_timeout`` seconds) when online."""
    import wandb

    from advfit.epoch_logger import EpochWandbLogger

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
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            try:
                _ = logger.experiment
            except wandb.errors.Error as err:
                host = wandb_server()
                raise RunError(
                    f"W&B could not start an online run at {host}: {first_line(err)}. Check `wandb login` "
                    "(or WANDB_API_KEY) and the network, or log offline with "
                    "logger.wandb.mode=offline (upload later with `make sync`)."
                ) from None


def wandb_run_of(trainer: pl.Trainer):
    """The W&B run of a Trainer's loggers, or None."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def announce(run) -> None:
    """Say where a W&B run is: its URL, or its offline directory and how to upload it."""
    if run is None or not hasattr(run, "settings"):
        return
    if getattr(run.settings, "_offline", False) or run.settings.mode == "offline":
        offline = Path(run.dir).parent
        log.info("W&B run (offline): %s; upload it with: wandb sync %s", offline, offline)
    elif getattr(run, "url", None):
        log.info("W&B run: %s", run.url)


def finish_loggers(loggers: list[Any]) -> None:
    """Close W&B whatever happened, so one failed job does not poison the next in a sweep."""
    from pytorch_lightning.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        close(wandb.run)


def close(wandb_run) -> None:
    """Say where the run is, then finish it."""
    if wandb_run is not None:
        announce(wandb_run)
        wandb_run.finish()


def open_wandb_run(run: RunDir, run_cfg: DictConfig):
    """A W&B run of its own for ``evaluate.py`` (job type ``evaluate``, the training run's
    group, named after it), when the run logged to W&B; else None. The training run's
    history is never touched."""
    node = OmegaConf.select(run_cfg, "logger.wandb")
    if not node:
        return None
    wandb_run = own_run(
        node,
        run.root,
        resolve_wandb_mode(node.get("mode", "auto")),
        group=node.get("group"),
        name=f"{node.get('name')}-evaluate",
        job_type=EVALUATE_JOB,
        tags=list(node.get("tags") or []),
        config=OmegaConf.to_container(run_cfg, resolve=True),
    )
    epoch_axis(wandb_run)
    return wandb_run


def own_run(node: DictConfig, root: Path, mode: str, **fields):
    """A new W&B run (a fresh id) beside a training run: in its project and entity (the
    ``logger.wandb`` config ``node``), files under ``root/wandb``, start-up bounded by its
    ``init_timeout``; ``fields`` are ``wandb.init``'s group, name, job type, tags..."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        dir=str(root),
        id=uuid.uuid4().hex[:16],
        mode=mode,
        project=node.get("project"),
        entity=node.get("entity"),
        settings=wandb.Settings(init_timeout=float(node.get("init_timeout", 30))),
        **fields,
    )


def log_replay(wandb_run, result: ReplayResult) -> None:
    """The replay's per-snapshot columns against ``epoch`` (the same numbers as
    ``epochs.csv``), the distances as a table, and the run's headline numbers as summary."""
    if wandb_run is None:
        return
    import wandb

    replayed = [c for c in result.epochs.columns if c == "epoch" or c not in TRAIN_COLUMNS]
    log_epoch_rows(wandb_run, result.epochs[replayed])
    best = int(result.summary["best_epoch"])
    wandb_run.log(
        {
            "epoch": best,  # the tables and pictures belong to the best epoch
            "distances": wandb.Table(dataframe=result.distances),
            **{
                f"examples/{name}": example_images(examples)
                for name, examples in result.examples.items()
            },
        }
    )
    wandb_run.summary.update(headline(result))


def example_picture(clean, adversarial, gap: int = 2) -> tuple[np.ndarray, float]:
    """One picture of an example: clean | adversarial | perturbation amplified to the full
    grey range (mid-grey = unchanged), enlarged so a 28-pixel image is readable; uint8 HWC,
    and the amplification factor."""
    import torch

    delta = adversarial - clean
    peak = float(delta.abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    tiles = [clean, adversarial, (0.5 + gain * delta).clamp(0, 1)]
    channels, height = clean.shape[0], clean.shape[1]
    spacer = torch.ones(channels, height, gap)
    row = torch.cat([tiles[0], spacer, tiles[1], spacer, tiles[2]], dim=2)
    scale = max(1, 96 // height)
    row = row.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    pixels = (row * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return (pixels[..., 0] if channels == 1 else pixels), gain


def example_images(examples) -> list:
    """The W&B image panel of one attack's examples (:class:`advfit.replay.Examples`)."""
    import wandb

    images = []
    for i in range(len(examples.labels)):
        pixels, gain = example_picture(examples.clean[i], examples.adversarial[i])
        images.append(
            wandb.Image(
                pixels,
                caption=f"{examples.caption(i)} (clean | {examples.attack} | "
                f"perturbation x{gain:.0f})",
            )
        )
    return images


def headline(result: ReplayResult) -> dict[str, float]:
    """Best epoch; per attack the ASR at the best and last epochs, Spearman rho(test accuracy,
    ASR) over the replayed epochs from epoch 5 (the best epoch's white-box ASR left out), and
    the mean L0 / L2 / L-inf of the fooling examples."""
    from advfit.report.verdict import RHO_FIRST_EPOCH, RHO_SUMMARY_KEY, rho_from

    epochs = result.epochs.set_index("epoch")
    best, last = int(result.summary["best_epoch"]), int(epochs.index.max())
    out: dict[str, float] = {"best_epoch": best}
    for row in result.distances.to_dict("records"):
        name = row["attack"]
        column = epochs[f"asr_{name}"]
        out[f"{name}/asr_best"] = float(column.loc[best])
        out[f"{name}/asr_last"] = float(column.loc[last])
        rho = rho_from(result.epochs, f"asr_{name}", RHO_FIRST_EPOCH, crafted_at=best)
        if not math.isnan(rho):
            out[f"{name}/{RHO_SUMMARY_KEY}"] = rho
        for norm in ("l0", "l2", "linf"):
            out[f"{name}/{norm}_mean"] = float(row[f"{norm}_mean"])
    return out


# -- one axis: every per-epoch quantity against the 1-based ``epoch`` of epochs.csv ---------


def epoch_axis(wandb_run) -> None:
    """Plot every key of ``wandb_run`` against the 1-based ``epoch``."""
    wandb_run.define_metric("epoch")
    wandb_run.define_metric("*", step_metric="epoch")


def log_epoch_rows(wandb_run, rows: pd.DataFrame) -> None:
    """One W&B history row per epoch: ``epoch`` and the row's non-NaN values."""
    if wandb_run is None:
        return
    for row in rows.to_dict("records"):
        values = {
            k: v
            for k, v in row.items()
            if k != "epoch" and not (isinstance(v, float) and math.isnan(v))
        }
        wandb_run.log({"epoch": int(row["epoch"]), **values})


# -- the report of a sweep ----------------------------------------------------------------


def open_report_run(configs: list[dict], out: Path, mode: str = "auto"):
    """A W&B run (job type ``report``) for a sweep's report, in the project and entity its
    runs logged to, with its files under ``out/wandb``; None when no run logged to W&B or
    ``mode`` is ``disabled``."""
    nodes = (OmegaConf.select(OmegaConf.create(c), "logger.wandb") for c in configs if c)
    node = next((n for n in nodes if n), None)
    if not node:
        return None
    mode = resolve_wandb_mode(node.get("mode", "auto") if mode == "auto" else mode)
    if mode == "disabled":
        return None
    import wandb

    tasks = sorted({str(c.get("task_name")) for c in configs if c.get("task_name")})
    out.mkdir(parents=True, exist_ok=True)
    try:
        return own_run(
            node,
            out,
            mode,
            group="report",
            job_type=REPORT_JOB,
            name=f"report-{'-'.join(tasks) or 'sweep'}",
            tags=["report", *tasks],
        )
    except wandb.errors.Error as err:  # the report's files are written already
        log.warning("W&B did not start the report's run (%s); the report is on disk only", err)
        return None


def log_report(
    wandb_run,
    out: Path,
    figures: dict[str, str],
    tables: dict[str, pd.DataFrame],
    verdicts: pd.DataFrame,
) -> None:
    """The report on W&B: each figure (``figures/<name>``, captioned), the verdict and
    distance tables, each verdict word as summary, and report.html / report.md as an
    artifact of type ``report``; then the run is closed."""
    import wandb

    row: dict[str, Any] = {
        f"figures/{name}": wandb.Image(str(out / f"{name}.png"), caption=caption)
        for name, caption in figures.items()
    }
    row.update({name: wandb.Table(dataframe=t) for name, t in tables.items() if t is not None})
    wandb_run.log(row)
    for r in verdicts.to_dict("records") if not verdicts.empty else []:
        wandb_run.summary[f"verdict/{r['dataset']}/{r['regime']}/{r['attack']}"] = r["holds"]
    artifact = wandb.Artifact(f"{wandb_run.name}-report", type="report")
    for name in ("report.html", "report.md"):
        artifact.add_file(str(out / name))
    wandb_run.log_artifact(artifact)
    close(wandb_run)
