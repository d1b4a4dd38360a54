"""What a device spends on CLEVER's passes and on one training step, for choosing defaults
per device (``metrics.clever.points_per_pass: auto``).

1. CLEVER of 10 images on an untrained LeNet (ART's settings: nb_batches 10, batch_size 50,
   pool_factor 10, R 5, L2), 32x32 and 96x96 grayscale, 100 points per pass against the
   whole 500-point pool, with deterministic algorithms on and off.
2. A plain PyTorch training step of LeNet at the paper's batch size 32 (Adam), the floor
   under Lightning's step on that device.

Each figure is the fastest of ``--repeats`` interleaved rounds after one warm-up round.

    python -m benchmarks.on_device [--repeats 3]   # on the GPU when there is one
"""

from __future__ import annotations

import argparse

import torch

from advfit.metrics.clever import Clever
from advfit.models import LeNet
from benchmarks.common import interleaved


def fastest(contenders: dict, device: str, repeats: int) -> dict[str, float]:
    """Each contender's fastest of ``repeats`` interleaved rounds after one warm-up round; a
    GPU's queue is drained before each clock stops."""

    def synced(run):
        def call() -> None:
            run()
            if device == "cuda":
                torch.cuda.synchronize()

        return call

    times = interleaved({k: synced(v) for k, v in contenders.items()}, repeats + 1)
    return {name: min(seconds[1:]) for name, seconds in times.items()}


def clever_seconds(side: int, device: str, repeats: int) -> None:
    net = LeNet((1, side, side), 10).to(device).eval()
    x = torch.rand(10, 1, side, side, device=device)

    def contender(deterministic: bool, per_pass: int):
        clever = Clever(nb_batches=10, batch_size=50, pool_factor=10, points_per_pass=per_pass)

        def run() -> None:
            torch.use_deterministic_algorithms(deterministic)
            clever.evaluate(net, x)

        return run

    contenders = {
        (deterministic, per_pass): contender(deterministic, per_pass)
        for deterministic in (True, False)
        for per_pass in (100, 500)
    }
    for (deterministic, per_pass), seconds in fastest(contenders, device, repeats).items():
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

    return fastest({"steps": steps}, device, repeats)["steps"] / k


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
