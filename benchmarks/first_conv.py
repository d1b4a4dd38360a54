"""LeNet's input gradient on the CPU with its first convolution's input gradient from
PyTorch's oneDNN kernel (``nn.Conv2d``) or from the column kernel (advfit's ``InputConv2d``):
frozen random LeNets, one backward of the summed cross-entropy at the predicted classes, the
two interleaved in every round; milliseconds a batch, median [range], and the relative
difference of the gradients.

    python -m benchmarks.first_conv [--threads 2] [--repeats 5] [--sides 32 96] [--channels 1 3]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advfit.models import LeNet
from advfit.models.frozen import frozen
from benchmarks.common import cpu_args, cpu_parser, head_to_head

#: images per batch at each side: the data's eval_batch_size (conf/data/*.yaml)
BATCH = {32: 250, 96: 100}


def with_plain_first_conv(net: LeNet) -> LeNet:
    """The same network with PyTorch's ``nn.Conv2d`` as its first convolution."""
    first = net.features[0]
    plain = nn.Conv2d(first.in_channels, first.out_channels, first.kernel_size)
    plain.load_state_dict(first.state_dict())
    net.features[0] = plain
    return net


def input_gradient(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        out = net(x)
        (grad,) = torch.autograd.grad(F.cross_entropy(out, out.argmax(1), reduction="sum"), x)
    return grad


def compare(channels: int, side: int, repeats: int) -> None:
    torch.manual_seed(0)
    columns = LeNet((channels, side, side), 10).eval()
    onednn = with_plain_first_conv(LeNet((channels, side, side), 10).eval())
    onednn.load_state_dict(columns.state_dict())
    n = BATCH.get(side, 250)
    x = torch.rand(n, channels, side, side, generator=torch.Generator().manual_seed(1))
    with frozen(columns), frozen(onednn):
        a, b = input_gradient(onednn, x), input_gradient(columns, x)
        result = head_to_head(
            {
                "oneDNN": lambda: input_gradient(onednn, x),
                "columns": lambda: input_gradient(columns, x),
            },
            repeats,
            scale=1000,
            unit=" ms",
        )
    print(
        f"{channels}x{side}x{side}, {n} images: {result}; "
        f"relative difference {((a - b).norm() / a.norm()).item():.1e}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=5)
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 3])
    args = cpu_args(parser, argv, "ms a batch")
    for side in args.sides:
        for channels in args.channels:
            compare(channels, side, args.repeats)


if __name__ == "__main__":
    main()
