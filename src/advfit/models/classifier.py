"""The LightningModule that trains a plain network (``net``) as an image classifier."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


class Classifier(pl.LightningModule):
    """Cross-entropy training of ``net``; logs ``train/loss``, ``train/acc``, ``val/loss``,
    ``val/acc`` once per epoch (one torchmetrics accuracy per split).

    Args:
        net: the network; takes pixels in [0, 1], returns logits.
        optimizer: a partial optimizer (``_partial_: true`` in config) taking the parameters.
    """

    def __init__(self, net: nn.Module, optimizer: Callable[..., torch.optim.Optimizer]) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.train_acc = MulticlassAccuracy(num_classes=net.num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=net.num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, split: str, acc: MulticlassAccuracy) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        acc(logits, y)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train", self.train_acc)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(params=self.parameters())
