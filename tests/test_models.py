"""Networks beside LeNet: ResNet-18 with the CIFAR stem, and any torchvision model by name,
through the whole pipeline."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

from advfit.errors import ConfigError
from advfit.models import ResNet18, TorchvisionNet
from advfit.report.__main__ import main as report
from advfit.rundir import RunDir
from advfit.tasks import evaluate, train
from tests.conftest import compose_cfg, evaluate_cfg


def test_resnet18_has_the_cifar_stem_and_its_published_size():
    net = ResNet18((3, 32, 32), 10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    # The CIFAR ResNet-18's 11,173,962 parameters (torchvision's ImageNet stem: 11,689,512).
    assert sum(p.numel() for p in net.parameters()) == 11_173_962
    narrow = ResNet18((1, 28, 28), 7, width=8)
    assert narrow.conv1.in_channels == 1 and narrow.fc.out_features == 7
    assert narrow.layer4[0].conv1.out_channels == 64  # 8 x the width in the last stage
    assert narrow(torch.rand(3, 1, 28, 28)).shape == (3, 7)


def test_a_model_that_cannot_take_the_data_is_refused_with_its_name_and_the_shape():
    with pytest.raises(ConfigError, match=r"model resnet18 cannot take .* shape \(1, 28, 28\)"):
        TorchvisionNet((1, 28, 28), 10, name="resnet18")
    with pytest.raises(ConfigError, match=r"model.net.name='lenet7' is not a torchvision"):
        TorchvisionNet((3, 32, 32), 10, name="lenet7")
    with pytest.raises(ConfigError, match=r"model.net.width=0 is invalid"):
        ResNet18((3, 32, 32), 10, width=0)
    assert TorchvisionNet((3, 32, 32), 10, name="mobilenet_v3_small")(
        torch.rand(2, 3, 32, 32)
    ).shape == (2, 10)


def write_cifar10_from_fashion_mnist(root: Path, fmnist_dir: Path, monkeypatch) -> None:
    """CIFAR-10's on-disk format (its python pickles) holding real images a network can learn:
    Fashion-MNIST's, padded to 32x32 and repeated in 3 channels (5 x 240 training, 300 test).
    torchvision checks each file's MD5; the test points it at the files written here."""
    from torchvision.datasets import CIFAR10

    from advfit.data import FashionMNISTDataModule

    source = FashionMNISTDataModule(data_dir=str(fmnist_dir), download=False)
    source.setup()
    x = torch.nn.functional.pad(source.x_train[:1500], (2, 2, 2, 2)).repeat(1, 3, 1, 1)
    y = source.y_train[:1500]
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    parts = {f"data_batch_{i}": slice(240 * (i - 1), 240 * i) for i in range(1, 6)}
    parts["test_batch"] = slice(1200, 1500)
    for name, part in parts.items():
        batch = {"data": x[part].reshape(-1, 3072).numpy(), "labels": y[part].tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(source.class_names)}))

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(n)] for n in list(parts)[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5("batches.meta")})


@pytest.mark.slow
def test_resnet_cifar10_tiny_runs_the_protocol_replays_and_reports(
    tmp_path, fmnist_dir, monkeypatch
):
    """experiment=resnet_cifar10 at toy size (its documented CPU variant) on files in CIFAR-10's
    real format: ResNet-18 (width 8) on RGB 32x32, FGSM and PGD at 8/255, CW, the metrics."""
    write_cifar10_from_fashion_mnist(tmp_path / "data", fmnist_dir, monkeypatch)
    cfg = compose_cfg(
        ["experiment=resnet_cifar10_tiny", "regime=overfit", "fold=0", "logger=none"],
        tmp_path,
        data_dir=tmp_path / "data",
    )
    assert cfg.model.net.width == 8 and cfg.attack.pgd.eps == pytest.approx(8 / 255)
    train(cfg)
    run = RunDir(cfg.paths.output_dir)
    epochs = run.read_epochs()
    assert len(epochs) == 3 and epochs["test_acc"].max() > 0.3  # learned (chance: 0.1)
    replayed = ["asr_fgsm", "asr_pgd", "asr_cw", "clever", "robust_accuracy"]
    assert epochs[replayed].notna().all().all()
    distances = pd.read_csv(run.distances_csv).set_index("attack")
    assert sorted(distances.index) == ["cw", "fgsm", "pgd"]
    assert distances.loc["pgd", "linf_mean"] <= 8 / 255 + 1e-6
    summary = run.read_summary()
    assert sorted(summary["data_sha256"]) == [
        *(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
    ]
    # The snapshots hold the batch-norm statistics the replay classifies with.
    assert "bn1.running_mean" in torch.load(run.snapshot(1), weights_only=True)
    # evaluate.py rebuilds the network from the run's own config and reproduces its numbers.
    evaluate(evaluate_cfg(run.root))
    pd.testing.assert_frame_equal(run.read_epochs(), epochs)
    assert report([str(run.root.parent), "--wandb", "disabled"]) == 0
    md = (run.root.parent / "report" / "report.md").read_text()
    assert "Finished runs: 1" in md and "advfit.models.ResNet18" in md
