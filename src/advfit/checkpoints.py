"""Lightning checkpoints written atomically, and a resume point that survives a torn file."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from advfit.rundir import atomic_torch_save

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, but a checkpoint replaces the old one only once complete."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, Path(path))


def usable_checkpoint(path: Path) -> tuple[Path, int] | None:
    """``(path, epochs completed)`` when ``path`` holds a loadable Lightning checkpoint, else
    None (with a warning).

    A torn or corrupt file is moved aside to ``<name>.corrupt`` and training starts over;
    the per-epoch snapshots hold weights only, so they cannot restore the optimizer state
    that an exact resume needs. It is read with ``weights_only=True``: tensors, numbers,
    strings and containers, never a pickled object that could run code (a checkpoint planted
    in a shared run directory); Lightning's own resume reads it the same way
    (``Trainer.fit(weights_only=True)``).
    """
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if "state_dict" not in checkpoint or "loops" not in checkpoint:
            raise ValueError("it lacks the model state or the loop counters")
        # Saved at the end of an epoch: ``epoch`` is that epoch's 0-based index.
        completed = int(checkpoint["epoch"]) + 1
    except Exception as err:  # a torn file raises many kinds of error
        if isinstance(err, pickle.UnpicklingError) and "weights_only" in str(err):
            err = "it holds objects other than weights, which advfit does not load"
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        log.warning("%s is unreadable (%s); moved to %s, training starts over", path, err, aside)
        return None
    return path, completed
