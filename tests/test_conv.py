"""LeNet's first convolution: PyTorch's values, its input gradient from the column kernel."""

import pytest
import torch
from torch import nn

from advfit.models import LeNet
from advfit.models.conv import InputConv2d
from advfit.models.frozen import frozen


def _pair(channels: int, **kwargs) -> tuple[nn.Conv2d, InputConv2d]:
    torch.manual_seed(0)
    plain = nn.Conv2d(channels, 6, 5, **kwargs)
    ours = InputConv2d(channels, 6, 5, **kwargs)
    ours.load_state_dict(plain.state_dict())
    return plain, ours


def _input_gradient(conv: nn.Module, x: torch.Tensor, cotangent: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = conv(x)
    (grad,) = torch.autograd.grad(out, x, cotangent)
    return out, grad


@pytest.mark.parametrize(
    ("channels", "kwargs", "side", "dtype"),
    [
        (1, {}, 32, torch.float32),
        (3, {}, 96, torch.float32),
        (1, {"stride": 2, "padding": 2}, 31, torch.float32),
        (3, {"bias": False}, 28, torch.float64),
    ],
)
def test_frozen_on_the_cpu_the_input_gradient_is_pytorchs_up_to_rounding(
    channels, kwargs, side, dtype
):
    plain, ours = _pair(channels, **kwargs)
    plain, ours = plain.to(dtype), ours.to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, channels, side, side, generator=g, dtype=dtype)
    with torch.no_grad():
        shape = plain(x).shape
    cotangent = torch.randn(shape, generator=g, dtype=dtype)
    with frozen(plain), frozen(ours):
        expected_out, expected = _input_gradient(plain, x, cotangent)
        out, grad = _input_gradient(ours, x, cotangent)
        assert type(out.grad_fn).__name__ == "_InputGradientByColumnsBackward"
    assert torch.equal(out, expected_out)  # the forward pass is PyTorch's
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(grad, expected, rtol=tolerance, atol=tolerance * grad.abs().max())
    # Each image's gradient does not depend on the batch it is in.
    with frozen(ours):
        _, alone = _input_gradient(ours, x[3:4], cotangent[3:4])
    assert torch.equal(alone[0], grad[3])


def test_training_and_forward_passes_keep_pytorchs_kernels():
    plain, ours = _pair(1)
    x = torch.rand(8, 1, 32, 32)
    # Training: weights need gradients, the input does not.
    out = ours(x)
    assert type(out.grad_fn).__name__ == "ConvolutionBackward0"
    out.square().sum().backward()
    plain(x).square().sum().backward()
    assert torch.equal(ours.weight.grad, plain.weight.grad)
    assert torch.equal(ours.bias.grad, plain.bias.grad)
    # An input and weights both needing gradients: PyTorch's backward for both.
    with torch.enable_grad():
        both = ours(x.clone().requires_grad_(True))
    assert type(both.grad_fn).__name__ == "ConvolutionBackward0"
    with torch.no_grad():
        assert torch.equal(ours(x), plain(x))


def test_lenet_uses_it_first_and_keeps_its_state_dict():
    torch.manual_seed(0)
    net = LeNet((1, 28, 28), 10)
    assert type(net.features[0]) is InputConv2d
    assert type(net.features[3]) is nn.Conv2d
    assert "features.0.weight" in net.state_dict() and "features.0.bias" in net.state_dict()


def test_a_channels_last_input_gets_the_same_gradient():
    plain, ours = _pair(3)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 3, 20, 20, generator=g).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        cotangent = torch.randn(plain(x).shape, generator=g)
    with frozen(plain), frozen(ours):
        _, expected = _input_gradient(plain, x, cotangent.contiguous())
        _, grad = _input_gradient(ours, x, cotangent.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())
