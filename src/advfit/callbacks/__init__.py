"""Callbacks: per-epoch snapshots and the adversarial replay at the end of fitting."""

from advfit.callbacks.epoch_record import EpochSnapshots
from advfit.callbacks.replay import AdversarialReplay
from advfit.callbacks.timing import StageSeconds

__all__ = ["AdversarialReplay", "EpochSnapshots", "StageSeconds"]
