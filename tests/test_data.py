"""Loading through torchvision from files written in the data sets' real on-disk formats."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, STL10

from advfit.data import (
    CIFAR10DataModule,
    CustomDataModule,
    DataError,
    STL10DataModule,
    to_unit_range,
)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root: Path, n_per_batch: int, monkeypatch) -> tuple[np.ndarray, list[int]]:
    """The python-pickle CIFAR-10 layout: 5 data batches, a test batch, batches.meta.

    Returns the first training batch's images (NHWC) and labels to compare against.
    """
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(i % 10) for i in range(n_per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        if first is None:
            first = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # torchvision checks each file's MD5; point it at the files this test wrote.
    monkeypatch.setattr(
        CIFAR10,
        "train_list",
        [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)],
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    return first


def test_cifar10_from_its_on_disk_format(tmp_path, monkeypatch):
    images, labels = write_cifar10(tmp_path, 20, monkeypatch)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False, n_folds=2, fold=0)
    dm.setup()
    assert dm.input_shape == (3, 32, 32)
    assert len(dm.y_train) + len(dm.y_val) == 100 and len(dm.y_test) == 20
    assert dm.x_train.dtype == torch.uint8 and dm.num_classes == 10
    # The validation and training images together are exactly the files' training images.
    every = torch.cat([dm.x_train, dm.x_val]).permute(0, 2, 3, 1).reshape(100, -1)
    assert any(torch.equal(row, torch.from_numpy(images[0]).reshape(-1)) for row in every)


def test_cifar10_grayscale_uses_torchvision_luma(tmp_path, monkeypatch):
    images, _ = write_cifar10(tmp_path, 20, monkeypatch)
    dm = CIFAR10DataModule(
        data_dir=str(tmp_path), download=False, n_folds=2, grayscale=True, test_subset=3
    )
    dm.setup()
    assert dm.input_shape == (1, 32, 32) and len(dm.y_test) == 3
    x = dm.x_test.float()
    assert x.min() >= 0 and x.max() <= 255


def write_stl10(root: Path, n_train: int, n_test: int, monkeypatch) -> np.ndarray:
    """STL-10's binary layout: column-major 96x96x3 images, labels 1..10, one byte each."""
    folder = root / STL10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(n_train, 3, 96, 96), dtype=np.uint8)
    for name, n, x in (("train", n_train, train), ("test", n_test, None)):
        if x is None:
            x = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        # On disk each image is stored channel by channel in column-major order.
        x.transpose(0, 1, 3, 2).tofile(folder / f"{name}_X.bin")
        np.array([1 + i % 10 for i in range(n)], dtype=np.uint8).tofile(folder / f"{name}_y.bin")
    (folder / "unlabeled_X.bin").write_bytes(b"")
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    monkeypatch.setattr(
        STL10,
        "train_list",
        [[n, md5(folder / n)] for n in ("train_X.bin", "train_y.bin", "unlabeled_X.bin")],
    )
    monkeypatch.setattr(
        STL10, "test_list", [[n, md5(folder / n)] for n in ("test_X.bin", "test_y.bin")]
    )
    return train


def test_stl10_from_its_on_disk_format(tmp_path, monkeypatch):
    train = write_stl10(tmp_path, 50, 30, monkeypatch)
    dm = STL10DataModule(data_dir=str(tmp_path), download=False, n_folds=5, fold=1)
    dm.setup()
    assert dm.input_shape == (3, 96, 96)
    assert len(dm.y_train) == 40 and len(dm.y_val) == 10 and len(dm.y_test) == 30
    # Labels 1..10 on disk are 0..9 here; image 0 is stored exactly.
    assert int(torch.cat([dm.y_train, dm.y_val]).min()) == 0 and dm.num_classes == 10
    every = torch.cat([dm.x_train, dm.x_val])
    assert any(torch.equal(img, torch.from_numpy(train[0])) for img in every)


def test_missing_dataset_names_every_place_looked(tmp_path):
    dm = STL10DataModule(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataError, match="stl10 was not found. Looked in: .*nowhere") as err:
        dm.setup()
    assert "data.data_dir" in str(err.value)


def write_npz(path: Path, layout: str = "nhwc", n: int = 60, **changes) -> None:
    rng = np.random.default_rng(2)
    shape = {"nhwc": (n, 12, 10, 3), "nchw": (n, 3, 12, 10), "nhw": (n, 12, 10)}[layout]
    arrays = {
        "x_train": rng.integers(0, 256, size=shape, dtype=np.uint8),
        "y_train": np.arange(n) % 3,
        "x_test": rng.integers(0, 256, size=(20, *shape[1:]), dtype=np.uint8),
        "y_test": np.arange(20) % 3,
    }
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


@pytest.mark.parametrize(
    ("layout", "shape"), [("nhwc", (3, 12, 10)), ("nchw", (3, 12, 10)), ("nhw", (1, 12, 10))]
)
def test_custom_npz_layouts(tmp_path, layout, shape):
    write_npz(tmp_path / "set.npz", layout)
    dm = CustomDataModule(path=str(tmp_path / "set.npz"), data_dir=str(tmp_path), n_folds=3)
    dm.setup()
    assert dm.input_shape == shape and dm.num_classes == 3
    assert len(dm.y_train) == 40 and len(dm.y_val) == 20 and len(dm.y_test) == 20


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"y_test": None}, "lacks y_test"),
        ({"y_train": np.arange(59) % 3}, "60 images but y_train 59 labels"),
        ({"y_train": np.array([-1] + [0] * 59)}, "label -1 out of range"),
        ({"x_test": np.zeros((20, 12, 10, 3), dtype=np.float32)}, "dtype float32; uint8"),
    ],
)
def test_custom_npz_bad_input(tmp_path, changes, message):
    write_npz(tmp_path / "set.npz", **changes)
    dm = CustomDataModule(path=str(tmp_path / "set.npz"), data_dir=str(tmp_path))
    with pytest.raises(DataError, match=message):
        dm.setup()


def test_custom_labels_beyond_declared_classes(tmp_path):
    write_npz(tmp_path / "set.npz")
    dm = CustomDataModule(path=str(tmp_path / "set.npz"), data_dir=str(tmp_path), num_classes=2)
    with pytest.raises(DataError, match=r"label 2 out of range; accepted: 0..1"):
        dm.setup()


def test_batches_cover_each_image_once_and_shuffle_per_epoch(tmp_path):
    write_npz(tmp_path / "set.npz")
    dm = CustomDataModule(
        path=str(tmp_path / "set.npz"), data_dir=str(tmp_path), n_folds=3, batch_size=7
    )
    dm.setup()
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 6  # 40 images, batches of 7
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert sorted(x.flatten(1).sum(1).tolist()) == sorted(
        (dm.x_train.float() / 255).flatten(1).sum(1).tolist()
    )
    epoch = {"now": 0}
    loader.epoch = lambda: epoch["now"]
    first = torch.cat([b[1] for b in loader])
    again = torch.cat([b[1] for b in loader])
    epoch["now"] = 1
    second = torch.cat([b[1] for b in loader])
    assert torch.equal(first, again)  # an epoch's order is a function of (seed, epoch)
    assert not torch.equal(first, second)


def test_near_equal_parts_are_the_fewest_of_at_most_so_many_rows():
    from advfit.data.batches import near_equal_parts

    x, y = torch.arange(250), torch.arange(250) * 2
    parts = near_equal_parts(100, x, y)
    assert [len(a) for a, _ in parts] == [84, 83, 83]  # not 100 + 100 + 50
    assert all(torch.equal(b, a * 2) for a, b in parts)  # the tensors cut alike
    assert torch.equal(torch.cat([a for a, _ in parts]), x)
    assert [len(a) for (a,) in near_equal_parts(100, x[:100])] == [100]
    assert [len(a) for (a,) in near_equal_parts(100, x[:0])] == [0]


def test_unit_range_is_each_pixel_over_255_in_one_operation():
    """Every uint8 value maps to float32(v) / 255 exactly, in one operation (on a GPU one
    kernel of a training step's few dozen)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    x = torch.arange(256, dtype=torch.uint8).repeat(40).reshape(40, 1, 16, 16)
    made = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            made.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    with Watch():
        pixels = to_unit_range(x)
    assert made == ["div"]
    assert pixels.dtype == torch.float32
    expected = torch.tensor([v / 255 for v in range(256)], dtype=torch.float64).float()
    assert torch.equal(pixels.reshape(-1)[:256], expected)
    assert torch.equal(pixels, x.float().div_(255.0))
