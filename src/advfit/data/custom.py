"""A researcher's own data set, read from an ``.npz`` file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from advfit.data.datamodule import Arrays, InMemoryDataModule
from advfit.errors import DataError


class CustomDataModule(InMemoryDataModule):
    """A researcher's own data: an ``.npz`` with ``x_train, y_train, x_test, y_test``.

    Images are uint8, NHWC or NCHW (``layout``: auto, nhwc or nchw), any size and channel
    count; NHW (no channel axis) is read as one channel. Labels are integers 0..num_classes-1.
    """

    name = "custom"
    KEYS = ("x_train", "y_train", "x_test", "y_test")

    def __init__(
        self, path: str, layout: str = "auto", num_classes: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if layout not in ("auto", "nhwc", "nchw"):
            raise DataError(f"data.layout={layout!r} is invalid: accepted are auto, nhwc, nchw")
        self.path = Path(path).expanduser() if path else None
        self.layout = layout
        self.declared_classes = num_classes

    def read(self) -> Arrays:
        if self.path is None:
            raise DataError(
                "data=custom needs data.path=<file.npz> holding " + ", ".join(self.KEYS)
            )
        if not self.path.is_file():
            raise DataError(
                f"data.path={self.path} was not found (looked in {self.path.resolve()})"
            )
        if not zipfile.is_zipfile(self.path):
            raise DataError(
                f"data.path={self.path} is not an .npz file: an .npz is a zip archive of "
                f"arrays (numpy.savez) holding {', '.join(self.KEYS)}"
            )
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                missing = [k for k in self.KEYS if k not in npz.files]
                if missing:
                    raise DataError(
                        f"{self.path} lacks {', '.join(missing)}; it holds {', '.join(npz.files)} "
                        f"and needs {', '.join(self.KEYS)}"
                    )
                arrays = {k: npz[k] for k in self.KEYS}
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"{self.path} is not a readable .npz file: {err}") from err
        out = []
        for split in ("train", "test"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if x.dtype != np.uint8:
                raise DataError(f"{self.path}: x_{split} has dtype {x.dtype}; uint8 is required")
            if x.ndim not in (3, 4):
                raise DataError(
                    f"{self.path}: x_{split} has shape {x.shape}; accepted are NHW, NHWC, NCHW"
                )
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise DataError(
                    f"{self.path}: y_{split} must be a 1-D integer array, got {y.dtype} {y.shape}"
                )
            if len(x) != len(y):
                raise DataError(
                    f"{self.path}: x_{split} holds {len(x)} images but y_{split} {len(y)} labels"
                )
            limit = self.declared_classes
            bad = y[(y < 0) | ((y >= limit) if limit else False)]
            if len(bad):
                accepted = f"0..{limit - 1}" if limit else "non-negative integers"
                raise DataError(
                    f"{self.path}: y_{split} holds label {int(bad[0])} out of range; accepted: {accepted}"
                )
            out += [torch.from_numpy(self._nchw(x)), torch.from_numpy(y.astype(np.int64))]
        return tuple(out)

    def _nchw(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 3:
            return np.ascontiguousarray(x[:, None])
        layout = self.layout
        if layout == "auto":
            layout = "nchw" if x.shape[1] <= 4 < x.shape[3] else "nhwc"
        return np.ascontiguousarray(x if layout == "nchw" else x.transpose(0, 3, 1, 2))

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.declared_classes:
            self.num_classes = int(self.declared_classes)
