import pytest
import torch

from advfit.models import LeNet


@pytest.mark.parametrize(
    "shape",
    [(1, 28, 28), (1, 32, 32), (3, 32, 32), (1, 96, 96), (3, 96, 96), (2, 40, 50), (4, 20, 24)],
    ids=["mnist", "cifar10-gray", "cifar10", "stl10-gray", "stl10", "custom", "custom-small"],
)
def test_lenet_output_shape(shape):
    net = LeNet(shape, num_classes=7)
    out = net(torch.rand(5, *shape))
    assert out.shape == (5, 7)
    assert torch.isfinite(out).all()


def test_lenet_keeps_lecun_layer_sizes():
    net = LeNet((1, 32, 32), num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [6, 16]
    assert [c.kernel_size for c in convs] == [(5, 5), (5, 5)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]


def test_lenet_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation='gelu'"):
        LeNet((1, 28, 28), 10, activation="gelu")


def test_the_classifiers_epoch_loss_is_nan_when_a_step_loss_is_nan():
    """The mean loss keeps a NaN step (nan_strategy="disable") instead of dropping it from the
    mean with a warning, and the accuracy takes the labels unchecked."""
    from advfit.models import Classifier

    torch.manual_seed(0)
    model = Classifier(LeNet((1, 28, 28), 10), lambda params: torch.optim.SGD(params, lr=0.1))
    y = torch.arange(8) % 10
    model._step((torch.rand(8, 1, 28, 28), y), "train")
    finite = model.train_metrics["loss"].compute()
    assert torch.isfinite(finite)
    model._step((torch.full((8, 1, 28, 28), float("nan")), y), "train")
    values = model.train_metrics.compute()
    assert torch.isnan(values["loss"])
    assert 0.0 <= values["acc"].item() <= 1.0
