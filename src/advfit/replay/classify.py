"""The snapshot pass: load each epoch's weights and classify the clean and adversarial sets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from advfit.data.batches import to_unit_range
from advfit.errors import RunError

if TYPE_CHECKING:
    from advfit.replay.crafting import AdversarialSet


class ReplayError(RunError):
    """The run directory cannot be replayed (not a run, no snapshots, a corrupt file)."""


def load_weights(net: nn.Module, path) -> nn.Module:
    """Load a snapshot into ``net``; a clear error when the file is truncated or foreign."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as err:
        raise ReplayError(f"snapshot {path} is corrupt or does not fit this model: {err}") from err
    return net


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes for ``x`` (uint8 images, or float pixels in [0, 1])."""
    net.eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        out.append(net(to_unit_range(batch) if batch.dtype == torch.uint8 else batch).argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=x.device)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    return (predict(net, x, batch_size) == y).float().mean().item()


def classify(
    net: nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    sets: dict[str, AdversarialSet],
    batch_size: int,
) -> dict[str, float]:
    """One snapshot's ``test_acc`` and ``asr_<attack>`` (1 - accuracy on the crafted set).

    A snapshot that predicts one class for every test image has no meaningful ASR (whether an
    adversarial "succeeds" depends only on its label): its ASRs are NaN, which the verdict's
    rho and ASR change leave out."""
    predicted = predict(net, x_test, batch_size)
    row = {"test_acc": (predicted == y_test).float().mean().item()}
    one_class = len(predicted) > 1 and bool((predicted == predicted[0]).all())
    for name, adv in sets.items():
        row[f"asr_{name}"] = (
            math.nan if one_class else 1.0 - accuracy(net, adv.x_adv, adv.labels, batch_size)
        )
    return row
