"""APGD and AutoAttack (Croce & Hein 2020), from torchattacks, behind advertorch's contract:
``cls(model, **params)`` builds the attack, ``perturb(x, y)`` crafts untargeted examples of
pixels in [0, 1].

torchattacks seeds the global random generator inside an attack; the adapters restore it
afterwards, so an attack leaves the replay's own random draws as they were. Parameters are
checked before training (:meth:`check`), with advfit's names: ``eps`` (the radius in pixel
units), ``nb_iter`` (APGD's steps), ``norm`` (``Linf`` or ``L2``), ``num_classes``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advfit.errors import ConfigError

NORMS = ("Linf", "L2")
LOSSES = ("ce", "dlr")
VERSIONS = ("standard", "plus", "rand")


def _one_of(prefix: str, key: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ConfigError(
            f"{prefix}.{key}={value!r} is invalid: accepted are {', '.join(accepted)}"
        )


def _seed(prefix: str, value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ConfigError(f"{prefix}.seed={value!r} is invalid: an integer >= 0 is required")


class _Torchattacks:
    """An attack of torchattacks' run on ``model`` under advertorch's ``perturb``."""

    def __init__(self, attack) -> None:
        self.attack = attack

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self.attack(x, y)


class APGD(_Torchattacks):
    """APGD (untargeted, cross-entropy or DLR loss): torchattacks' ``APGD``."""

    def __init__(
        self,
        predict: nn.Module,
        eps: float = 8 / 255,
        norm: str = "Linf",
        nb_iter: int = 10,
        n_restarts: int = 1,
        loss: str = "ce",
        rho: float = 0.75,
        seed: int = 0,
    ) -> None:
        import torchattacks

        super().__init__(
            torchattacks.APGD(
                predict,
                norm=norm,
                eps=eps,
                steps=nb_iter,
                n_restarts=n_restarts,
                seed=seed,
                loss=loss,
                rho=rho,
            )  # fmt: skip
        )

    @staticmethod
    def check(prefix: str, params: dict[str, Any]) -> None:
        """Refuse what torchattacks would only refuse (or misuse) at the best epoch (eps and
        the counts are :func:`advfit.attacks.base.checked_parameters`')."""
        _one_of(prefix, "norm", params.get("norm", "Linf"), NORMS)
        _one_of(prefix, "loss", params.get("loss", "ce"), LOSSES)
        _seed(prefix, params.get("seed", 0))
        rho = params.get("rho", 0.75)
        if not (isinstance(rho, (int, float)) and not isinstance(rho, bool) and 0 < rho < 1):
            raise ConfigError(f"{prefix}.rho={rho!r} is invalid: a number in (0, 1)")


class AutoAttack(_Torchattacks):
    """AutoAttack: torchattacks' ``AutoAttack``; ``standard`` runs APGD-CE, APGD-T, FAB-T and
    Square (5,000 queries) one after another, each on the images still classified right."""

    def __init__(
        self,
        predict: nn.Module,
        eps: float = 8 / 255,
        norm: str = "Linf",
        version: str = "standard",
        num_classes: int = 10,
        seed: int = 0,
    ) -> None:
        import torchattacks

        super().__init__(
            torchattacks.AutoAttack(
                predict, norm=norm, eps=eps, version=version, n_classes=num_classes, seed=seed
            )
        )

    @staticmethod
    def check(prefix: str, params: dict[str, Any]) -> None:
        _one_of(prefix, "norm", params.get("norm", "Linf"), NORMS)
        _one_of(prefix, "version", params.get("version", "standard"), VERSIONS)
        _seed(prefix, params.get("seed", 0))
