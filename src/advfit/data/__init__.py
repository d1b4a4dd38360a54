"""Data: in-memory data modules, stratified folds, batching by tensor indexing.

Names load on first use (``advfit.lazy``): the sweep's up-front fold checks import
``advfit.data.folds`` (numpy, scikit-learn) without the data modules' Lightning.
"""

from advfit.lazy import exports

_WHERE = {
    "TensorBatches": "advfit.data.batches",
    "to_unit_range": "advfit.data.batches",
    "CustomDataModule": "advfit.data.custom",
    "CIFAR10DataModule": "advfit.data.torchvision_sets",
    "FashionMNISTDataModule": "advfit.data.torchvision_sets",
    "InMemoryDataModule": "advfit.data.datamodule",
    "MNISTDataModule": "advfit.data.torchvision_sets",
    "STL10DataModule": "advfit.data.torchvision_sets",
    "fold_indices": "advfit.data.folds",
    "stratified_subset": "advfit.data.folds",
    "DataError": "advfit.errors",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = exports(__name__, _WHERE)
