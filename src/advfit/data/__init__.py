"""Data: in-memory data modules, stratified folds, batching by tensor indexing.

Names are loaded on first use (PEP 562), so that ``advfit.data.folds`` (numpy and
scikit-learn) can be imported without Lightning: a sweep's launching process checks folds
before any job starts and needs nothing else from here.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "TensorBatches": "advfit.data.batches",
    "to_unit_range": "advfit.data.batches",
    "CustomDataModule": "advfit.data.custom",
    "CIFAR10DataModule": "advfit.data.datamodule",
    "FashionMNISTDataModule": "advfit.data.datamodule",
    "InMemoryDataModule": "advfit.data.datamodule",
    "MNISTDataModule": "advfit.data.datamodule",
    "STL10DataModule": "advfit.data.datamodule",
    "fold_indices": "advfit.data.folds",
    "stratified_subset": "advfit.data.folds",
    "DataError": "advfit.errors",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
