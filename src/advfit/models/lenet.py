"""LeNet-5 (LeCun et al. 1998), adapted to the input's channels and size."""

from __future__ import annotations

import torch
from torch import nn

from advfit.errors import ConfigError
from advfit.models.conv import InputConv2d
from advfit.models.pooling import MaxPool2d

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
#: How the weights start: Keras's defaults (Glorot-uniform kernels, zero biases: the paper's
#: framework) or PyTorch's (Kaiming-uniform with a = sqrt(5), uniform biases).
INITS = ("keras", "torch")
POOLS = {"max": MaxPool2d, "avg": nn.AvgPool2d}


class LeNet(nn.Module):
    """conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> FC 120 -> FC 84 -> FC classes.

    Takes pixels in [0, 1] of shape ``(N, C, H, W)``; ``input_shape`` is ``(C, H, W)``. The
    first fully connected layer is sized from the input, so 1x28x28 up to 3x96x96 work.
    Inputs smaller than 32x32 are zero-padded to 32x32 inside the network, as LeCun did
    for MNIST, so the feature maps keep the paper's 5x5 size at the last pool.

    Args:
        input_shape: (channels, height, width).
        num_classes: number of output logits.
        activation: ``relu`` (the usual Keras rendition, assumed for the paper) or ``tanh``.
        pool: ``max`` (Keras rendition) or ``avg`` (closer to the original subsampling).
        init: ``keras`` (Glorot-uniform kernels, zero biases) or ``torch`` (PyTorch's).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        activation: str = "relu",
        pool: str = "max",
        init: str = "torch",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ConfigError(
                f"model.net.init={init!r} is invalid: accepted are {', '.join(INITS)}"
            )
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"model.net.activation={activation!r} is invalid: "
                f"accepted are {', '.join(sorted(ACTIVATIONS))}"
            )
        if pool not in POOLS:
            raise ConfigError(
                f"model.net.pool={pool!r} is invalid: accepted are {', '.join(sorted(POOLS))}"
            )
        channels, height, width = (int(v) for v in input_shape)
        self.input_shape = (channels, height, width)
        self.num_classes = int(num_classes)
        pad_h, pad_w = max(0, 32 - height), max(0, 32 - width)
        act, pooling = ACTIVATIONS[activation], POOLS[pool]
        self.pad = nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        self.features = nn.Sequential(
            InputConv2d(channels, 6, kernel_size=5),
            act(),
            pooling(2),
            nn.Conv2d(6, 16, kernel_size=5),
            act(),
            pooling(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(self.pad(torch.zeros(1, channels, height, width))).shape[1]
        self.classifier = nn.Sequential(
            nn.Linear(flat, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, num_classes),
        )
        if init == "keras":
            for layer in self.modules():
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.pad(x)))
