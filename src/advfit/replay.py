"""Adversarial replay: craft at the best epoch, then classify every set with every snapshot.

One implementation serves the end-of-fit callback and ``evaluate.py``. The test set is read
once and stays on the device; each snapshot is loaded once and classifies the clean test set
and every adversarial set in batched forward passes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from advfit.attacks import Attack
from advfit.data.batches import to_unit_range
from advfit.errors import ConfigError, RunError
from advfit.metrics import perturbation_norms, summarize_norms
from advfit.metrics.robustness import SnapshotMetrics
from advfit.rundir import TRAIN_COLUMNS, RunDir, atomic_torch_save, atomic_write_text

log = logging.getLogger(__name__)

DISTANCE_COLUMNS = [
    "attack",
    "n",
    "n_fooled",
    "l0_mean",
    "l0_std",
    "l2_mean",
    "l2_std",
    "linf_mean",
    "linf_std",
    "l0_elements_mean",
    "l0_elements_std",
]


class ReplayError(RunError):
    """The run directory cannot be replayed (not a run, no snapshots, a corrupt file)."""


@dataclass
class AdversarialSet:
    """One crafted set: adversarial images with the test images they come from."""

    attack: str
    x_adv: torch.Tensor  # float32 pixels in [0, 1], N x C x H x W
    indices: torch.Tensor  # positions in the test set
    labels: torch.Tensor  # true labels
    best_epoch: int
    params: dict[str, Any] = field(default_factory=dict)

    def save(self, path) -> None:
        atomic_torch_save(
            {
                "attack": self.attack,
                "x_adv": self.x_adv.detach().cpu(),
                "indices": self.indices.cpu(),
                "labels": self.labels.cpu(),
                "best_epoch": self.best_epoch,
                "params": self.params,
            },
            path,
        )

    @classmethod
    def load(cls, path, device: torch.device | str = "cpu") -> AdversarialSet:
        try:
            blob = torch.load(path, map_location=device, weights_only=True)
            return cls(**blob)
        except Exception as err:
            raise ReplayError(f"{path} is not a readable adversarial set: {err}") from err


def load_weights(net: nn.Module, path) -> nn.Module:
    """Load a snapshot into ``net``; a clear error when the file is truncated or foreign."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as err:
        raise ReplayError(f"snapshot {path} is corrupt or does not fit this model: {err}") from err
    return net


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes for ``x`` (uint8 images, or float pixels in [0, 1])."""
    net.eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        out.append(net(to_unit_range(batch) if batch.dtype == torch.uint8 else batch).argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=x.device)


class Replay:
    """Craft each attack against the best snapshot and replay every set on every snapshot.

    Args:
        run: the run directory (snapshots and epochs.csv must exist).
        net: a network of the run's architecture; its weights are replaced by each snapshot.
        x_test, y_test: the test set, uint8 images and labels, on the device to use.
        attacks: the attacks, by name.
        n_images: craft on the first ``n_images`` test images the best snapshot gets right.
        batch_size: images per forward pass when classifying.
        progress: show progress bars.
        wandb_run: a W&B run to log to, or None.
        metrics: robustness scores to compute per snapshot, or None.
    """

    def __init__(
        self,
        run: RunDir,
        net: nn.Module,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        attacks: dict[str, Attack],
        n_images: int = 1000,
        batch_size: int = 1000,
        progress: bool = True,
        wandb_run: Any = None,
        metrics: SnapshotMetrics | None = None,
    ) -> None:
        if int(n_images) < 1:
            raise ConfigError(f"replay.n_images={n_images} is invalid: it must be >= 1")
        if not attacks:
            raise ConfigError("no attacks configured: choose some, e.g. attack=[fgsm,pgd,cw]")
        self.run, self.net = run, net
        self.x_test, self.y_test = x_test, y_test
        self.attacks = attacks
        self.n_images, self.batch_size = int(n_images), int(batch_size)
        self.progress, self.wandb_run = progress, wandb_run
        self.metrics = metrics
        if metrics is not None:
            metrics.check_size(len(y_test))
        self.metric_seconds: dict[str, list[float]] = {}
        self.device = x_test.device

    # -- steps ---------------------------------------------------------------------------
    def check(self) -> tuple[pd.DataFrame, dict[int, Any], int]:
        if not self.run.root.is_dir():
            raise ReplayError(f"{self.run.root} does not exist")
        epochs = self.run.read_epochs()
        snapshots = self.run.snapshots()
        if epochs.empty or not snapshots:
            raise ReplayError(
                f"{self.run.root} is not a trained run: it has "
                f"{len(epochs)} epochs in epochs.csv and {len(snapshots)} snapshots in checkpoints/"
            )
        best = self.run.best_epoch()
        if best not in snapshots:
            raise ReplayError(f"the best epoch's snapshot {self.run.snapshot(best)} is missing")
        return epochs, snapshots, best

    def sources(self, best: int) -> torch.Tensor:
        """Indices of the first ``n_images`` test images the best snapshot classifies correctly."""
        correct = (
            (predict(self.net, self.x_test, self.batch_size) == self.y_test).nonzero().flatten()
        )
        if len(correct) < self.n_images:
            log.warning(
                "the best snapshot (epoch %d) classifies only %d test images correctly; "
                "crafting on those instead of the %d requested",
                best,
                len(correct),
                self.n_images,
            )
        return correct[: self.n_images]

    def craft(self, name: str, attack: Attack, indices: torch.Tensor, best: int) -> AdversarialSet:
        path = self.run.attack_set(name)
        params = attack.describe()
        if path.is_file():
            try:
                existing = AdversarialSet.load(path, self.device)
            except ReplayError as err:
                log.warning("%s; crafting it again", err)
            else:
                if (
                    existing.best_epoch == best
                    and existing.params == params
                    and torch.equal(existing.indices, indices)
                ):
                    log.info("reusing %s (crafted earlier at epoch %d)", path, best)
                    return existing
        x = to_unit_range(self.x_test[indices])
        y = self.y_test[indices]
        adv = AdversarialSet(
            name, attack(self.net, x, y, progress=self.progress), indices, y, best, params
        )
        adv.save(path)
        return adv

    def distances(self, sets: dict[str, AdversarialSet]) -> pd.DataFrame:
        rows = []
        for name, adv in sets.items():
            x = to_unit_range(self.x_test[adv.indices])
            fooled = predict(self.net, adv.x_adv, self.batch_size) != adv.labels
            norms = perturbation_norms(x, adv.x_adv)
            rows.append(
                {
                    "attack": name,
                    "n": len(adv.labels),
                    "n_fooled": int(fooled.sum()),
                    **summarize_norms(norms, fooled),
                }
            )
        return pd.DataFrame(rows, columns=DISTANCE_COLUMNS)

    def replay(self, snapshots: dict[int, Any], sets: dict[str, AdversarialSet]) -> pd.DataFrame:
        rows, clever_rows = [], []
        last = max(snapshots)
        if self.metrics is not None:
            self.x_scored = to_unit_range(self.x_test[: self.metrics.n_images])
        bar = tqdm(
            snapshots.items(),
            desc="replaying snapshots",
            unit="snapshot",
            disable=not self.progress,
        )
        for epoch, path in bar:
            load_weights(self.net, path)
            row = {"epoch": epoch}
            row["test_acc"] = (
                (predict(self.net, self.x_test, self.batch_size) == self.y_test)
                .float()
                .mean()
                .item()
            )
            for name, adv in sets.items():
                accuracy = (
                    (predict(self.net, adv.x_adv, self.batch_size) == adv.labels).float().mean()
                )
                row[f"asr_{name}"] = 1.0 - accuracy.item()
            if self.metrics is not None:
                if self.metrics.due(epoch, last):
                    values, seconds = self.metrics(self.net, self.x_scored, self.y_test)
                    row.update(values)
                    clever = self.metrics.last_clever
                    if clever is not None:
                        clever_rows.extend(
                            {
                                "epoch": epoch,
                                "test_index": i,
                                "clever": float(score),
                                "runaway_fits": int(runaway),
                            }
                            for i, (score, runaway) in enumerate(
                                zip(clever.scores.tolist(), clever.runaway.tolist(), strict=True)
                            )
                        )
                    for key, value in seconds.items():
                        self.metric_seconds.setdefault(key, []).append(value)
                else:
                    row.update({column: float("nan") for column in self.metrics.columns})
            rows.append(row)
        if clever_rows:
            # Per-image CLEVER scores (the epochs.csv column is their mean), with the number
            # of classes whose Weibull fit ran away.
            frame = pd.DataFrame(clever_rows)
            atomic_write_text(
                self.run.root / "clever.csv", frame.to_csv(index=False, float_format="%.8g")
            )
        return pd.DataFrame(rows)

    # -- the whole replay ---------------------------------------------------------------
    def __call__(self) -> dict[str, Any]:
        epochs, snapshots, best = self.check()
        seconds: dict[str, float] = {}
        load_weights(self.net, snapshots[best])
        self.net.to(self.device).eval()
        indices = self.sources(best)
        if len(indices) == 0:
            raise ReplayError(
                f"the best snapshot (epoch {best}) classifies no test image correctly"
            )
        sets = {}
        for name, attack in self.attacks.items():
            started = time.perf_counter()
            sets[name] = self.craft(name, attack, indices, best)
            seconds[f"craft_{name}"] = time.perf_counter() - started
        distances = self.distances(sets)

        started = time.perf_counter()
        replayed = self.replay(snapshots, sets)
        seconds["replay"] = time.perf_counter() - started

        training = epochs[[c for c in TRAIN_COLUMNS if c in epochs.columns]]
        merged = training.merge(replayed, on="epoch", how="left")
        self.run.write_epochs(merged)
        atomic_write_text(
            self.run.distances_csv, distances.to_csv(index=False, float_format="%.8g")
        )
        summary = self.run.update_summary(
            best_epoch=best,
            replay={
                "best_epoch": best,
                "n_requested": self.n_images,
                "n_crafted": len(indices),
                "attacks": {name: adv.params for name, adv in sets.items()},
                "seconds": seconds,
            },
            metrics_seconds_per_snapshot={
                key: sum(values) / len(values) for key, values in self.metric_seconds.items()
            },
        )
        self.log_wandb(merged, distances)
        return summary

    def log_wandb(self, epochs: pd.DataFrame, distances: pd.DataFrame) -> None:
        if self.wandb_run is None:
            return
        import wandb

        run = self.wandb_run
        run.define_metric("snapshot/epoch")
        run.define_metric("replay/*", step_metric="snapshot/epoch")
        for row in epochs.to_dict("records"):
            values = {
                f"replay/{k}": v
                for k, v in row.items()
                if k not in TRAIN_COLUMNS and not (isinstance(v, float) and math.isnan(v))
            }
            run.log({"snapshot/epoch": int(row["epoch"]), **values})
        run.log({"replay/distances": wandb.Table(dataframe=distances)})
