"""LeNet's weights in the default NCHW order against channels_last, on the CPU.

Per shape: a training step (batch 32, Adam), classifying 250 images, and input gradients of
100 images (CLEVER's passes on the CPU) and 500 (a CW batch); the contenders interleaved in
every round, medians with their range, milliseconds. advfit keeps NCHW (BENCHMARKS.md,
"Weights channels_last on the CPU": faster training, slower CLEVER passes).

    python -m benchmarks.layout [--threads 1] [--repeats 4]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
import torch.nn.functional as F

from advfit.models import LeNet
from benchmarks.common import spread

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def network(side: int, layout: str, trainable: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    net = LeNet((1, side, side), 10).to(memory_format=LAYOUTS[layout])
    net.train(trainable)
    for p in net.parameters():
        p.requires_grad_(trainable)
    return net


def train_step(side: int, layout: str, steps: int) -> float:
    net = network(side, layout, trainable=True)
    x, y = torch.rand(32, 1, side, side), torch.randint(0, 10, (32,))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for i in range(steps + 3):
        if i == 3:
            started = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return (time.perf_counter() - started) / steps


def classify(side: int, layout: str, steps: int, batch: int = 250) -> float:
    net, x = network(side, layout, trainable=False), torch.rand(batch, 1, side, side)
    with torch.no_grad():
        for i in range(steps + 1):
            if i == 1:
                started = time.perf_counter()
            net(x)
    return (time.perf_counter() - started) / steps


def input_gradient(side: int, layout: str, steps: int, batch: int) -> float:
    net, x = network(side, layout, trainable=False), torch.rand(batch, 1, side, side)
    for i in range(steps + 1):
        if i == 1:
            started = time.perf_counter()
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(net(xi)[:, 0].sum(), xi)
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--sides", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s), torch {torch.__version__}; ms, median [range]")
    for side in args.sides:
        n = max(1, round(args.scale * (100 if side <= 32 else 25)))
        cases = {
            "training step, batch 32": partial(train_step, side, steps=n),
            "classifying 250 images": partial(classify, side, steps=n),
            "input gradients of 100 images": partial(input_gradient, side, steps=n, batch=100),
            "input gradients of 500 images": partial(
                input_gradient, side, steps=max(1, n // 5), batch=500
            ),
        }
        for name, case in cases.items():
            times = {layout: [] for layout in LAYOUTS}
            for _ in range(args.repeats):
                for layout in LAYOUTS:
                    times[layout].append(case(layout) * 1e3)
            ratio = sorted(
                a / b for a, b in zip(times["nchw"], times["channels_last"], strict=True)
            )
            print(
                f"{side}x{side} {name}: nchw {spread(times['nchw'])}, channels_last "
                f"{spread(times['channels_last'])}; nchw / channels_last median "
                f"{ratio[len(ratio) // 2]:.2f}"
            )


if __name__ == "__main__":
    main()
