"""The LightningModule that trains a plain network (``net``) as an image classifier."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from advfit.models.adversarial import TrainingPGD


class EpochTotals(Metric):
    """An epoch's mean loss over its images and its accuracy, from three running totals on
    the device (loss x images, correct, images): a few kernels a step, and no value read back
    from the device (BENCHMARKS.md, "Training loop"). Equal bit for bit to torchmetrics'
    weighted ``MeanMetric`` and micro ``MulticlassAccuracy`` (tests)."""

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

    The metrics are updated in each step and logged once an epoch: for a network as small as
    LeNet, per-step logging costs a large share of the step.

    Args:
        net: the network; takes pixels in [0, 1], returns logits; has ``num_classes``.
        optimizer: a partial optimizer (``_partial_: true`` in config) taking the parameters.
        fused_on_gpu: on a CUDA device, build an optimizer that has a fused implementation
            (Adam, AdamW, SGD) with ``fused=True`` unless the config sets ``fused`` itself:
            one kernel a step for all parameters instead of several, which shortened training
            with ten runs sharing one GPU (BENCHMARKS.md, "On a GPU"). The CPU keeps the
            default implementation, so CPU results do not change.
        adversarial: PGD adversarial training (Madry et al. 2018): the adversarial regime's
            :class:`~advfit.models.adversarial.TrainingPGD` settings. Each training batch is
            replaced by PGD examples crafted on the network as it stands, and each validation
            batch is scored on such examples too (``val/robust_loss``, ``val/robust_acc``).
            None: plain training.
        scheduler: a partial learning-rate scheduler (``_partial_: true``) stepped once an
            epoch, e.g. ``torch.optim.lr_scheduler.MultiStepLR``; None keeps the rate fixed.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        fused_on_gpu: bool = True,
        adversarial: Mapping[str, Any] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.fused_on_gpu = fused_on_gpu
        self.scheduler_factory = scheduler
        self.pgd = None if adversarial is None else TrainingPGD(**dict(adversarial))
        self.val_robust_metrics = EpochTotals()
        # One per split: ``update(loss, logits, y)`` at each step, ``compute()`` -> the
        # epoch's ``{"loss", "acc"}`` so far.
        self.train_metrics = EpochTotals()
        self.val_metrics = EpochTotals()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, split: str, batch_idx: int = 0) -> torch.Tensor:
        x, y = batch
        if self.pgd is not None and split == "train":
            x = self.pgd(self.net, x, y, (self.current_epoch, batch_idx))
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self._split_metrics(split).update(loss.detach(), logits.detach(), y)
        if self.pgd is not None and split == "val":
            self._robust_validation(x, y, batch_idx)
        return loss

    def _robust_validation(self, x: torch.Tensor, y: torch.Tensor, batch_idx: int) -> None:
        # Lightning validates under inference mode, where no gradient can be taken.
        with torch.inference_mode(False), torch.enable_grad():
            x, y = x.clone(), y.clone()
            # the same random starts at every epoch
            adversarial = self.pgd(self.net, x, y, ("val", batch_idx))
            with torch.no_grad():
                logits = self.net(adversarial)
                loss = F.cross_entropy(logits, y)
            self.val_robust_metrics.update(loss, logits, y)

    def _split_metrics(self, split: str) -> Metric:
        return self.train_metrics if split == "train" else self.val_metrics

    def _log_epoch(self, split: str) -> None:
        for name, value in self._split_metrics(split).compute().items():
            self.log(f"{split}/{name}", value)
        self._split_metrics(split).reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", batch_idx)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if self.pgd is not None:
            for name, value in self.val_robust_metrics.compute().items():
                self.log(f"val/robust_{name}", value)
            self.val_robust_metrics.reset()

    def configure_optimizers(self):
        # Lightning moves the module to its device before it asks for the optimizer.
        extra = {"fused": True} if self._fuse_on(self.device) else {}
        optimizer = self.optimizer_factory(params=self.parameters(), **extra)
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }

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
