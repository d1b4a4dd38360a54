"""Lightning checkpoints written atomically, and a resume point that survives a torn file."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from advfit.errors import RunError
from advfit.files import atomic_torch_save
from advfit.rundir import RunDir, training_cells

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


#: The key under which the snapshot callback keeps, in ``last.ckpt``, each epoch's training
#: row as it wrote it to ``epochs.csv`` (:class:`advfit.callbacks.EpochSnapshots`).
EPOCH_ROWS = "epoch_rows"


def recorded_rows(path: Path) -> dict[int, dict[str, str]] | None:
    """The training rows ``last.ckpt`` at ``path`` recorded as its epochs were trained; None
    when it recorded none (a checkpoint of an earlier version)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and EPOCH_ROWS in state:
            return {int(epoch): dict(row) for epoch, row in state[EPOCH_ROWS].items()}
    return None


def check_epoch_record(run: RunDir, through: int | None = None) -> None:
    """Refuse a run whose ``epochs.csv`` training rows differ from what training recorded in
    ``last.ckpt`` as it wrote them (an edited ``val_acc`` would move the best epoch, and a
    replay would craft, and seal, on it). ``through``: compare the epochs up to it only (a
    resume drops the later rows and trains them again); else every row must be recorded."""
    epochs = run.read_epochs()
    if epochs.empty:
        return
    path = run.last_checkpoint
    try:
        record = recorded_rows(path)
    except FileNotFoundError:
        raise RunError(
            f"{run.epochs_csv} cannot be checked: {path} (which records every epoch's row as "
            "it was trained) is missing. Resume the run with its train.py command, or restore "
            "the file"
        ) from None
    except Exception as err:
        raise RunError(
            f"{path} is unreadable ({err}): {run.epochs_csv} cannot be checked"
        ) from None
    if record is None:
        log.warning("%s records no epoch rows (an earlier version): epochs.csv unchecked", path)
        return
    cells = training_cells(epochs)
    for epoch in sorted(cells):
        if through is not None and epoch > through:
            continue
        if epoch not in record:
            raise RunError(
                f"{run.epochs_csv} holds epoch {epoch}, which {path.name} did not record as "
                "trained: resume the run with its train.py command, which trains it again"
            )
        for column, value in cells[epoch].items():
            if record[epoch].get(column) != value:
                raise RunError(
                    f"{run.epochs_csv} says {column}={value} at epoch {epoch}, but training "
                    f"wrote {record[epoch].get(column)} ({path.name} records each row): an "
                    "edited file? Restore it, or delete the run directory and train it again. "
                    "Nothing was changed"
                )
    missing = sorted(e for e in record if e not in cells and (through is None or e <= through))
    if missing:
        raise RunError(
            f"{run.epochs_csv} lacks epoch {missing[0]}, which training recorded: restore it, "
            "or delete the run directory and train it again"
        )
