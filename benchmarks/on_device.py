"""What a device spends on CLEVER's passes, on a training step and on a Carlini-Wagner
iteration, for choosing defaults per device (``metrics.clever.points_per_pass: auto``) and
finding where a GPU waits.

1. CLEVER of 10 images on an untrained LeNet (ART's settings: nb_batches 10, batch_size 50,
   pool_factor 10, R 5, L2), 32x32 and 96x96 grayscale, 100 points per pass against the
   whole 500-point pool, with deterministic algorithms on and off; and drawing those
   images' random points on the CPU (as CLEVER did before 2026-11-26) against on the device.
2. A plain PyTorch training step of LeNet at the paper's batch size 32 (Adam; on a GPU also
   fused Adam), the floor under Lightning's step on that device, and advfit's Classifier
   stepped by a Lightning Trainer on the same device (deterministic on, as advfit trains,
   and off; and with torchmetrics' per-update input checks on, as before 2026-11-26): the
   difference is Lightning's and the metrics' work per step.
3. One Carlini-Wagner iteration (advfit's attack layer over advertorch, frozen LeNet, 1
   binary-search step, no early abort) on 50 and 250 images, deterministic on and off.

Each figure is the fastest of ``--repeats`` interleaved rounds after one warm-up round.

    python -m benchmarks.on_device [--repeats 3]   # on the GPU when there is one
"""

from __future__ import annotations

import argparse
import logging
import warnings

import torch

from advfit.attacks import Attack
from advfit.metrics.clever import Clever, random_ball
from advfit.models import Classifier, LeNet
from benchmarks.common import interleaved, torchmetrics_classifier
from benchmarks.training_loop import lightning_epoch


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


def with_determinism(make, values, device: str, repeats: int) -> dict[tuple, float]:
    """Time ``make(value)()`` for each value with deterministic algorithms on and off; each
    key is (deterministic, value). Deterministic algorithms are left on, as advfit trains."""

    def contender(deterministic: bool, value):
        work = make(value)

        def run() -> None:
            torch.use_deterministic_algorithms(deterministic)
            work()

        return run

    contenders = {
        (deterministic, value): contender(deterministic, value)
        for deterministic in (True, False)
        for value in values
    }
    try:
        return fastest(contenders, device, repeats)
    finally:
        torch.use_deterministic_algorithms(True)


def clever_seconds(side: int, device: str, repeats: int, n: int = 10) -> None:
    net = LeNet((1, side, side), 10).to(device).eval()
    x = torch.rand(n, 1, side, side, device=device)

    def make(per_pass: int):
        clever = Clever(nb_batches=10, batch_size=50, pool_factor=10, points_per_pass=per_pass)
        return lambda: clever.evaluate(net, x)

    timed = with_determinism(make, (100, 500), device, repeats)
    for (deterministic, per_pass), seconds in timed.items():
        print(
            f"clever {side}x{side} deterministic={deterministic} "
            f"points_per_pass={per_pass}: {seconds:.2f} s / {n} images",
            flush=True,
        )
    # The random points of those images' pools, drawn where CLEVER draws them now (the
    # network's device) and on the CPU and copied (as before 2026-11-26).
    on_cpu, on_device = torch.Generator().manual_seed(0), torch.Generator(device).manual_seed(0)
    drawn = fastest(
        {
            "cpu": lambda: random_ball(n * 500, side * side, 5.0, 2, on_cpu).to(device),
            "device": lambda: random_ball(n * 500, side * side, 5.0, 2, on_device),
        },
        device,
        repeats,
    )
    print(
        f"clever {side}x{side} random points for {n} images: drawn on the CPU and copied "
        f"{drawn['cpu']:.3f} s, drawn on {device} {drawn['device']:.3f} s",
        flush=True,
    )


def step_seconds(side: int, device: str, repeats: int, k: int = 200) -> dict[str, float]:
    """Seconds per plain training step, by optimizer (Adam; on a GPU also fused Adam)."""
    xb = torch.rand(32, 1, side, side, device=device)
    yb = torch.randint(0, 10, (32,), device=device)

    def make(**adam):
        net = LeNet((1, side, side), 10).to(device)
        optimizer = torch.optim.Adam(net.parameters(), 1e-3, **adam)

        def steps() -> None:
            for _ in range(k):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(net(xb), yb).backward()
                optimizer.step()

        return steps

    contenders = {"Adam": make()}
    if device == "cuda":
        contenders["fused Adam"] = make(fused=True)
    return {name: t / k for name, t in fastest(contenders, device, repeats).items()}


def lightning_step_seconds(
    side: int, device: str, deterministic: bool, k: int = 200, classifier=Classifier
) -> float:
    """Seconds per step of ``classifier`` fitted by a Trainer on ``device``: the median of
    its second and third epochs of ``k`` steps each, the data already on the device."""
    x = torch.randint(0, 256, (32 * k, 1, side, side), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (32 * k,), device=device)
    accelerator = "gpu" if device == "cuda" else "cpu"
    return lightning_epoch((1, side, side), x, y, accelerator, deterministic, classifier) / k


def cw_iteration_seconds(side: int, device: str, repeats: int, iterations: int = 20) -> None:
    net = LeNet((1, side, side), 10).to(device).eval()

    def make(n: int):
        x = torch.rand(n, 1, side, side, device=device)
        y = torch.randint(0, 10, (n,), device=device)
        attack = Attack(
            "cw",
            "advertorch.attacks.CarliniWagnerL2Attack",
            batch_size=n,
            binary_search_steps=1,
            max_iterations=iterations,
            abort_early=False,
        )
        return lambda: attack(net, x, y)

    for (deterministic, n), seconds in with_determinism(make, (50, 250), device, repeats).items():
        print(
            f"cw {side}x{side} deterministic={deterministic} {n} images: "
            f"{seconds / iterations * 1000:.1f} ms / iteration",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sides", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--steps", type=int, default=200, help="training steps timed per epoch")
    parser.add_argument("--clever-images", type=int, default=10)
    parser.add_argument("--cw-iterations", type=int, default=20)
    args = parser.parse_args(argv)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}")
    for side in args.sides:
        clever_seconds(side, device, args.repeats, args.clever_images)
        for optimizer, per_step in step_seconds(side, device, args.repeats, args.steps).items():
            print(
                f"plain training step {side}x{side} batch 32 {optimizer}: {per_step * 1000:.2f} ms",
                flush=True,
            )
        for deterministic, classifier, checks in (
            (True, Classifier, "off"),
            (False, Classifier, "off"),
            (True, torchmetrics_classifier(checks=True), "on"),
        ):
            per_step = lightning_step_seconds(side, device, deterministic, args.steps, classifier)
            print(
                f"lightning training step {side}x{side} batch 32 deterministic={deterministic} "
                f"metric checks {checks}: {per_step * 1000:.2f} ms",
                flush=True,
            )
        cw_iteration_seconds(side, device, args.repeats, args.cw_iterations)


if __name__ == "__main__":
    main()
