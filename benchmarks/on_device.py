"""What a device spends on CLEVER's passes and on one training step, for choosing defaults
per device (``metrics.clever.points_per_pass: auto``).

1. CLEVER of 10 images on an untrained LeNet (ART's settings: nb_batches 10, batch_size 50,
   pool_factor 10, R 5, L2), 32x32 and 96x96 grayscale, 100 points per pass against the
   whole 500-point pool, with deterministic algorithms on and off.
2. A plain PyTorch training step of LeNet at the paper's batch size 32 (Adam), the floor
   under Lightning's step on that device.

Each figure is the fastest of ``--repeats`` timed passes after one warm-up pass.

    python -m benchmarks.on_device [--repeats 3]   # on the GPU when there is one
"""

from __future__ import annotations

import argparse
import time

import torch

from advfit.metrics.clever import Clever
from advfit.models import LeNet


def timed(fn, device: str, repeats: int) -> float:
    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    best = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        best.append(time.perf_counter() - started)
    return min(best)


def clever_seconds(side: int, device: str, repeats: int) -> None:
    net = LeNet((1, side, side), 10).to(device).eval()
    x = torch.rand(10, 1, side, side, device=device)
    for deterministic in (True, False):
        torch.use_deterministic_algorithms(deterministic)
        for per_pass in (100, 500):
            clever = Clever(nb_batches=10, batch_size=50, pool_factor=10, points_per_pass=per_pass)
            seconds = timed(lambda c=clever: c.evaluate(net, x), device, repeats)
            print(
                f"clever {side}x{side} deterministic={deterministic} "
                f"points_per_pass={per_pass}: {seconds:.2f} s / 10 images",
                flush=True,
            )
    torch.use_deterministic_algorithms(True)


def step_seconds(side: int, device: str, repeats: int, k: int = 200) -> float:
    net = LeNet((1, side, side), 10).to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    xb = torch.rand(32, 1, side, side, device=device)
    yb = torch.randint(0, 10, (32,), device=device)

    def steps() -> None:
        for _ in range(k):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            optimizer.step()

    return timed(steps, device, repeats) / k


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}")
    for side in (32, 96):
        clever_seconds(side, device, args.repeats)
        per_step = step_seconds(side, device, args.repeats)
        print(f"plain training step {side}x{side} batch 32: {per_step * 1000:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
