"""Today's networks beside LeNet: torchvision's ResNet-18 with the CIFAR stem, and any
torchvision classification model by name.

Both take pixels in [0, 1] of shape ``(N, C, H, W)`` with ``input_shape`` ``(C, H, W)`` and
``num_classes`` from the data set, as LeNet does; a model that cannot take the data's shape is
refused before training with its name and the shape.
"""

from __future__ import annotations

import torch
import torchvision.models
from torch import nn
from torchvision.models import get_model, list_models
from torchvision.models.resnet import BasicBlock, ResNet

from advfit.errors import ConfigError


def _check_forward(net: nn.Module, name: str, input_shape: tuple[int, int, int]) -> None:
    """One forward pass on a zero batch of the data's shape (eval mode, no gradients)."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(2, *input_shape))
    except Exception as err:
        raise ConfigError(
            f"model {name} cannot take the data's images of shape {tuple(input_shape)}: {err}"
        ) from None
    finally:
        net.train(was_training)


class ResNet18(ResNet):
    """torchvision's ResNet-18 with the usual CIFAR stem: a 3x3 first convolution with stride
    1 and no max-pool, so 32x32 (and 28x28, 96x96) inputs keep their resolution into the
    first stage; any channel count; ``width`` the first stage's channels (64 as published;
    narrower for CPU tests), the later stages 2, 4 and 8 times it."""

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, width: int = 64
    ) -> None:
        if int(width) < 1:
            raise ConfigError(f"model.net.width={width} is invalid: an integer >= 1")
        self._width = int(width)
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=int(num_classes))
        channels = int(input_shape[0])
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.conv1 = nn.Conv2d(channels, self._width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self._width)
        self.maxpool = nn.Identity()
        self.fc = nn.Linear(8 * self._width, int(num_classes))
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        _check_forward(self, "resnet18", self.input_shape)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage: it starts from the stem's width
            self.inplanes = self._width
        return super()._make_layer(block, planes * self._width // 64, blocks, stride, dilate)


class TorchvisionNet(nn.Module):
    """Any torchvision classification model by name (``torchvision.models.list_models``),
    untrained, with ``num_classes`` outputs and ``options`` passed to its builder. Its first
    layer must take the data's channel count (torchvision's take 3: RGB data)."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        name: str = "resnet18",
        **options,
    ) -> None:
        super().__init__()
        known = list_models(module=torchvision.models)
        if name not in known:
            raise ConfigError(
                f"model.net.name={name!r} is not a torchvision classification model; e.g. "
                f"{', '.join(sorted(known)[:8])} ... (torchvision.models.list_models())"
            )
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.net = get_model(name, weights=None, num_classes=int(num_classes), **options)
        _check_forward(self.net, name, self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
