"""CLEVER, untargeted (Weng et al. 2018), batched over images and classes.

The definition of IBM ART's ``clever_u``: for an image x0 with predicted class c and every
other class j, points are drawn uniformly in the L_p ball of radius R around x0 and clipped
to [0, 1]; at each point the dual norm of the gradient of (f_c - f_j) is taken; the maxima
of ``nb_batches`` batches of ``batch_size`` points drawn from that pool are fitted with a
reverse Weibull distribution, whose location estimates the local Lipschitz constant L;
score_j = min((f_c - f_j)(x0) / L, R); CLEVER = min over j.

What differs from ART, for speed and repeatability, not for the value: one pool of
``pool_factor * batch_size`` points per image serves every class j (ART draws a new pool per
class); only the pool's points that the batches draw are differentiated (ART's 10 x 50 draws
with replacement from 500 points reach about 63% of them); the gradient of f_c - f_j for each
comes from one backward pass per j over the points of many images at once; draws come from
a seeded ``torch.Generator``; all the Weibull fits of a call run together in
:func:`advfit.metrics.weibull.fit_weibull_min`, which returns what ART's scipy call returns.

The Weibull fit runs away on some samples (1-5% of (image, class) pairs of LeNet at ART's
settings): the likelihood has no maximum, the shape grows without bound and the location runs
to -inf, so the score for that class is about 0 and the image's CLEVER with it. ART keeps that
value; its mean over 20 images then moves by 20% between two numpy seeds. Here such a fit
takes the largest observed maximum as the Lipschitz estimate (``runaway="max_sample"``, the
CLEVER authors' fallback for fits that fail): the same 20 images then agree within 1% across
seeds, and within 1% of ART's ``clever_u`` given the same rule. ``runaway="keep"`` gives ART's
value. The number of such fits per image is kept either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from advfit.data.batches import near_equal_parts
from advfit.errors import ConfigError
from advfit.metrics.norms import parse_norm
from advfit.metrics.schedule import Score
from advfit.metrics.weibull import fit_weibull_min
from advfit.models.frozen import frozen

#: the dual norm q of p (1/p + 1/q = 1) in which gradients are measured
DUAL = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}


def random_ball(
    n: int,
    dims: int,
    radius: float,
    norm: float,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` points drawn uniformly in the L_p ball of ``radius`` in ``dims`` dimensions
    (ART's ``random_sphere``), on the generator's device. Each point's radius is computed in
    float64 whatever ``dtype``: points meant for a float32 network need no float64 draws."""
    at = {"generator": generator, "device": generator.device}
    if norm == math.inf:
        return (torch.rand(n, dims, dtype=dtype, **at) * 2 - 1) * radius
    if norm == 2:
        a = torch.randn(n, dims, dtype=dtype, **at)
        s2 = a.double().pow(2).sum(1)
        half = torch.tensor(dims / 2.0, dtype=torch.float64, device=generator.device)
        base = torch.special.gammainc(half, s2 / 2.0)
        return a * (base.pow(1.0 / dims) * radius / s2.sqrt()).unsqueeze(1).to(dtype)
    u = torch.rand(n, dims, dtype=torch.float64, **at).sort(dim=1).values
    first = torch.zeros(n, 1, dtype=torch.float64, device=generator.device)
    spacing = u - torch.cat([first, u[:, :-1]], dim=1)
    signs = torch.randint(0, 2, (n, dims), dtype=torch.float64, **at) * 2 - 1
    return (radius * spacing * signs).to(dtype)


@dataclass(frozen=True)
class CleverResult:
    """Scores of a batch of images (float64, on the CPU)."""

    #: CLEVER untargeted per image: the minimum over classes of ``per_class``
    scores: torch.Tensor
    #: targeted score per (image, class); NaN at the image's predicted class
    per_class: torch.Tensor
    #: per image, the classes whose Weibull fit ran away (see the module's docstring)
    runaway: torch.Tensor


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
        runaway: ``max_sample`` (the largest observed maximum) or ``keep`` (ART's value): the
            Lipschitz estimate where the Weibull fit ran away (see the module's docstring).
        seed: seeds the generator of points and draws. The points are drawn on the network's
            device, so the same seed gives the same scores on the same device; a GPU's
            scores differ from the CPU's by the points drawn, as two seeds do.
        images_per_pass: images whose pools are drawn together (one pool of 500 points).
        points_per_pass: at most this many points differentiated together (near-equal
            passes); the scores do not depend on it (up to float rounding). ``"auto"``: 100
            on the CPU (fastest measured on a 2-core CPU for 96x96 inputs: larger passes leave
            the cache), all of a pass's points on a GPU (faster there than passes of 100;
            BENCHMARKS.md, "On a GPU").
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
        images_per_pass: int = 1,
        runaway: str = "max_sample",
        points_per_pass: int | str = "auto",
    ) -> None:
        if points_per_pass != "auto" and not str(points_per_pass).lstrip("-").isdigit():
            raise ConfigError(
                f"clever.points_per_pass={points_per_pass!r} is invalid: accepted are auto or "
                "an integer >= 1"
            )
        for key, value in (
            ("nb_batches", nb_batches),
            ("batch_size", batch_size),
            ("pool_factor", pool_factor),
            ("images_per_pass", images_per_pass),
            ("points_per_pass", 1 if points_per_pass == "auto" else points_per_pass),
        ):
            if int(value) < 1:
                raise ConfigError(f"clever.{key}={value} is invalid: it must be >= 1")
        if not float(radius) > 0:
            raise ConfigError(f"clever.radius={radius} is invalid: it must be > 0")
        if outputs not in ("logits", "probabilities"):
            raise ConfigError(
                f"clever.outputs={outputs!r} is invalid: accepted are logits, probabilities"
            )
        if runaway not in ("keep", "max_sample"):
            raise ConfigError(
                f"clever.runaway={runaway!r} is invalid: accepted are max_sample, keep"
            )
        try:
            self.norm = parse_norm(norm)
        except ConfigError as err:
            raise ConfigError(f"clever.{err}") from err
        self.nb_batches, self.batch_size = int(nb_batches), int(batch_size)
        self.radius, self.pool_factor, self.c_init = float(radius), int(pool_factor), float(c_init)
        self.outputs, self.seed = outputs, int(seed)
        self.images_per_pass = int(images_per_pass)
        self.points_per_pass = (
            points_per_pass if points_per_pass == "auto" else int(points_per_pass)
        )
        self.runaway = runaway

    def _points_per_pass(self, points: torch.Tensor) -> int:
        if self.points_per_pass != "auto":
            return self.points_per_pass
        return 100 if points.device.type == "cpu" else len(points)

    def _outputs(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = net(x)
        return out.softmax(dim=1) if self.outputs == "probabilities" else out

    def _difference_norms(
        self, net: nn.Module, points: torch.Tensor, pred: torch.Tensor, classes: int
    ) -> torch.Tensor:
        """For each point and k < classes - 1: ||grad (f_c - f_j)||_q, where c is the point's
        class (``pred``) and j its k-th other class in increasing order (ART's order)."""
        rows = torch.arange(len(points), device=points.device)
        # k-th other class: k itself below c, k + 1 from c on.
        others = torch.arange(classes - 1, device=points.device)
        others = others + (others[None, :] >= pred[:, None])
        if points.dim() == 4 and points.device.type != "cpu":
            # Channels-last strides, set explicitly (``.contiguous(channels_last)`` keeps a
            # one-channel tensor's NCHW strides): the layout the GPU timings were measured in.
            points = torch.empty_like(points, memory_format=torch.channels_last).copy_(points)
        else:
            # NCHW on the CPU: LeNet's first convolution differentiates its input with the
            # column kernel there (advfit.models.conv; BENCHMARKS.md, "advfit's CPU kernels").
            points = points.contiguous()
        points = points.detach().requires_grad_(True)
        dims = tuple(range(1, points.dim()))
        norms = []
        with torch.enable_grad():
            out = self._outputs(net, points)
            own = torch.zeros_like(out)
            own[rows, pred] = 1.0
            for k in range(classes - 1):
                cotangent = own.clone()
                cotangent[rows, others[:, k]] = -1.0
                (g,) = torch.autograd.grad(out, points, cotangent, retain_graph=k < classes - 2)
                # The norm over all of an image's values, in whatever memory order they lie.
                norms.append(torch.linalg.vector_norm(g, ord=DUAL[self.norm], dim=dims))
        norms = torch.stack(norms, dim=1)  # points, other classes
        if not torch.isfinite(norms).all():
            raise ValueError("the model yields NaN or infinite gradients; CLEVER is undefined")
        return norms

    def evaluate(self, net: nn.Module, x: torch.Tensor) -> CleverResult:
        """CLEVER of each image in ``x`` (pixels in [0, 1]), with its per-class scores."""
        generator = torch.Generator().manual_seed(self.seed)
        # The points are drawn where the network runs: drawn on the CPU and copied to a GPU
        # they took about as long as the rest of CLEVER there (BENCHMARKS.md, "On a GPU").
        # On the CPU one generator draws points and samples alike.
        at_device = (
            generator
            if x.device.type == "cpu"
            else torch.Generator(x.device).manual_seed(self.seed)
        )
        pool = self.pool_factor * self.batch_size
        dims = x[0].numel()
        maxima, gaps, preds = [], [], []
        with frozen(net):
            for start in range(0, len(x), self.images_per_pass):
                xs = x[start : start + self.images_per_pass]
                with torch.no_grad():
                    values = self._outputs(net, xs)
                classes = values.shape[1]
                if classes < 2:
                    raise ValueError(f"CLEVER needs at least 2 classes, the model has {classes}")
                pred = values.argmax(1)
                offsets = random_ball(
                    len(xs) * pool, dims, self.radius, self.norm, at_device, xs.dtype
                )
                draws = torch.randint(
                    0, pool, (len(xs), self.nb_batches, self.batch_size), generator=generator
                )
                # Only the drawn points enter a maximum: nb_batches x batch_size draws with
                # replacement from a pool of as many reach about 1 - 1/e = 63% of it, so the
                # other points' gradients are never computed (same scores, same draws).
                drawn = (draws + pool * torch.arange(len(xs))[:, None, None]).flatten().unique()
                index = drawn.to(xs.device)
                image = index // pool  # each drawn point's image in xs
                points = (xs[image] + offsets[index].view(-1, *xs.shape[1:])).clamp(0.0, 1.0)
                labels = pred[image]
                # Near-equal passes of at most points_per_pass points: none a small remainder.
                parts = near_equal_parts(self._points_per_pass(points), points, labels)
                norms = torch.full((len(xs) * pool, classes - 1), math.nan, dtype=torch.float64)
                norms[drawn] = (
                    torch.cat([self._difference_norms(net, p, lab, classes) for p, lab in parts])
                    .cpu()
                    .double()
                )
                picked = torch.gather(
                    norms.view(len(xs), pool, classes - 1),
                    1,
                    draws.view(len(xs), -1, 1).expand(-1, -1, classes - 1),
                ).view(len(xs), self.nb_batches, self.batch_size, classes - 1)
                maxima.append(picked.amax(dim=2).transpose(1, 2))  # images, others, batches
                gaps.append((values.gather(1, pred[:, None]) - values).cpu().double())
                preds.append(pred.cpu())
        maxima, gaps, pred = torch.cat(maxima), torch.cat(gaps), torch.cat(preds)
        n, others = maxima.shape[:2]
        # Each image's other classes, in increasing order: the order of ``maxima``.
        other = torch.ones_like(gaps, dtype=torch.bool)
        other[torch.arange(n), pred] = False
        fit = fit_weibull_min(-maxima.reshape(n * others, -1).numpy(), self.c_init)
        loc = torch.from_numpy(fit.loc).view(n, others)
        runaway = torch.from_numpy(fit.runaway).view(n, others)
        if self.runaway == "max_sample":
            loc = torch.where(runaway, -maxima.amax(dim=2), loc)
        # ART's score: min(-(f_c - f_j)(x0) / loc, R).
        targeted = torch.clamp(-gaps[other].view(n, others) / loc, max=self.radius)
        per_class = torch.full_like(gaps, math.nan)
        per_class[other] = targeted.flatten()
        return CleverResult(targeted.amin(dim=1), per_class, runaway.sum(dim=1))

    def __call__(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """CLEVER score of each image in ``x`` (pixels in [0, 1]); a float64 tensor on the CPU."""
        return self.evaluate(net, x).scores


class CleverMetric:
    """The ``clever`` metric entry: mean CLEVER of the first ``n_images`` scored images, with
    per-image scores and run-away fits (``clever.csv``).

    Args:
        n_images: images scored (CLEVER costs far more per image than the other metrics).
        **settings: keyword arguments of :class:`Clever`.
    """

    def __init__(self, n_images: int = 10, **settings) -> None:
        if int(n_images) < 1:
            raise ConfigError(f"metrics.clever.n_images={n_images} is invalid: it must be >= 1")
        self.n_images = int(n_images)
        self.clever = Clever(**settings)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Score:
        result = self.clever.evaluate(net, x[: self.n_images])
        per_image = pd.DataFrame(
            {
                "test_index": range(len(result.scores)),
                "clever": result.scores.tolist(),
                "runaway_fits": result.runaway.tolist(),
            }
        )
        return Score(result.scores.mean().item(), per_image)
