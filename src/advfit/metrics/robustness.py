"""Per-snapshot robustness scores (the paper's section 2.3), batched over images.

Both follow IBM ART's definitions (``art.metrics``), computed from per-image gradients so that
the values do not depend on the batch size.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from advfit.attacks import frozen
from advfit.errors import ConfigError

if TYPE_CHECKING:  # clever.py imports this module
    from advfit.metrics.clever import CleverResult

NORMS = {"inf": math.inf, "2": 2.0, "1": 1.0}


def parse_norm(norm: str | int | float) -> float:
    """``inf``, 2 or 1 as a float; anything else is an error naming the value."""
    key = str(norm).lower().replace(".0", "")
    if key in ("np.inf", "infinity"):
        key = "inf"
    if key not in NORMS:
        raise ConfigError(f"norm={norm!r} is invalid: accepted are 1, 2 and inf")
    return NORMS[key]


def _input_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of each image's own cross-entropy loss with respect to that image.

    The losses are summed, not averaged, so each image's gradient is that of its own loss
    whatever the batch size. (ART's PyTorch estimator differentiates the batch-mean loss,
    which divides every gradient by the batch size.)
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(net(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    if not torch.isfinite(grad).all():
        raise ValueError("the model yields NaN or infinite input gradients")
    return grad


def loss_sensitivity(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500
) -> float:
    """Loss sensitivity (Arpit et al. 2017): mean over images of ||grad_x CE(f(x), y)||_2.

    Independent of ``batch_size``; equals ART's ``loss_sensitivity`` called one image at a
    time (ART's own value shrinks with the batch size, see :func:`_input_gradients`).
    """
    norms = []
    with frozen(net):
        for start in range(0, len(x), batch_size):
            grad = _input_gradients(
                net, x[start : start + batch_size], y[start : start + batch_size]
            )
            norms.append(grad.flatten(1).norm(p=2, dim=1))
    return torch.cat(norms).mean().item()


def _fgsm_direction(grad: torch.Tensor, norm: float) -> torch.Tensor:
    """The unit-norm step that maximises <grad, step>, as ART's FGSM takes it."""
    flat = grad.flatten(1)
    if norm == math.inf:
        step = flat.sign()
    elif norm == 1:
        step = torch.zeros_like(flat)
        step[torch.arange(len(flat)), flat.abs().argmax(dim=1)] = 1.0
        step = step * flat.sign()
    else:
        step = flat / (flat.norm(p=2, dim=1, keepdim=True) + 1e-7)
    return step.view_as(grad)


@torch.no_grad()
def empirical_robustness(
    net: nn.Module,
    x: torch.Tensor,
    norm: str | float = "inf",
    eps_step: float = 0.1,
    eps_max: float = 0.3,
    batch_size: int = 500,
) -> float:
    """Empirical robustness (Moosavi-Dezfooli et al.) with minimal FGSM, as ART computes it.

    For each image: the FGSM direction at the predicted class; the smallest eps on the grid
    ``eps_step, 2 eps_step, ..., eps_max`` at which the prediction flips; then the mean of
    ||x_adv - x||_p / ||x||_p over the images that flip (0 when none does). Pixels stay in
    [0, 1]. The grid is built from integer multiples, so ``eps_max`` itself is tried; ART adds
    ``eps_step`` repeatedly and stops when the float sum exceeds ``eps_max``, so with 0.1 and
    0.3 it never tries 0.3 (0.1 + 0.1 + 0.1 > 0.3).
    """
    p = parse_norm(norm)
    if not eps_step > 0 or not eps_max >= eps_step:
        raise ConfigError(
            f"eps_step={eps_step}, eps_max={eps_max} are invalid: need 0 < eps_step <= eps_max"
        )
    steps = int(math.floor(eps_max / eps_step + 1e-9))
    grid = [k * eps_step for k in range(1, steps + 1)]
    ratios = []
    with frozen(net):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            pred = net(xb).argmax(1)
            direction = _fgsm_direction(_input_gradients(net, xb, pred), p)
            adv = xb.clone()
            active = torch.ones(len(xb), dtype=torch.bool, device=xb.device)
            flipped = torch.zeros_like(active)
            for eps in grid:
                candidate = (xb + eps * direction).clamp(0.0, 1.0)
                adv[active] = candidate[active]
                now = net(adv).argmax(1) != pred
                flipped |= now & active
                active &= ~now
                if not active.any():
                    break
            if flipped.any():
                delta = (adv - xb)[flipped].flatten(1)
                ratios.append(delta.norm(p=p, dim=1) / xb[flipped].flatten(1).norm(p=p, dim=1))
    return torch.cat(ratios).mean().item() if ratios else 0.0


class SnapshotMetrics:
    """The robustness scores computed for every (k-th) snapshot during the replay.

    Args:
        n_images: the first ``n_images`` test images are scored.
        every_k: score every k-th snapshot (epochs k, 2k, ...) and the last one; the others
            get NaN. 1 scores every snapshot.
        loss_sensitivity: compute loss sensitivity (true labels).
        empirical_robustness: keyword arguments of :func:`empirical_robustness`
            (``norm``, ``eps_step``, ``eps_max``), or None to switch it off.
        clever: keyword arguments of :class:`advfit.metrics.clever.Clever` plus ``n_images``
            (CLEVER costs far more per image, so it scores fewer), or None to switch it off.
        batch_size: images per gradient pass.
        seed: seeds CLEVER's random points.
    """

    def __init__(
        self,
        n_images: int = 500,
        every_k: int = 1,
        loss_sensitivity: bool = True,
        empirical_robustness: dict | None = None,
        clever: dict | None = None,
        batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        if int(n_images) < 1:
            raise ConfigError(f"metrics.n_images={n_images} is invalid: it must be >= 1")
        if int(every_k) < 1:
            raise ConfigError(f"metrics.every_k={every_k} is invalid: it must be >= 1")
        self.n_images, self.every_k = int(n_images), int(every_k)
        self.loss_sensitivity = bool(loss_sensitivity)
        self.empirical = (
            {str(k): v for k, v in dict(empirical_robustness).items()}
            if empirical_robustness
            else None
        )
        if self.empirical is not None:
            try:
                parse_norm(self.empirical.get("norm", "inf"))
            except ConfigError as err:
                raise ConfigError(f"metrics.empirical_robustness.{err}") from err
            step, top = self.empirical.get("eps_step", 0.1), self.empirical.get("eps_max", 0.3)
            if not 0 < step <= top:
                raise ConfigError(
                    f"metrics.empirical_robustness eps_step={step}, eps_max={top} are invalid: "
                    "need 0 < eps_step <= eps_max"
                )
        self.batch_size = int(batch_size)
        self.clever = None
        self.clever_images = 0
        self.last_clever: CleverResult | None = None
        if clever:
            from advfit.metrics.clever import Clever

            settings = {str(k): v for k, v in dict(clever).items()}
            self.clever_images = int(settings.pop("n_images", 10))
            if not 1 <= self.clever_images <= self.n_images:
                raise ConfigError(
                    f"metrics.clever.n_images={self.clever_images} is invalid: "
                    f"accepted are 1..metrics.n_images ({self.n_images})"
                )
            self.clever = Clever(**settings, seed=int(seed))

    @property
    def columns(self) -> list[str]:
        return (
            ["loss_sensitivity"] * self.loss_sensitivity
            + ["empirical_robustness"] * (self.empirical is not None)
            + ["clever"] * (self.clever is not None)
        )

    def check_size(self, n_test: int) -> None:
        if self.n_images > n_test:
            raise ConfigError(
                f"metrics.n_images={self.n_images} is invalid: the test set holds {n_test} images"
            )

    def due(self, epoch: int, last_epoch: int) -> bool:
        return epoch % self.every_k == 0 or epoch == last_epoch

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
        """Scores of ``net`` on the first ``n_images`` of ``x`` (pixels in [0, 1]), and the
        seconds each took."""
        x, y = x[: self.n_images], y[: self.n_images]
        values, seconds = {}, {}
        if self.loss_sensitivity:
            started = time.perf_counter()
            values["loss_sensitivity"] = loss_sensitivity(net, x, y, self.batch_size)
            seconds["loss_sensitivity"] = time.perf_counter() - started
        if self.empirical is not None:
            started = time.perf_counter()
            values["empirical_robustness"] = empirical_robustness(
                net, x, batch_size=self.batch_size, **self.empirical
            )
            seconds["empirical_robustness"] = time.perf_counter() - started
        if self.clever is not None:
            started = time.perf_counter()
            self.last_clever = self.clever.evaluate(net, x[: self.clever_images])
            values["clever"] = self.last_clever.scores.mean().item()
            seconds["clever"] = time.perf_counter() - started
        return values, seconds
