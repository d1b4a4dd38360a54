"""Max pooling that classifies faster on the CPU, with the values of ``nn.MaxPool2d``.

PyTorch's CPU kernel for max pooling in the default (NCHW) layout is slow on small
windows: on LeNet's first pool it takes many times as long as a ReLU over the same tensor,
and LeNet's two pools are a large share of its forward pass on 32x32 inputs. For LeNet's
windows (2x2, stride 2) the maximum of the four strided quarter views (``x[..., 0::2,
0::2]`` and so on) is the same number, computed several times faster, and LeNet classifies
faster with it (BENCHMARKS.md, "advfit's CPU kernels"). The
maximum is exact: every output equals the kernel's, NaN included (where a window's maximum
is a zero, its sign may differ: -0.0 and 0.0 are the same number, so nothing computed from
them differs).

Only where no gradient flows through the pool: the backward pass needs the kernel's
indices (the first maximum of each window), and computing them from the quarter views was
not faster than the kernel. Training, attacks and CLEVER's passes therefore run PyTorch's
kernel; classifying snapshots, validation and the forward passes of the metrics run this.
On other devices, other windows or with ``return_indices`` it is ``nn.MaxPool2d``.
"""

from __future__ import annotations

import torch
from torch import nn


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def quarter_max(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling with stride 2 (floor mode: an odd last row or column is dropped)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    top = torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
    bottom = torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2])
    return torch.maximum(top, bottom)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (same arguments, same outputs) with the quarter-view maximum for
    2x2 windows of stride 2 on CPU tensors that need no gradient."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        stride = self.stride if self.stride is not None else self.kernel_size
        self._quarters = (
            _pair(self.kernel_size) == (2, 2)
            and _pair(stride) == (2, 2)
            and _pair(self.padding) == (0, 0)
            and _pair(self.dilation) == (1, 1)
            and not self.return_indices
            and not self.ceil_mode
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self._quarters
            and x.device.type == "cpu"
            and x.dim() in (3, 4)
            and not (x.requires_grad and torch.is_grad_enabled())
        ):
            return quarter_max(x)
        return super().forward(x)
