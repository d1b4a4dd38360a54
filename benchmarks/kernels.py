"""advfit's own CPU kernels against PyTorch's, kept while they are faster: both give the same
numbers (bit for bit for the pooling; to rounding for the convolution's input gradient).
1. Max pooling without a gradient: PyTorch's kernel against advfit's quarter-view maximum
   (``advfit.models.pooling``): LeNet's two pools alone (the shapes of classifying 250
   images) and LeNet classifying 250 images with each pooling.
2. LeNet's input gradient with the first convolution's input gradient from PyTorch's oneDNN
   kernel (``nn.Conv2d``) or from the column kernel (``advfit.models.conv.InputConv2d``):
   frozen random LeNets, one backward of the summed cross-entropy at the predicted classes.
The contenders interleaved in every round; milliseconds, median [range].
    python -m benchmarks.kernels [--threads 2] [--repeats 5] [--sides 32 96] [--channels 1 3]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advfit.data.batches import EVAL_BATCH_SIZE
from advfit.models import LeNet
from advfit.models.frozen import frozen
from advfit.models.pooling import MaxPool2d
from benchmarks.common import (
    cpu_args,
    cpu_parser,
    head_to_head,
    interleaved,
    ratios,
    seeded_lenet,
    spread,
)


def lenet(side: int, pool: type[nn.Module]) -> nn.Module:
    net = seeded_lenet(side)
    net.features[2], net.features[5] = pool(2), pool(2)
    return net


def timed(run, steps: int):
    def loop() -> None:
        with torch.no_grad():
            for _ in range(steps):
                run()

    return loop


def pooling(args) -> None:
    print("ratio kernel / advfit: the median of the per-round ratios")
    for side in args.sides:
        nets = {"kernel": lenet(side, nn.MaxPool2d), "advfit": lenet(side, MaxPool2d)}
        x = torch.rand(args.batch, 1, side, side)
        first = nets["kernel"].features[:2](nets["kernel"].pad(x)).detach()
        second = nets["kernel"].features[:5](nets["kernel"].pad(x)).detach()
        with torch.no_grad():
            assert torch.equal(nets["kernel"](x), nets["advfit"](x))
        pools = (("kernel", nn.MaxPool2d(2)), ("advfit", MaxPool2d(2)))
        cases = {
            f"first pool {tuple(first.shape)}": {
                n: timed(lambda p=p, t=first: p(t), args.steps) for n, p in pools
            },
            f"second pool {tuple(second.shape)}": {
                n: timed(lambda p=p, t=second: p(t), args.steps) for n, p in pools
            },
            f"LeNet classifying {args.batch} images": {
                n: timed(lambda net=net, t=x: net(t), args.steps) for n, net in nets.items()
            },
        }
        for name, contenders in cases.items():
            for run in contenders.values():
                run()  # warm-up
            times = interleaved(contenders, args.repeats)
            ms = {n: [t / args.steps * 1e3 for t in ts] for n, ts in times.items()}
            r = sorted(ratios(times, "kernel", "advfit"))
            print(
                f"{side}x{side} {name}: kernel {spread(ms['kernel'])}, advfit "
                f"{spread(ms['advfit'])}; ratio {r[len(r) // 2]:.2f}"
            )


#: images per batch at each side: the data's eval_batch_size (conf/data/*.yaml)
BATCH = {32: EVAL_BATCH_SIZE, 96: 50}


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


def first_conv(args) -> None:
    for side in args.sides:
        for channels in args.channels:
            compare(channels, side, args.repeats)


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=5)
    parser.add_argument("--batch", type=int, default=EVAL_BATCH_SIZE, help="pooling's batch")
    parser.add_argument("--steps", type=int, default=20, help="pooling's passes per timing")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 3])
    args = cpu_args(parser, argv, "ms")
    print("Max pooling without a gradient (ms per pass)")
    pooling(args)
    print("The first convolution's input gradient (ms a batch)")
    first_conv(args)


if __name__ == "__main__":
    main()
