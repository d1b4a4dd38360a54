"""In-memory LightningDataModules, one per data set.

Every data set is read once through its torchvision class (or a user's ``.npz``) into uint8
NCHW tensors. Images stay uint8 in memory (on the accelerator when there is one) and reach
the model as float pixels in [0, 1] in batches cut by tensor indexing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torchvision.transforms.v2.functional import rgb_to_grayscale

from advfit.config import check_subset
from advfit.data.batches import EVAL_BATCH_SIZE, TensorBatches
from advfit.data.folds import fold_indices, stratified_subset
from advfit.errors import DataError
from advfit.locks import file_lock

log = logging.getLogger(__name__)


Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
#: In a data folder: held while a job checks, fetches or unpacks files there.
DATA_LOCK = ".advfit-prepare.lock"


class InMemoryDataModule(pl.LightningDataModule):
    """Base class: subclasses implement :meth:`read` and return uint8 NCHW tensors.

    Args:
        data_dir: root under which torchvision finds (or downloads) the files.
        batch_size: training batch size.
        fold, n_folds, seed: fold ``fold`` of a stratified ``n_folds`` split of the training
            set is the validation set; the shuffle of the split and of the batches uses ``seed``.
        grayscale: convert RGB images to one channel (ITU-R 601-2 luma, torchvision's weights).
        download: let torchvision download files that are absent.
        train_subset, test_subset: keep a stratified subset of that many training images / the
            first that many test images (None keeps all); for quick studies and tests.
        eval_batch_size: batch size of validation, test and replay passes.
    """

    name: str = "dataset"
    #: the class names by label (from torchvision's data set; empty when unknown)
    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 32,
        fold: int = 0,
        n_folds: int = 5,
        seed: int = 0,
        grayscale: bool = False,
        download: bool = True,
        train_subset: int | None = None,
        test_subset: int | None = None,
        eval_batch_size: int = EVAL_BATCH_SIZE,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if name:
            self.name = name
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise DataError(f"data.{key}={value} is invalid: it must be an integer >= 1")
        for key, value in (("train_subset", train_subset), ("test_subset", test_subset)):
            check_subset(f"data.{key}", value)
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size = int(batch_size)
        self.fold, self.n_folds, self.seed = int(fold), int(n_folds), int(seed)
        self.grayscale = bool(grayscale)
        self.download = bool(download)
        self.train_subset, self.test_subset = train_subset, test_subset
        self.eval_batch_size = int(eval_batch_size)
        #: The files the data were read from (torchvision's), digested in summary.json.
        self.source_files: tuple[Path, ...] = ()
        self._loaded = False
        self._device: torch.device | None = None

    # -- reading -----------------------------------------------------------------------
    def read(self) -> Arrays:
        """Return ``x_train, y_train, x_test, y_test``: uint8 NCHW images, int64 labels."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Bring this data set's files into ``data_dir`` (unpack, download, check) and read them
        once. The sweep calls it on the launching machine before any job starts; every job
        calls it again through :meth:`setup`, which then only reads."""
        self.read()

    @contextlib.contextmanager
    def preparing(self) -> Iterator[bool]:
        """Hold the data folder's lock while files are checked, fetched or unpacked, so any
        number of jobs (on one machine or many sharing the folder) prepare the data once and
        never read a half-written file. Yields whether the folder is writable: a read-only
        one is read without the lock (what it holds can only be complete or missing)."""
        writable = True
        with contextlib.ExitStack() as stack:
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(file_lock(self.data_dir / DATA_LOCK, wait=True))
            except OSError as err:
                if not self.data_dir.is_dir():
                    raise DataError(
                        f"data.data_dir={self.data_dir} cannot be created: {err}. Point "
                        "data.data_dir (or $ADVFIT_DATA) at a folder you can write, or at "
                        "one that holds the data sets."
                    ) from err
                log.info("%s is read-only (%s): reading it as it is", self.data_dir, err)
                self.download = writable = False
            yield writable

    def _torchvision(self, factory, split_kwargs: tuple[dict, dict], extra_places=()) -> Arrays:
        """Read the train and test splits through a torchvision dataset class (call it inside
        :meth:`preparing`).

        Tries the files on disk first, then a download when ``download`` is true; when both
        fail, raises a :class:`DataError` naming every place looked.
        """
        splits = []
        for kwargs in split_kwargs:
            try:
                dataset = factory(root=str(self.data_dir), download=False, **kwargs)
            except RuntimeError as missing:
                if not self.download:
                    raise self._missing(extra_places, missing) from missing
                log.info("%s not found under %s; downloading", self.name, self.data_dir)
                try:
                    dataset = factory(root=str(self.data_dir), download=True, **kwargs)
                except Exception as err:  # network errors come in many types
                    raise self._missing(extra_places, err) from err
            except (OSError, ValueError, EOFError) as err:
                raise DataError(
                    f"{self.name}: the files under {self.data_dir} could not be read ({err}). "
                    "Delete them to download again, or replace them with intact copies."
                ) from err
            splits.append(dataset)
        self.class_names = tuple(str(c) for c in getattr(splits[0], "classes", None) or ())
        self.source_files = source_files(splits[0])
        return (*self._arrays(splits[0]), *self._arrays(splits[1]))

    def _missing(self, extra_places, err: BaseException) -> DataError:
        places = [str(self.data_dir)] + [str(p) for p in extra_places]
        return DataError(
            f"{self.name} was not found. Looked in: {', '.join(places)}. "
            f"Download failed or is switched off (data.download={self.download}): {err}. "
            f"To supply the files, put torchvision's {self.name} files under "
            f"data.data_dir={self.data_dir} (or point data.data_dir / $ADVFIT_DATA at them), "
            "or run once on a machine with a network so torchvision downloads them."
        )

    @staticmethod
    def _arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(dataset.data))
        labels = getattr(dataset, "targets", None)
        if labels is None:
            labels = dataset.labels
        y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if x.ndim == 3:
            x = x.unsqueeze(1)
        elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.permute(0, 3, 1, 2)
        return x.contiguous(), y

    # -- set-up ------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        x_train, y_train, x_test, y_test = self.read()
        if self.grayscale and x_train.shape[1] == 3:
            x_train, x_test = rgb_to_grayscale(x_train), rgb_to_grayscale(x_test)
        self.check(x_train, y_train, x_test, y_test)
        labels = y_train.numpy()
        if self.train_subset is not None and int(self.train_subset) > len(labels):
            raise DataError(
                f"data.train_subset={self.train_subset} is invalid: {self.name} has "
                f"{len(labels)} training images (use at most that, or null for all)"
            )
        if self.test_subset is not None and int(self.test_subset) > len(y_test):
            raise DataError(
                f"data.test_subset={self.test_subset} is invalid: {self.name} has "
                f"{len(y_test)} test images (use at most that, or null for all)"
            )
        if self.train_subset is not None:
            classes = len(np.unique(labels))
            if int(self.train_subset) < classes * self.n_folds:
                raise DataError(
                    f"data.train_subset={self.train_subset} is invalid: a stratified subset "
                    f"of {self.name} with {classes} classes and {self.n_folds} folds needs at "
                    f"least {classes * self.n_folds} images (or null for all)"
                )
            keep = torch.as_tensor(stratified_subset(labels, int(self.train_subset), self.seed))
            x_train, y_train = x_train[keep], y_train[keep]
            labels = y_train.numpy()
        if self.test_subset is not None:
            x_test, y_test = x_test[: int(self.test_subset)], y_test[: int(self.test_subset)]
        try:
            train_idx, val_idx = fold_indices(labels, self.n_folds, self.fold, self.seed)
        except ValueError as err:
            raise DataError(str(err)) from err
        train_idx, val_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
        self.num_classes = int(max(y_train.max(), y_test.max())) + 1
        self.x_train, self.y_train = x_train[train_idx], y_train[train_idx]
        self.x_val, self.y_val = x_train[val_idx], y_train[val_idx]
        self.x_test, self.y_test = x_test, y_test
        self._loaded = True
        log.info(
            "%s fold %d/%d: %d train, %d validation, %d test images of shape %s",
            self.name,
            self.fold,
            self.n_folds,
            len(self.y_train),
            len(self.y_val),
            len(self.y_test),
            tuple(self.input_shape),
        )

    def check(self, x_train, y_train, x_test, y_test) -> None:
        """What can be seen of the data at load time, before any training."""
        classes = np.unique(y_train.numpy())
        if len(classes) < 2:
            raise DataError(
                f"{self.name}: the training set holds a single class ({classes.tolist()}); "
                "classification needs at least 2"
            )
        if tuple(x_train.shape[1:]) != tuple(x_test.shape[1:]):
            raise DataError(
                f"{self.name}: training images have shape {tuple(x_train.shape[1:])} but test "
                f"images {tuple(x_test.shape[1:])}; both splits need the same channels and size"
            )
        unseen = sorted(set(np.unique(y_test.numpy()).tolist()) - set(classes.tolist()))
        if unseen:
            log.warning(
                "%s: test labels %s never occur in the training set; the model cannot predict them",
                self.name,
                unseen,
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the model sees."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> InMemoryDataModule:
        """Move every tensor to ``device`` once (a no-op when already there)."""
        device = torch.device(device)
        if self._device != device:
            for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
                setattr(self, key, getattr(self, key).to(device))
            self._device = device
        return self

    def _on_trainer_device(self) -> None:
        self.setup()
        if self.trainer is not None:
            self.to(self.trainer.strategy.root_device)

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> TensorBatches:
        self._on_trainer_device()
        return TensorBatches(
            self.x_train,
            self.y_train,
            self.batch_size,
            shuffle=True,
            seed=self.seed,
            epoch=self._epoch,
        )

    def val_dataloader(self) -> TensorBatches:
        self._on_trainer_device()
        return TensorBatches(self.x_val, self.y_val, self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        self._on_trainer_device()
        return TensorBatches(self.x_test, self.y_test, self.eval_batch_size)


def source_files(dataset) -> tuple[Path, ...]:
    """The files a torchvision data set's labelled splits are read from: CIFAR-10's and
    STL-10's batches (not STL-10's unlabelled images), the MNIST formats' unpacked IDX files."""
    if hasattr(dataset, "train_list"):  # CIFAR-10, STL-10
        folder = Path(dataset.root) / dataset.base_folder
        names = [name for name, _ in dataset.train_list + dataset.test_list]
    elif hasattr(dataset, "resources"):  # MNIST, Fashion-MNIST
        folder = Path(dataset.raw_folder)
        names = [Path(url).name.removesuffix(".gz") for url, _ in dataset.resources]
    else:
        return ()
    return tuple(folder / n for n in names if "unlabeled" not in n and (folder / n).is_file())
