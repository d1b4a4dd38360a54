"""The extension points the README documents, used from a test file only (nothing under src/)."""

import pytest
import torch
from hydra.utils import instantiate

from advfit.data import to_unit_range
from advfit.models import LeNet
from advfit.report.__main__ import main as report
from advfit.report.figures import FIGURES, Figure
from advfit.rundir import RunDir
from advfit.tasks import train
from tests.conftest import TINY_RUN, compose_cfg


def mean_top_logit(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """A toy per-snapshot metric: the mean of each image's largest logit."""
    with torch.no_grad():
        return net(x).amax(dim=1).mean().item()


def test_a_new_metric_is_one_function_and_one_config_entry(tmp_path, fmnist_dir, monkeypatch):
    cfg = compose_cfg(
        [
            *TINY_RUN,
            f"+metrics.mean_top_logit._target_={__name__}.mean_top_logit",
            "+metrics.mean_top_logit._partial_=true",
        ],
        tmp_path / "sweep",
        data_dir=fmnist_dir,
    )
    train(cfg)
    run = RunDir(cfg.paths.output_dir)
    epochs = run.read_epochs()
    assert list(epochs.columns[-3:]) == [
        "loss_sensitivity",
        "empirical_robustness",
        "mean_top_logit",
    ]
    # The column holds the metric of each snapshot, recomputed here from the snapshot itself.
    data = instantiate(cfg.data)
    data.setup()
    net = LeNet((1, 28, 28), 10).eval()
    for epoch in (1, 2):
        net.load_state_dict(torch.load(run.snapshot(epoch), weights_only=True))
        expected = mean_top_logit(net, to_unit_range(data.x_test[:50]), None)
        assert epochs.loc[epoch - 1, "mean_top_logit"] == pytest.approx(expected, rel=1e-6)

    figure = Figure("mean_top_logit", "Mean top logit", {"mean_top_logit": "top logit"}, "logit")
    monkeypatch.setitem(FIGURES, figure.name, figure)
    out = tmp_path / "report"
    assert report([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    assert (out / "mean_top_logit.png").stat().st_size > 5000
    assert "![Mean top logit](mean_top_logit.png)" in (out / "report.md").read_text()
