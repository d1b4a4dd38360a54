"""PGD examples for adversarial training (Madry et al. 2018): advertorch's L-inf PGD on the
network as it stands, with random starts drawn from the run's seed."""

from __future__ import annotations

import zlib

import torch
from torch import nn

from advfit.attacks import advertorch_compat  # noqa: F401  (makes advertorch importable)
from advfit.attacks.base import checked_parameters
from advfit.errors import ConfigError
from advfit.models.frozen import frozen


class TrainingPGD:
    """L-inf PGD of radius ``eps``: ``nb_iter`` steps of ``eps_iter``, from a random point of
    the ball when ``rand_init``, pixels kept in [0, 1]; untargeted, cross-entropy.

    Crafted in eval mode with the parameters held (:func:`advfit.models.frozen.frozen`):
    batch-norm statistics are not moved by the attack's passes, and no parameter gradient
    is left behind. A batch's random start comes from the run's ``seed`` and the batch's
    ``key`` (its epoch and index) alone, the global generator restored, so a resumed run
    crafts the same examples.
    """

    def __init__(
        self, eps: float, eps_iter: float, nb_iter: int, rand_init: bool = True, seed: int = 0
    ) -> None:
        where = "regime.adversarial"
        params = {"eps": eps, "eps_iter": eps_iter, "nb_iter": nb_iter}
        params.update(checked_parameters(where, params))
        if not isinstance(rand_init, bool):
            raise ConfigError(f"{where}.rand_init={rand_init!r} is invalid: true or false")
        self.params = {**params, "rand_init": rand_init}
        self.seed = int(seed)

    def __call__(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, key: tuple
    ) -> torch.Tensor:
        from advertorch.attacks import LinfPGDAttack

        devices = [x.device] if x.device.type == "cuda" else []
        with frozen(net), torch.random.fork_rng(devices=devices):
            # crc32, not hash(): a str's hash differs from one process to the next
            torch.manual_seed(zlib.crc32(repr((self.seed, *key)).encode()))
            attack = LinfPGDAttack(net, clip_min=0.0, clip_max=1.0, **self.params)
            return attack.perturb(x, y).detach()
