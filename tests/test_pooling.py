"""advfit's max pooling: the values of PyTorch's kernel, faster where no gradient flows."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advfit.models import LeNet
from advfit.models.pooling import MaxPool2d


def _inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    relu = torch.relu(torch.randn(3, 6, 28, 28, generator=g))  # many tied zeros
    relu[:, :, :6] = 0.25  # tied positive values, as a conv's bias over a blank background
    odd = torch.randn(2, 3, 7, 9, generator=g)  # floor mode drops the last row and column
    special = torch.randn(1, 2, 6, 6, generator=g)
    special[0, 0, 0, 1] = float("nan")
    special[0, 1, 2, 2] = float("inf")
    special[0, 1, 4, 5] = -float("inf")
    unbatched = torch.randn(4, 10, 10, generator=g)
    # Every window of signed zeros (the maximum may be -0.0 where the kernel's is 0.0: the
    # same number, so nothing computed from it differs).
    signs = torch.tensor([[[float(b) for b in f"{i:04b}"] for i in range(16)]])
    zeros = torch.where(signs.bool(), 0.0, -0.0).view(1, 16, 2, 2)
    return [relu, odd, special, unbatched, relu.to(torch.float64), zeros]


@pytest.mark.parametrize(
    "x", _inputs(), ids=["relu-ties", "odd", "nan-inf", "unbatched", "f64", "signed-zeros"]
)
def test_max_pool_without_gradient_gives_the_kernels_values(x, monkeypatch):
    expected = F.max_pool2d(x, 2)
    # Without a gradient the kernel is not called at all.
    monkeypatch.setattr(F, "max_pool2d", lambda *a, **k: pytest.fail("kernel called"))
    with torch.no_grad():
        got = MaxPool2d(2)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)


def test_max_pool_with_gradient_runs_the_kernel():
    x = torch.relu(torch.randn(2, 6, 12, 12)).requires_grad_(True)
    g = torch.randn(2, 6, 6, 6)
    (ours,) = torch.autograd.grad(MaxPool2d(2)(x), x, g)
    (kernel,) = torch.autograd.grad(F.max_pool2d(x, 2), x, g)
    assert torch.equal(ours, kernel)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3},
        {"kernel_size": 2, "stride": 1},
        {"kernel_size": 2, "padding": 1},
        {"kernel_size": 2, "ceil_mode": True},
    ],
)
def test_other_windows_are_the_kernels(kwargs):
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert torch.equal(MaxPool2d(**kwargs)(x), nn.MaxPool2d(**kwargs)(x))


def test_lenet_classifies_as_with_torchs_pooling():
    torch.manual_seed(0)
    net = LeNet((1, 32, 32), 10).eval()
    plain = LeNet((1, 32, 32), 10).eval()
    plain.features[2] = nn.MaxPool2d(2)
    plain.features[5] = nn.MaxPool2d(2)
    # Same parameters under the same names: checkpoints load either way.
    plain.load_state_dict(net.state_dict())
    x = torch.rand(64, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), plain(x))
