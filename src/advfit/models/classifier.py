"""The LightningModule that trains a plain network (``net``) as an image classifier."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection, SumMetric
from torchmetrics.classification import MulticlassAccuracy


class Classifier(pl.LightningModule):
    """Cross-entropy training of ``net``; logs ``train/loss``, ``train/acc``, ``val/loss``,
    ``val/acc`` once per epoch (one torchmetrics collection per split).

    The metrics are only updated in each step and computed and logged once at the end of the
    epoch: for a network as small as LeNet, per-step logging and per-batch metric values cost
    a large share of the step (see BENCHMARKS.md).

    Args:
        net: the network; takes pixels in [0, 1], returns logits; has ``num_classes``.
        optimizer: a partial optimizer (``_partial_: true`` in config) taking the parameters.
        fused_on_gpu: on a CUDA device, build an optimizer that has a fused implementation
            (Adam, AdamW, SGD) with ``fused=True`` unless the config sets ``fused`` itself:
            one kernel a step for all parameters instead of several. On an H200 with ten runs
            sharing the GPU it cut a CIFAR-10-sized run's training by about 8% (BENCHMARKS.md).
            The CPU keeps the default implementation, so CPU results do not change.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        fused_on_gpu: bool = True,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.fused_on_gpu = fused_on_gpu
        self.train_metrics = self._metrics(net.num_classes)
        self.val_metrics = self._metrics(net.num_classes)
        self._seen = {"train": 0, "val": 0}  # images in the epoch's loss sum, per split

    @staticmethod
    def _metrics(num_classes: int) -> MetricCollection:
        # The epoch's loss is the mean over its images: the sum of each batch's mean loss
        # times its size, divided by the images seen (``_epoch_values``). Not torchmetrics'
        # MeanMetric: with nan_strategy="disable" it drops the weights (torchmetrics 1.9,
        # an unweighted mean of the batches), and a weight given as a number becomes a
        # tensor copied to the device with a wait at every step. Without the metrics'
        # per-update input checks: the NaN check and the accuracy's label-range check each
        # read a value back from the device (on an H200, 3.4 reads a step with them, 1.4
        # without). The labels come from the data module, and a NaN loss shows as NaN
        # rather than being left out with a warning.
        return MetricCollection(
            {
                "loss": SumMetric(nan_strategy="disable"),
                "acc": MulticlassAccuracy(
                    num_classes=num_classes, average="micro", validate_args=False
                ),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        metrics = self._split_metrics(split)
        # A tensor times a number: no tensor is made from host data at each step.
        metrics["loss"].update(loss.detach() * len(y))
        metrics["acc"].update(logits.detach(), y)
        self._seen[split] += len(y)
        return loss

    def _split_metrics(self, split: str) -> MetricCollection:
        return self.train_metrics if split == "train" else self.val_metrics

    def _epoch_values(self, split: str) -> dict[str, torch.Tensor]:
        """The epoch's mean loss over its images and its accuracy, so far."""
        values = self._split_metrics(split).compute()
        return {"loss": values["loss"] / self._seen[split], "acc": values["acc"]}

    def _log_epoch(self, split: str) -> None:
        for name, value in self._epoch_values(split).items():
            self.log(f"{split}/{name}", value)
        self._split_metrics(split).reset()
        self._seen[split] = 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Lightning moves the module to its device before it asks for the optimizer.
        extra = {"fused": True} if self._fuse_on(self.device) else {}
        return self.optimizer_factory(params=self.parameters(), **extra)

    def _fuse_on(self, device: torch.device) -> bool:
        """Whether the optimizer is built fused on ``device`` (see ``fused_on_gpu``)."""
        factory = self.optimizer_factory
        if not (self.fused_on_gpu and device.type == "cuda"):
            return False
        if isinstance(factory, functools.partial):
            if "fused" in factory.keywords:  # the config chose
                return False
            factory = factory.func
        try:
            return "fused" in inspect.signature(factory).parameters
        except (TypeError, ValueError):  # no signature to read: build it as configured
            return False
