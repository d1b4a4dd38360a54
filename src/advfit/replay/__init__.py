"""Adversarial replay: craft at the best epoch, then classify every set with every snapshot.

One implementation serves the end-of-fit callback and ``evaluate.py``, built by
:meth:`Replay.for_run`. Its stages are units of their own: :class:`Crafting` (sources,
attacks, distances), :func:`classify` (one snapshot's accuracy and ASRs), the per-snapshot
metrics (:class:`advfit.metrics.SnapshotMetrics`), and :class:`advfit.rundir.RunDir`, which
writes every file of the contract. The test set is read once and stays on the device; each
snapshot is loaded once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from advfit.attacks import Attack
from advfit.config import check_attacks_given, check_replay_images
from advfit.data.batches import EVAL_BATCH_SIZE, to_unit_range
from advfit.metrics import SnapshotMetrics
from advfit.progress import Progress
from advfit.replay.classify import classify
from advfit.replay.crafting import AdversarialSet, Crafting, Examples
from advfit.replay.network import ReplayError, load_weights, predict
from advfit.rundir import RunDir, training_columns

__all__ = [
    "AdversarialSet",
    "Examples",
    "Replay",
    "ReplayError",
    "ReplayResult",
    "check_settings",
    "load_weights",
    "predict",
]


@dataclass
class ReplayResult:
    """What a replay wrote: the merged ``epochs.csv``, ``distances.csv`` and the summary."""

    epochs: pd.DataFrame
    distances: pd.DataFrame
    summary: dict[str, Any]
    sets: dict[str, AdversarialSet]
    examples: dict[str, Examples]


def check_settings(
    n_images: int, attacks: dict[str, Attack], metrics: SnapshotMetrics | None, n_test: int
) -> None:
    """Stop before any work when the replay's settings cannot work on this test set."""
    check_replay_images(n_images)
    check_attacks_given(attacks)
    if metrics is not None:
        metrics.check_size(n_test)


def _span(epochs: list[int]) -> str:
    if epochs and epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"{epochs[0]}-{epochs[-1]}"
    return ",".join(map(str, epochs)) or "none"


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
        metrics: robustness scores to compute per snapshot, or None.
        class_names: the data set's class names by label, for the example pictures.
    """

    def __init__(
        self,
        run: RunDir,
        net: nn.Module,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        attacks: dict[str, Attack],
        n_images: int = 1000,
        batch_size: int = EVAL_BATCH_SIZE,
        progress: bool = True,
        metrics: SnapshotMetrics | None = None,
        class_names: tuple[str, ...] = (),
    ) -> None:
        self.metrics = metrics or None
        self.class_names = tuple(class_names)
        check_settings(n_images, attacks, self.metrics, len(y_test))
        self.run, self.net = run, net.to(x_test.device)
        self.x_test, self.y_test = x_test, y_test
        self.batch_size, self.progress = int(batch_size), progress
        self.crafting = Crafting(run, dict(attacks), int(n_images), self.batch_size, progress)

    @classmethod
    def for_run(
        cls,
        run: RunDir,
        net: nn.Module,
        datamodule,
        attacks: dict[str, Attack],
        n_images: int,
        metrics: SnapshotMetrics | None,
        progress: bool,
        device: torch.device,
    ) -> Replay:
        """The replay of ``run`` with its data module's test set on ``device``."""
        datamodule.to(device)
        return cls(
            run,
            net,
            datamodule.x_test,
            datamodule.y_test,
            attacks,
            n_images=n_images,
            batch_size=datamodule.eval_batch_size,
            progress=progress,
            metrics=metrics,
            class_names=getattr(datamodule, "class_names", ()),
        )

    def check(self) -> tuple[pd.DataFrame, dict[int, Any], int]:
        """The run's epochs, its snapshots and the best epoch; an error when it cannot replay."""
        if not self.run.root.is_dir():
            raise ReplayError(f"{self.run.root} does not exist")
        epochs = self.run.read_epochs()
        snapshots = self.run.snapshots()
        if epochs.empty or not snapshots:
            raise ReplayError(
                f"{self.run.root} is not a trained run: it has "
                f"{len(epochs)} epochs in epochs.csv and {len(snapshots)} snapshots in checkpoints/"
            )
        if sorted(snapshots) != epochs["epoch"].tolist():
            raise ReplayError(
                f"{self.run.epochs_csv} lists epochs {_span(epochs['epoch'].tolist())} but "
                f"{self.run.checkpoints} holds the snapshots of epochs {_span(list(snapshots))}: "
                "the run directory is inconsistent, so its best epoch cannot be trusted. "
                "Restore the files from a copy, or delete the run directory and train it again."
            )
        best = self.run.best_epoch()
        if best not in snapshots:
            raise ReplayError(f"the best epoch's snapshot {self.run.snapshot(best)} is missing")
        return epochs, snapshots, best

    def check_snapshots(self, snapshots: dict[int, Any]) -> None:
        """Load every snapshot of ``snapshots`` (:meth:`check`'s, weights only) once: a
        truncated or foreign one stops the replay before anything in the run directory
        changes."""
        for path in snapshots.values():
            load_weights(self.net, path)

    def snapshot_pass(
        self, snapshots: dict[int, Any], sets: dict[str, AdversarialSet]
    ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, list[float]]]:
        """Per snapshot: accuracy, ASRs and the metrics due; with per-image rows and timings."""
        rows, per_image, seconds = [], {}, {}
        last = max(snapshots)
        scored = to_unit_range(self.x_test[: self.metrics.n_images]) if self.metrics else None
        progress = Progress("replaying snapshots", len(snapshots), "snapshot", self.progress)
        # Each pass through the network counts, so a long snapshot (CLEVER on 96x96) is not
        # silent either.
        passes = self.net.register_forward_hook(lambda *_: progress.beat())
        try:
            for epoch, path in snapshots.items():
                self._replay_one(epoch, path, last, scored, sets, rows, per_image, seconds)
                progress.step()
        finally:
            passes.remove()
            progress.close()
        per_image = {
            name: pd.concat(frames).reset_index(level=0).reset_index(drop=True)
            for name, frames in per_image.items()
        }
        return pd.DataFrame(rows), per_image, seconds

    def _replay_one(self, epoch, path, last, scored, sets, rows, per_image, seconds) -> None:
        """One snapshot's row (accuracy, ASRs, the metrics due), appended to ``rows``, with its
        per-image scores and timings."""
        load_weights(self.net, path)
        row = {
            "epoch": epoch,
            **classify(self.net, self.x_test, self.y_test, sets, self.batch_size),
        }
        if self.metrics is not None:
            due = self.metrics.due(epoch, last)
            scores = self.metrics(self.net, scored, self.y_test) if due else self.metrics.skipped()
            row.update(scores.values)
            for name, frame in scores.per_image.items():
                per_image.setdefault(name, []).append(pd.concat({epoch: frame}, names=["epoch"]))
            for name, value in scores.seconds.items():
                seconds.setdefault(name, []).append(value)
        rows.append(row)

    def __call__(self) -> ReplayResult:
        epochs, snapshots, best = self.check()
        load_weights(self.net, snapshots[best])
        self.net.eval()
        sets, seconds = self.crafting(self.net, self.x_test, self.y_test, best)
        predicted = self.crafting.predictions(self.net, sets)
        distances = self.crafting.distances(self.x_test, sets, predicted)
        examples = self.crafting.examples(
            self.x_test, sets, predicted, class_names=self.class_names
        )

        started = time.perf_counter()
        replayed, per_image, metric_seconds = self.snapshot_pass(snapshots, sets)
        seconds["replay"] = time.perf_counter() - started

        training = epochs[training_columns(epochs.columns)]
        merged = training.merge(replayed, on="epoch", how="left")
        self.run.write_epochs(merged)
        self.run.write_distances(distances)
        for name, frame in per_image.items():
            self.run.write_per_image(name, frame)
        summary = self.run.update_summary(
            best_epoch=best,
            replay={
                "best_epoch": best,
                "n_requested": self.crafting.n_images,
                "n_crafted": len(next(iter(sets.values())).indices),
                "device": str(self.x_test.device),
                "attacks": {name: adv.params for name, adv in sets.items()},
                "seconds": seconds,
            },
            metrics_seconds_per_snapshot={
                key: sum(values) / len(values) for key, values in metric_seconds.items()
            },
            # Each scored snapshot's seconds, in epoch order (the first carries one-off costs).
            metrics_seconds_by_snapshot=metric_seconds,
        )
        return ReplayResult(merged, distances, summary, sets, examples)
