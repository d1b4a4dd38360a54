"""CLEVER, untargeted (Weng et al. 2018), batched over images and classes.

The definition of IBM ART's ``clever_u``: for an image x0 with predicted class c and every
other class j, points are drawn uniformly in the L_p ball of radius R around x0 and clipped
to [0, 1]; at each point the dual norm of the gradient of (f_c - f_j) is taken; the maxima
of ``nb_batches`` batches of ``batch_size`` points drawn from that pool are fitted with a
reverse Weibull distribution, whose location estimates the local Lipschitz constant L;
score_j = min((f_c - f_j)(x0) / L, R); CLEVER = min over j.

What differs from ART, for speed and repeatability, not for the value: one pool of
``pool_factor * batch_size`` points per image serves every class j (ART draws a new pool per
class); the gradients of all classes come from one forward pass and one backward pass per
class over the pools of many images at once; draws come from a seeded ``torch.Generator``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import fmin
from scipy.stats import weibull_min
from torch import nn

from advfit.attacks import frozen
from advfit.errors import ConfigError
from advfit.metrics.robustness import parse_norm

#: the dual norm q of p (1/p + 1/q = 1) in which gradients are measured
DUAL = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}


def random_ball(
    n: int, dims: int, radius: float, norm: float, generator: torch.Generator
) -> torch.Tensor:
    """``n`` points drawn uniformly in the L_p ball of ``radius`` in ``dims`` dimensions
    (ART's ``random_sphere``)."""
    if norm == math.inf:
        return (torch.rand(n, dims, generator=generator, dtype=torch.float64) * 2 - 1) * radius
    if norm == 2:
        a = torch.randn(n, dims, generator=generator, dtype=torch.float64)
        s2 = a.pow(2).sum(1)
        base = torch.special.gammainc(torch.tensor(dims / 2.0, dtype=torch.float64), s2 / 2.0)
        return a * (base.pow(1.0 / dims) * radius / s2.sqrt()).unsqueeze(1)
    u = torch.rand(n, dims, generator=generator, dtype=torch.float64).sort(dim=1).values
    spacing = u - torch.cat([torch.zeros(n, 1, dtype=torch.float64), u[:, :-1]], dim=1)
    signs = torch.randint(0, 2, (n, dims), generator=generator, dtype=torch.float64) * 2 - 1
    return radius * spacing * signs


def reverse_weibull_location(maxima: np.ndarray, c_init: float) -> float:
    """Location of a reverse Weibull fitted to gradient-norm maxima (ART's fit: scipy's
    ``weibull_min.fit`` of the negated maxima, Nelder-Mead). Identical maxima (a locally
    linear model) are their own location; the fit is degenerate there."""
    if np.ptp(maxima) <= 1e-9 * max(float(np.max(maxima)), 1e-12):
        return -float(np.max(maxima))
    _, loc, _ = weibull_min.fit(-maxima, c_init, optimizer=fmin)
    return float(loc)


class Clever:
    """CLEVER untargeted scores for a batch of images.

    Args:
        nb_batches: number of maxima fitted per (image, class).
        batch_size: points per maximum.
        radius: R, the radius of the ball and the cap of the score (the paper's scores reach 5).
        norm: p of the ball: 1, 2 or inf (gradients are measured in the dual norm).
        pool_factor: the pool holds ``pool_factor * batch_size`` points per image.
        c_init: initial shape of the Weibull fit.
        outputs: ``logits`` (as the CLEVER authors' code) or ``probabilities`` (softmax; what ART
            computes for a Keras softmax model such as the paper's).
        seed: seeds the generator of points and draws.
        images_per_pass: images whose pools go through the network together.
    """

    def __init__(
        self,
        nb_batches: int = 10,
        batch_size: int = 50,
        radius: float = 5.0,
        norm: str | float = 2,
        pool_factor: int = 10,
        c_init: float = 1.0,
        outputs: str = "logits",
        seed: int = 0,
        images_per_pass: int = 8,
    ) -> None:
        for key, value in (
            ("nb_batches", nb_batches),
            ("batch_size", batch_size),
            ("pool_factor", pool_factor),
            ("images_per_pass", images_per_pass),
        ):
            if int(value) < 1:
                raise ConfigError(f"clever.{key}={value} is invalid: it must be >= 1")
        if not float(radius) > 0:
            raise ConfigError(f"clever.radius={radius} is invalid: it must be > 0")
        if outputs not in ("logits", "probabilities"):
            raise ConfigError(
                f"clever.outputs={outputs!r} is invalid: accepted are logits, probabilities"
            )
        try:
            self.norm = parse_norm(norm)
        except ConfigError as err:
            raise ConfigError(f"clever.{err}") from err
        self.nb_batches, self.batch_size = int(nb_batches), int(batch_size)
        self.radius, self.pool_factor, self.c_init = float(radius), int(pool_factor), float(c_init)
        self.outputs, self.seed = outputs, int(seed)
        self.images_per_pass = int(images_per_pass)

    def _outputs(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = net(x)
        return out.softmax(dim=1) if self.outputs == "probabilities" else out

    def _gradient_norms(
        self, net: nn.Module, points: torch.Tensor, pred: torch.Tensor
    ) -> torch.Tensor:
        """For each point: ||grad f_c - grad f_j||_q for every class j (c: its image's class)."""
        points = points.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self._outputs(net, points)
            grads = []
            for k in range(out.shape[1]):
                (g,) = torch.autograd.grad(
                    out[:, k].sum(), points, retain_graph=k < out.shape[1] - 1
                )
                grads.append(g.flatten(1))
        grads = torch.stack(grads, dim=1)  # points, classes, dims
        if not torch.isfinite(grads).all():
            raise ValueError("the model yields NaN or infinite gradients; CLEVER is undefined")
        own = grads[torch.arange(len(points)), pred]
        return (own.unsqueeze(1) - grads).norm(p=DUAL[self.norm], dim=2)

    def __call__(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """CLEVER score of each image in ``x`` (pixels in [0, 1]); a float64 tensor on the CPU."""
        generator = torch.Generator().manual_seed(self.seed)
        pool = self.pool_factor * self.batch_size
        dims = x[0].numel()
        scores = []
        with frozen(net):
            for start in range(0, len(x), self.images_per_pass):
                xs = x[start : start + self.images_per_pass]
                with torch.no_grad():
                    values = self._outputs(net, xs)
                pred = values.argmax(1)
                offsets = random_ball(len(xs) * pool, dims, self.radius, self.norm, generator)
                points = xs.repeat_interleave(pool, 0).double() + offsets.view(
                    -1, *xs.shape[1:]
                ).to(xs.device)
                points = points.clamp(0.0, 1.0).to(xs.dtype)
                norms = self._gradient_norms(net, points, pred.repeat_interleave(pool)).view(
                    len(xs), pool, -1
                )
                draws = torch.randint(
                    0, pool, (len(xs), self.nb_batches, self.batch_size), generator=generator
                )
                picked = torch.gather(
                    norms.cpu().double(),
                    1,
                    draws.view(len(xs), -1, 1).expand(-1, -1, norms.shape[2]),
                ).view(len(xs), self.nb_batches, self.batch_size, -1)
                maxima = picked.amax(dim=2).numpy()  # images, nb_batches, classes
                gaps = (values.gather(1, pred[:, None]) - values).cpu().double().numpy()
                for i in range(len(xs)):
                    per_class = [
                        min(
                            -gaps[i, j] / reverse_weibull_location(maxima[i, :, j], self.c_init),
                            self.radius,
                        )
                        for j in range(values.shape[1])
                        if j != int(pred[i])
                    ]
                    scores.append(min(per_class))
        return torch.tensor(scores, dtype=torch.float64)
