"""Per-snapshot robustness scores (the paper's section 2.3), batched over images.

Both follow IBM ART's definitions (``art.metrics``), computed from per-image gradients so that
the values do not depend on the batch size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from advfit.attacks.autoattack import APGD
from advfit.attacks.base import checked_parameters
from advfit.errors import ConfigError
from advfit.metrics.norms import parse_norm
from advfit.models.frozen import frozen


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


def _predicted_class_gradients(
    net: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's predicted class and the gradient of its own cross-entropy loss at that
    class, from one forward pass (the prediction is the argmax of the same logits)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = net(x)
        pred = logits.argmax(1)
        loss = F.cross_entropy(logits, pred, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    if not torch.isfinite(grad).all():
        raise ValueError("the model yields NaN or infinite input gradients")
    return pred, grad


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

    Cheaper than ART for the same value: the prediction and the gradient come from one
    forward pass, and each eps classifies only the images that have not flipped yet (ART
    classifies the whole batch at every eps).
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
            pred, grad = _predicted_class_gradients(net, xb)
            direction = _fgsm_direction(grad, p)
            # Each image's ratio at the eps where it flips, kept in image order.
            ratio = torch.zeros(len(xb), dtype=xb.dtype, device=xb.device)
            flipped = torch.zeros(len(xb), dtype=torch.bool, device=xb.device)
            # Positions in the batch of the images not flipped yet.
            active = torch.arange(len(xb), device=xb.device)
            for eps in grid:
                candidate = (xb[active] + eps * direction[active]).clamp(0.0, 1.0)
                now = net(candidate).argmax(1) != pred[active]
                flips = active[now]
                delta = (candidate[now] - xb[flips]).flatten(1)
                ratio[flips] = delta.norm(p=p, dim=1) / xb[flips].flatten(1).norm(p=p, dim=1)
                flipped[flips] = True
                active = active[~now]
                if len(active) == 0:
                    break
            ratios.append(ratio[flipped])
    scored = torch.cat(ratios)
    return scored.mean().item() if len(scored) else 0.0


class LossSensitivity:
    """The ``loss_sensitivity`` metric entry: :func:`loss_sensitivity` with its batch size."""

    def __init__(self, batch_size: int = 500) -> None:
        if int(batch_size) < 1:
            raise ConfigError(
                f"metrics.loss_sensitivity.batch_size={batch_size} is invalid: it must be >= 1"
            )
        self.batch_size = int(batch_size)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return loss_sensitivity(net, x, y, self.batch_size)


class EmpiricalRobustness:
    """The ``empirical_robustness`` metric entry: :func:`empirical_robustness`, checked once."""

    def __init__(
        self,
        norm: str | float = "inf",
        eps_step: float = 0.1,
        eps_max: float = 0.3,
        batch_size: int = 500,
    ) -> None:
        try:
            parse_norm(norm)
        except ConfigError as err:
            raise ConfigError(f"metrics.empirical_robustness.{err}") from err
        if not 0 < eps_step <= eps_max:
            raise ConfigError(
                f"metrics.empirical_robustness eps_step={eps_step}, eps_max={eps_max} are "
                "invalid: need 0 < eps_step <= eps_max"
            )
        if parse_norm(norm) == math.inf and eps_max > 1:
            raise ConfigError(
                f"metrics.empirical_robustness.eps_max={eps_max} is invalid for the L-inf norm: "
                "pixels lie in [0, 1], so at most 1"
            )
        if int(batch_size) < 1:
            raise ConfigError(
                f"metrics.empirical_robustness.batch_size={batch_size} is invalid: it must be >= 1"
            )
        self.settings = {"norm": norm, "eps_step": eps_step, "eps_max": eps_max}
        self.batch_size = int(batch_size)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        return empirical_robustness(net, x, batch_size=self.batch_size, **self.settings)


class RobustAccuracy:
    """The ``robust_accuracy`` metric entry: the share of images that APGD-CE (Croce & Hein
    2020, the authors' APGDAttack), crafted on this snapshot itself within radius
    ``eps``, leaves classified right; seeded, so the same snapshot gives the same value.

    White-box robustness of each snapshot, where the replay's ASR measures how the best
    epoch's adversarials transfer. An image the snapshot misclassifies clean counts as not
    robust, so the value is at most the clean accuracy.
    """

    def __init__(
        self,
        eps: float = 0.1,
        norm: str = "Linf",
        nb_iter: int = 10,
        n_restarts: int = 1,
        seed: int = 0,
        batch_size: int = 500,
    ) -> None:
        where = "metrics.robust_accuracy"
        settings = {"eps": eps, "norm": norm, "nb_iter": nb_iter, "n_restarts": n_restarts}
        settings.update(checked_parameters(where, settings))
        APGD.check(where, {**settings, "seed": seed})
        if int(batch_size) < 1:
            raise ConfigError(
                f"metrics.robust_accuracy.batch_size={batch_size} is invalid: it must be >= 1"
            )
        self.settings = {**settings, "seed": int(seed)}
        self.batch_size = int(batch_size)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        correct = 0
        with frozen(net):
            attack = APGD(net, **self.settings)
            for start in range(0, len(x), self.batch_size):
                xb, yb = x[start : start + self.batch_size], y[start : start + self.batch_size]
                adversarial = attack.perturb(xb, yb)
                with torch.no_grad():
                    correct += int((net(adversarial).argmax(1) == yb).sum())
        return correct / len(x)
