"""APGD and AutoAttack (Croce & Hein 2020), the authors' own code (``pyautoattack``, which
packages github.com/fra31/auto-attack: README.md says what was checked), behind advertorch's
contract: ``cls(model, **params)`` builds the attack, ``perturb(x, y)`` crafts untargeted
examples of pixels in [0, 1].

``AutoAttack`` is called as RobustBench calls it: ``AutoAttack(model, norm=..., eps=...,
version="standard", device=...)`` and ``run_standard_evaluation(x, y, bs=...)``, the authors'
iterations, restarts, target classes and queries untouched; advfit passes the seed its config
names, so the same run crafts the same examples. The authors' checks (``checks.py``: a
randomised model, outputs that are not logits, zero gradients, too few classes) warn on the
``auto-attack`` logger, which reaches the run's own log. The authors' attacks seed the global
random generators; the adapters restore them afterwards, so an attack leaves the replay's own
random draws as they were. Parameters are checked before training (:meth:`check`), with
advfit's names: ``eps`` (the radius in pixel units), ``nb_iter`` (APGD's iterations), ``norm``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from advfit.errors import ConfigError

NORMS = ("Linf", "L2")
LOSSES = ("ce", "dlr")
VERSIONS = ("standard", "plus", "rand")
#: The logger the authors' code and its checks warn on.
AUTHORS_LOGGER = logging.getLogger("auto-attack")


def _one_of(prefix: str, key: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ConfigError(
            f"{prefix}.{key}={value!r} is invalid: accepted are {', '.join(accepted)}"
        )


def _seed(prefix: str, value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ConfigError(f"{prefix}.seed={value!r} is invalid: an integer >= 0 is required")


def _rng_kept(x: torch.Tensor):
    """The random generators of ``x``'s device, restored when the block ends."""
    return torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else [])


class APGD:
    """APGD (untargeted, cross-entropy or DLR loss): the authors' ``APGDAttack``, built on
    the device of the images it is given."""

    def __init__(
        self,
        predict: nn.Module,
        eps: float = 8 / 255,
        norm: str = "Linf",
        nb_iter: int = 100,
        n_restarts: int = 1,
        loss: str = "ce",
        rho: float = 0.75,
        seed: int = 0,
    ) -> None:
        self.predict = predict
        self.settings = {
            "eps": eps,
            "norm": norm,
            "n_iter": nb_iter,
            "n_restarts": n_restarts,
            "loss": loss,
            "rho": rho,
            "seed": seed,
        }

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from pyautoattack.autopgd_base import APGDAttack

        attack = APGDAttack(
            self.predict, **self.settings, eot_iter=1, verbose=False, device=x.device,
            logger=AUTHORS_LOGGER,
        )  # fmt: skip
        with _rng_kept(x):
            return attack.perturb(x, y)

    @staticmethod
    def check(prefix: str, params: dict[str, Any]) -> None:
        """Refuse what the authors' code would only refuse (or misuse) at the best epoch (eps
        and the counts are :func:`advfit.attacks.base.checked_parameters`')."""
        _one_of(prefix, "norm", params.get("norm", "Linf"), NORMS)
        _one_of(prefix, "loss", params.get("loss", "ce"), LOSSES)
        _seed(prefix, params.get("seed", 0))
        rho = params.get("rho", 0.75)
        if not (isinstance(rho, (int, float)) and not isinstance(rho, bool) and 0 < rho < 1):
            raise ConfigError(f"{prefix}.rho={rho!r} is invalid: a number in (0, 1)")


class AutoAttack:
    """AutoAttack, the authors' ``AutoAttack(version='standard')``: APGD-CE, APGD-T (9 target
    classes), FAB-T (9) and Square (5,000 queries), 100 iterations each, one after another,
    each on the images the earlier ones left classified right."""

    def __init__(
        self,
        predict: nn.Module,
        eps: float = 8 / 255,
        norm: str = "Linf",
        version: str = "standard",
        seed: int = 0,
    ) -> None:
        self.predict = predict
        self.settings = {"eps": eps, "norm": norm, "version": version, "seed": seed}

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from pyautoattack import AutoAttack as Authors

        attack = Authors(self.predict, device=x.device, **self.settings)
        with _rng_kept(x):
            x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
        return x_adv

    @staticmethod
    def check(prefix: str, params: dict[str, Any]) -> None:
        _one_of(prefix, "norm", params.get("norm", "Linf"), NORMS)
        _one_of(prefix, "version", params.get("version", "standard"), VERSIONS)
        _seed(prefix, params.get("seed", 0))
