"""Crafting: the adversarial sources, each attack once at the best epoch (cached), distances."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from advfit.attacks import Attack
from advfit.data.batches import to_unit_range
from advfit.files import atomic_torch_save, sha256_file
from advfit.metrics import perturbation_norms, summarize_norms
from advfit.replay.network import ReplayError, predict
from advfit.rundir import DISTANCE_COLUMNS, RunDir

log = logging.getLogger(__name__)


@dataclass
class AdversarialSet:
    """One crafted set: adversarial images with the test images they come from."""

    attack: str
    x_adv: torch.Tensor  # float32 pixels in [0, 1], N x C x H x W
    indices: torch.Tensor  # positions in the test set
    labels: torch.Tensor  # true labels
    best_epoch: int
    params: dict[str, Any] = field(default_factory=dict)
    #: sha256 of the snapshot file the set was crafted on ("" in sets of earlier versions).
    snapshot: str = ""

    def save(self, path) -> None:
        atomic_torch_save(
            {
                "attack": self.attack,
                "x_adv": self.x_adv.detach().cpu(),
                "indices": self.indices.cpu(),
                "labels": self.labels.cpu(),
                "best_epoch": self.best_epoch,
                "params": self.params,
                "snapshot": self.snapshot,
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


@dataclass
class Examples:
    """A few crafted examples of one attack, for pictures: the clean test images, their
    adversarial versions and the labels, true and predicted by the best snapshot. Examples
    that fool the best snapshot come first."""

    attack: str
    clean: torch.Tensor  # k x C x H x W, pixels in [0, 1]
    adversarial: torch.Tensor
    labels: torch.Tensor
    predicted: torch.Tensor
    class_names: tuple[str, ...] = ()

    def name(self, label: int) -> str:
        label = int(label)
        return self.class_names[label] if label < len(self.class_names) else str(label)

    def caption(self, i: int) -> str:
        return f"true: {self.name(self.labels[i])}, predicted: {self.name(self.predicted[i])}"


class Crafting:
    """Craft every attack once against the best snapshot, on the test images it gets right.

    A set already in ``adversarial/`` crafted on the same snapshot (its sha256: another
    fold's set of the same epoch is not this run's), with the same parameters and sources,
    is reused, so a replay interrupted after some attacks does not craft them again.
    """

    def __init__(
        self,
        run: RunDir,
        attacks: dict[str, Attack],
        n_images: int,
        batch_size: int,
        progress: bool,
    ) -> None:
        self.run, self.attacks = run, attacks
        self.n_images, self.batch_size, self.progress = n_images, batch_size, progress

    def sources(self, net: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor, best: int):
        """Indices of the first ``n_images`` test images the best snapshot classifies correctly."""
        correct = (predict(net, x_test, self.batch_size) == y_test).nonzero().flatten()
        if len(correct) == 0:
            raise ReplayError(
                f"the best snapshot (epoch {best}) classifies no test image correctly"
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

    def cached(self, name: str, params: dict, indices: torch.Tensor, best: int, snapshot: str):
        path = self.run.attack_set(name)
        if not path.is_file():
            return None
        try:
            existing = AdversarialSet.load(path, indices.device)
        except ReplayError as err:
            log.warning("%s; crafting it again", err)
            return None
        same = (
            existing.best_epoch == best
            and existing.snapshot == snapshot
            and existing.params == params
            and torch.equal(existing.indices, indices)
        )
        if same:
            log.info("reusing %s (crafted earlier at epoch %d)", path, best)
        return existing if same else None

    def __call__(
        self, net: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor, best: int
    ) -> tuple[dict[str, AdversarialSet], dict[str, float]]:
        """The crafted sets by attack, and the seconds each took (``craft_<attack>``)."""
        indices = self.sources(net, x_test, y_test, best)
        snapshot = sha256_file(self.run.snapshot(best))
        sets, seconds = {}, {}
        for name, attack in self.attacks.items():
            started = time.perf_counter()
            params = attack.describe()
            adv = self.cached(name, params, indices, best, snapshot)
            if adv is None:
                x, y = to_unit_range(x_test[indices]), y_test[indices]
                adv = AdversarialSet(
                    name,
                    attack(net, x, y, progress=self.progress),
                    indices,
                    y,
                    best,
                    params,
                    snapshot,
                )
                adv.save(self.run.attack_set(name))
            sets[name] = adv
            seconds[f"craft_{name}"] = time.perf_counter() - started
        return sets, seconds

    def predictions(
        self, net: nn.Module, sets: dict[str, AdversarialSet]
    ) -> dict[str, torch.Tensor]:
        """Per attack: the classes ``net`` (the best snapshot) gives its adversarial images."""
        return {name: predict(net, adv.x_adv, self.batch_size) for name, adv in sets.items()}

    def distances(
        self,
        x_test: torch.Tensor,
        sets: dict[str, AdversarialSet],
        predicted: dict[str, torch.Tensor],
    ) -> pd.DataFrame:
        """Per attack: L0/L2/L-inf over the examples that fool the best snapshot (whose
        classes are ``predicted``, from :meth:`predictions`)."""
        rows = []
        for name, adv in sets.items():
            x = to_unit_range(x_test[adv.indices])
            fooled = predicted[name] != adv.labels
            rows.append(
                {
                    "attack": name,
                    "n": len(adv.labels),
                    "n_fooled": int(fooled.sum()),
                    **summarize_norms(perturbation_norms(x, adv.x_adv), fooled),
                }
            )
        return pd.DataFrame(rows, columns=DISTANCE_COLUMNS)

    @staticmethod
    def examples(
        x_test: torch.Tensor,
        sets: dict[str, AdversarialSet],
        predictions: dict[str, torch.Tensor],
        k: int = 4,
        class_names: tuple[str, ...] = (),
    ) -> dict[str, Examples]:
        """Per attack, ``k`` examples as the best snapshot sees them (its classes in
        ``predictions``, from :meth:`predictions`)."""
        out = {}
        for name, adv in sets.items():
            predicted = predictions[name]
            fooled = predicted != adv.labels
            order = torch.cat([fooled.nonzero().flatten(), (~fooled).nonzero().flatten()])[:k]
            out[name] = Examples(
                name,
                to_unit_range(x_test[adv.indices[order]]).cpu(),
                adv.x_adv[order].cpu(),
                adv.labels[order].cpu(),
                predicted[order].cpu(),
                tuple(class_names),
            )
        return out
