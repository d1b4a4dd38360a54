"""The data sets torchvision reads: CIFAR-10, STL-10, MNIST and Fashion-MNIST (also from a
system copy of its gzipped IDX files), each into uint8 tensors in memory."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

from advfit.data.datamodule import Arrays, InMemoryDataModule
from advfit.errors import DataError
from advfit.files import atomic_write

log = logging.getLogger(__name__)


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 (Krizhevsky 2009): 50,000 train / 10,000 test RGB images of 32x32."""

    name = "cifar10"

    def read(self) -> Arrays:
        from torchvision.datasets import CIFAR10

        with self.preparing():
            return self._torchvision(CIFAR10, ({"train": True}, {"train": False}))


class STL10DataModule(InMemoryDataModule):
    """STL-10 (Coates et al. 2011), labelled splits only: 5,000 train / 8,000 test, 96x96 RGB."""

    name = "stl10"

    def read(self) -> Arrays:
        from torchvision.datasets import STL10

        with self.preparing():
            return self._torchvision(STL10, ({"split": "train"}, {"split": "test"}))


class _MNISTFormatDataModule(InMemoryDataModule):
    """MNIST-format data sets; also found as gzipped IDX files in a system directory."""

    system_dirs: tuple[Path, ...] = ()
    folder: str = ""

    def _unpack_system_copy(self) -> None:
        """Unpack the gzipped IDX files of a system copy into ``<data_dir>/<folder>/raw``
        (inside :meth:`preparing`); each file is written under a unique temporary name and
        renamed into place when complete."""
        raw = self.data_dir / self.folder / "raw"
        for source in self.system_dirs:
            files = sorted(source.glob("*-ubyte.gz")) if source.is_dir() else []
            if len(files) < 4:
                continue
            missing = [gz for gz in files if not (raw / gz.name[: -len(".gz")]).exists()]
            for gz in missing:
                target = raw / gz.name[: -len(".gz")]

                def unpack(out, gz=gz):
                    with gzip.open(gz, "rb") as src:
                        shutil.copyfileobj(src, out)

                try:
                    atomic_write(target, unpack, binary=True)
                except OSError as err:
                    raise DataError(
                        f"data.data_dir={self.data_dir}: {target} cannot be written ({err}); "
                        f"point data.data_dir (or $ADVFIT_DATA) at a folder you can write"
                    ) from err
            if missing:
                log.info("unpacked %s from %s into %s", self.name, source, raw)
            return

    def read(self) -> Arrays:
        from torchvision import datasets

        with self.preparing() as writable:
            if writable:
                self._unpack_system_copy()
            factory = getattr(datasets, self.folder)
            return self._torchvision(factory, ({"train": True}, {"train": False}), self.system_dirs)


class FashionMNISTDataModule(_MNISTFormatDataModule):
    """Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test grayscale 28x28;
    ``system_dir``: a folder of its gzipped IDX files to unpack from first
    (``paths.fashion_mnist_system``, Debian's package)."""

    name = "fashion_mnist"
    folder = "FashionMNIST"

    def __init__(self, system_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.system_dirs = (Path(system_dir),) if system_dir else ()


class MNISTDataModule(_MNISTFormatDataModule):
    """MNIST (LeCun et al. 1998): 60,000 train / 10,000 test grayscale 28x28."""

    name = "mnist"
    folder = "MNIST"
