"""What a replay puts on W&B: its per-snapshot columns against ``epoch`` (the same numbers as
``epochs.csv``), the distances as a table, example images, and the run's headline numbers as
summary; and the run of ``evaluate.py`` that receives them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig, OmegaConf

from advfit.rundir import RunDir, training_columns
from advfit.tracking.mode import resolve_wandb_mode
from advfit.tracking.runs import EVALUATE_JOB, epoch_axis, log_epoch_rows, own_run
from advfit.trend import RHO_FIRST_EPOCH, RHO_SUMMARY_KEY, rho_from

if TYPE_CHECKING:
    from advfit.replay import Examples, ReplayResult

#: The per-attack summary keys (``<attack>/<key>``) the dashboard pins beside ``best_epoch``.
ATTACK_SUMMARY_KEYS = ("asr_best", "asr_last", RHO_SUMMARY_KEY)


def open_evaluate_run(run: RunDir, run_cfg: DictConfig):
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


def log_replay(wandb_run, result: ReplayResult) -> None:
    """The replay's per-snapshot columns against ``epoch``, the distances as a table, the
    examples as images at the best epoch, and the headline numbers as summary."""
    if wandb_run is None:
        return
    import wandb

    trained = training_columns(result.epochs.columns)
    replayed = [c for c in result.epochs.columns if c == "epoch" or c not in trained]
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


def example_images(examples: Examples) -> list:
    """The W&B image panel of one attack's examples."""
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
    ASR) over the replayed epochs from ``RHO_FIRST_EPOCH`` (the best epoch's white-box ASR left
    out), and the mean L0 / L2 / L-inf of the fooling examples."""
    epochs = result.epochs.set_index("epoch")
    best, last = int(result.summary["best_epoch"]), int(epochs.index.max())
    out: dict[str, float] = {"best_epoch": best}
    asr_best, asr_last, rho_key = ATTACK_SUMMARY_KEYS
    for row in result.distances.to_dict("records"):
        name = row["attack"]
        column = epochs[f"asr_{name}"]
        out[f"{name}/{asr_best}"] = float(column.loc[best])
        out[f"{name}/{asr_last}"] = float(column.loc[last])
        rho = rho_from(result.epochs, f"asr_{name}", RHO_FIRST_EPOCH, crafted_at=best)
        if not math.isnan(rho):
            out[f"{name}/{rho_key}"] = rho
        for norm in ("l0", "l2", "linf"):
            out[f"{name}/{norm}_mean"] = float(row[f"{norm}_mean"])
    return out
