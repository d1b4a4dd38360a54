"""Data: in-memory data modules, stratified folds, batching by tensor indexing."""

from advfit.data.batches import TensorBatches, to_unit_range
from advfit.data.custom import CustomDataModule
from advfit.data.datamodule import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    InMemoryDataModule,
    MNISTDataModule,
    STL10DataModule,
)
from advfit.data.folds import fold_indices, stratified_subset
from advfit.errors import DataError

__all__ = [
    "CIFAR10DataModule",
    "CustomDataModule",
    "DataError",
    "FashionMNISTDataModule",
    "InMemoryDataModule",
    "MNISTDataModule",
    "STL10DataModule",
    "TensorBatches",
    "fold_indices",
    "stratified_subset",
    "to_unit_range",
]
