"""Networks beside LeNet: ResNet-18 with the CIFAR stem, and any torchvision model by name,
through the whole pipeline."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from advfit.errors import ConfigError
from advfit.models import ResNet18, TorchvisionNet
from advfit.report.__main__ import main as report
from tests.conftest import run_cli


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


@pytest.mark.slow
def test_resnet18_trains_replays_and_reports_end_to_end(tmp_path, fmnist_dir):
    args = [
        "model=resnet18",
        "model.net.width=8",
        "regime=overfit",
        "trainer.max_epochs=3",
        "data.train_subset=3000",
        "data.test_subset=300",
        "attack=[fgsm,pgd]",
        "replay.n_images=50",
        "metrics.n_images=50",
        "metrics.clever.n_images=2",
        "metrics.clever.pool_factor=2",
        "logger=none",
        "task_name=resnet",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
    ]
    result = run_cli("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "multirun" / "resnet").iterdir()
    epochs = pd.read_csv(run / "epochs.csv")
    assert len(epochs) == 3 and epochs["test_acc"].max() > 0.5  # learned (chance: 0.1)
    assert epochs[["asr_fgsm", "asr_pgd", "clever"]].notna().all().all()
    assert sorted(pd.read_csv(run / "distances.csv")["attack"]) == ["fgsm", "pgd"]
    # A snapshot holds the batch-norm statistics the replay classifies with.
    assert "bn1.running_mean" in torch.load(run / "checkpoints" / "epoch_001.pt", weights_only=True)
    # evaluate.py rebuilds it from the run's own config (a target advfit trusts) ...
    replayed = run_cli(
        "evaluate.py", f"run_dir={run}", "wandb=false", "progress=false", cwd=tmp_path
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(run / "epochs.csv"), epochs)
    # ... and the report reads it like any run.
    assert report([str(tmp_path / "multirun" / "resnet"), "--wandb", "disabled"]) == 0
    md = (tmp_path / "multirun" / "resnet" / "report" / "report.md").read_text()
    assert "Finished runs: 1" in md and "advfit.models.ResNet18" in md
