"""What both stages of the replay do with a snapshot's network: load its weights, predict
classes, and the error a run directory that cannot be replayed raises. Crafting
(:mod:`advfit.replay.crafting`) and the snapshot pass (:mod:`advfit.replay.classify`) both
import it, and neither imports the other."""

from __future__ import annotations

import torch
from torch import nn

from advfit.data.batches import to_unit_range
from advfit.errors import RunError


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
