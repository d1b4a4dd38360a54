"""The LightningModule that trains a plain network (``net``) as an image classifier."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric


class EpochTotals(Metric):
    """An epoch's mean loss over its images and its accuracy, from three running totals on
    the device: the loss summed over images, the images classified correctly, the images.

    Seven operations a step (a GPU kernel each), where torchmetrics' ``SumMetric`` for the
    loss and ``MulticlassAccuracy`` took eighteen: the accuracy's per-class statistics are
    not needed for a micro average, and ``SumMetric`` builds a tensor of weights at every
    update. A LeNet step at batch size 32 is a few dozen small kernels, on a GPU about as
    long as their count (BENCHMARKS.md, "The Lightning step's metrics"). Equal bit for bit to
    torchmetrics' weighted ``MeanMetric`` of the batches' losses and to its micro
    ``MulticlassAccuracy`` (tests); not ``MeanMetric`` itself, which without its NaN check
    (``nan_strategy="disable"``) drops the weights in torchmetrics 1.9. No input checks: each
    would read a value back from the device; the labels come from the data module, and a NaN
    loss makes the epoch's loss NaN. The states are summed across processes, as
    torchmetrics' are.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("images", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """``loss``: the batch's mean loss; ``logits``: its network outputs; ``y``: labels.
        Device tensors times numbers: no tensor is made from host data (on a GPU, a copy
        with a wait)."""
        self.loss_sum += loss * len(y)
        self.correct += (logits.argmax(dim=1) == y).sum()
        self.images += len(y)

    def compute(self) -> dict[str, torch.Tensor]:
        return {"loss": self.loss_sum / self.images, "acc": self.correct / self.images}


class Classifier(pl.LightningModule):
    """Cross-entropy training of ``net``; logs ``train/loss``, ``train/acc``, ``val/loss``,
    ``val/acc`` once per epoch (one :class:`EpochTotals` per split).

    The metrics are only updated in each step and computed and logged once at the end of the
    epoch: for a network as small as LeNet, per-step logging and per-batch metric values cost
    a large share of the step (see BENCHMARKS.md).

    Args:
        net: the network; takes pixels in [0, 1], returns logits; has ``num_classes``.
        optimizer: a partial optimizer (``_partial_: true`` in config) taking the parameters.
        fused_on_gpu: on a CUDA device, build an optimizer that has a fused implementation
            (Adam, AdamW, SGD) with ``fused=True`` unless the config sets ``fused`` itself:
            one kernel a step for all parameters instead of several, which shortened training
            with ten runs sharing one GPU (BENCHMARKS.md, "On a GPU again"). The CPU keeps the
            default implementation, so CPU results do not change.
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
        # One per split: ``update(loss, logits, y)`` at each step, ``compute()`` -> the
        # epoch's ``{"loss", "acc"}`` so far.
        self.train_metrics = EpochTotals()
        self.val_metrics = EpochTotals()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self._split_metrics(split).update(loss.detach(), logits.detach(), y)
        return loss

    def _split_metrics(self, split: str) -> Metric:
        return self.train_metrics if split == "train" else self.val_metrics

    def _log_epoch(self, split: str) -> None:
        for name, value in self._split_metrics(split).compute().items():
            self.log(f"{split}/{name}", value)
        self._split_metrics(split).reset()

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
