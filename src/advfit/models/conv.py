"""LeNet's first convolution, with a faster gradient for its input on the CPU.

Attacks and robustness scores differentiate a frozen network with respect to its input. For
the first convolution (one or three input channels, 5x5 kernels) PyTorch's CPU kernel for
that gradient (oneDNN's backward-data) is slow: several times the layer's forward pass.
PyTorch's own column kernel (``_slow_conv2d_backward``: one matrix product per image, then
col2im) gives the same gradient up to float rounding (relative 1e-7) in a fraction of the
time, and each image's gradient is the same bit for bit in any batch (BENCHMARKS.md,
"advfit's CPU kernels").

Only where that gradient is all that is asked for (CPU, input requiring a gradient, frozen
weights): training and every forward pass run PyTorch's kernels unchanged, and the layer's
parameters and state dict are those of ``nn.Conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _InputGradientByColumns(torch.autograd.Function):
    """``F.conv2d`` forward; backward for the input only, through the column kernel."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        # The kernel is given contiguous NCHW tensors, the layout it was checked in.
        (grad_input, _, _) = torch.ops.aten._slow_conv2d_backward(
            grad_output.contiguous(),
            x.contiguous(),
            weight,
            list(weight.shape[-2:]),
            list(ctx.stride),
            list(ctx.padding),
            [True, False, False],
        )
        return grad_input, None, None, None, None


class InputConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input gradient, on a frozen layer on the CPU, comes from the
    column kernel (see the module's docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.requires_grad
            and x.dim() == 4
            and x.device.type == "cpu"
            and not self.weight.requires_grad
            and (self.bias is None or not self.bias.requires_grad)
            and torch.is_grad_enabled()
            and self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
        ):
            return _InputGradientByColumns.apply(
                x, self.weight, self.bias, self.stride, self.padding
            )
        return super().forward(x)
