"""Max pooling without a gradient: PyTorch's CPU kernel against advfit's quarter-view maximum.

Per input side: LeNet's two pools alone (the shapes of classifying 250 images) and LeNet
classifying 250 images with each pooling; the contenders interleaved in every round,
medians with their range, milliseconds. Both give the same numbers bit for bit.

    python -m benchmarks.pooling [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import torch
from torch import nn

from advfit.models.pooling import MaxPool2d
from benchmarks.common import cpu_args, cpu_parser, interleaved, ratios, seeded_lenet, spread


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


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=5)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--steps", type=int, default=20, help="passes per timing")
    args = cpu_args(parser, argv, "ms per pass")
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


if __name__ == "__main__":
    main()
