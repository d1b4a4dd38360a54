"""Training steps of several processes sharing one device: where ten jobs' training goes.

``make paper`` runs ten jobs at once on a 16-core GPU machine, and there a CIFAR-10-sized
run is three quarters training at batch size 32. Each of ``--jobs`` processes, started
together, steps LeNet (1x32x32, batch 32, data already on the device) and reports its
milliseconds per step; the table gives their median and range, and the steps a second of
all of them together. The contenders run one after the other:

- ``plain``: zero_grad, forward, backward, Adam (fused on a GPU): the fewest kernels a step;
- ``graph`` (CUDA only): that whole step captured once as a CUDA graph and replayed, one
  launch a step instead of some forty;
- ``lightning``: advfit's Classifier fitted by a Lightning Trainer, deterministic as advfit
  trains, its Adam built as the config builds it (fused on a GPU);
- ``torchmetrics``: the same with the epoch metrics of torchmetrics' ``SumMetric`` and
  ``MulticlassAccuracy`` (before 2026-11-26: 18 operations a step for the metrics against 7).

Alone, ``graph`` shows what launching costs; with ten at once, whether the GPU's time
slices (one process's kernels at a time) or the launches are the limit.

    python -m benchmarks.gpu_sharing [--jobs 10] [--steps 2000]
        [--modes plain,graph,lightning,torchmetrics]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
MODES = ("plain", "graph", "lightning", "torchmetrics")


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _plain_or_graph(mode: str, steps: int, device: str) -> float:
    """Seconds per step of the plain step, or of its CUDA graph (``mode="graph"``)."""
    from advfit.models import LeNet

    torch.manual_seed(0)
    x = torch.rand(4096, 1, 32, 32, device=device)
    y = torch.randint(0, 10, (4096,), device=device)
    net = LeNet((1, 32, 32), 10).to(device)
    if mode == "plain":
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=device == "cuda")

        def step(i: int) -> None:
            b = i * 32 % (len(x) - 32)
            optimizer.zero_grad()
            F.cross_entropy(net(x[b : b + 32]), y[b : b + 32]).backward()
            optimizer.step()

    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, capturable=True)
        xs, ys = x[:32].clone(), y[:32].clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture needs
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(net(xs), ys).backward()
                optimizer.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            F.cross_entropy(net(xs), ys).backward()
            optimizer.step()

        def step(i: int) -> None:
            b = i * 32 % (len(x) - 32)
            xs.copy_(x[b : b + 32])
            ys.copy_(y[b : b + 32])
            graph.replay()

    for i in range(min(50, steps)):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def _configured(classifier):
    """``classifier`` built with Adam as the config gives it (a partial: fused on a GPU)."""

    def build(net, optimizer):
        return classifier(net, functools.partial(torch.optim.Adam, lr=1e-3))

    return build


def _lightning(steps: int, device: str, classifier) -> float:
    """Seconds per step of ``classifier`` under a Trainer (an epoch of ``steps`` steps)."""
    import logging
    import warnings

    from benchmarks.training_loop import lightning_epoch

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    x = torch.randint(0, 256, (32 * steps, 1, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (32 * steps,), device=device)
    accelerator = "gpu" if device == "cuda" else "cpu"
    seconds = lightning_epoch((1, 32, 32), x, y, accelerator, True, _configured(classifier))
    return seconds / steps


def worker(mode: str, steps: int) -> None:
    torch.set_num_threads(1)
    device = _device()
    if mode == "lightning":
        from advfit.models import Classifier

        per_step = _lightning(steps, device, Classifier)
    elif mode == "torchmetrics":
        from benchmarks.common import torchmetrics_classifier

        per_step = _lightning(steps, device, torchmetrics_classifier(checks=False))
    else:
        per_step = _plain_or_graph(mode, steps, device)
    print(f"{per_step * 1000:.4f}", flush=True)


def at_once(mode: str, jobs: int, steps: int) -> tuple[list[float], float]:
    """Milliseconds per step of each of ``jobs`` workers started together; the wall seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = [sys.executable, "-m", "benchmarks.gpu_sharing", "--worker", mode]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*command, "--steps", str(steps)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(jobs)
    ]
    results = [p.communicate() for p in procs]
    wall = time.perf_counter() - started
    for p, (_, err) in zip(procs, results, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"a {mode} worker failed (exit {p.returncode}):\n{err[-2000:]}")
    return [float(out.strip().splitlines()[-1]) for out, _ in results], wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="processes at once")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per process")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    device = _device()
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        parser.error(f"--modes={args.modes!r}: accepted are {', '.join(MODES)} (comma-separated)")
    if "graph" in modes and device != "cuda":
        parser.error("--modes: graph captures a CUDA graph and needs a CUDA GPU; drop it here")
    if args.jobs < 1 or args.steps < 1:
        parser.error(f"--jobs={args.jobs} --steps={args.steps}: both must be >= 1")
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(
        f"{name}, {os.cpu_count()} CPU cores, torch {torch.__version__}; 1x32x32, batch 32, "
        f"{args.steps} steps per process, 1 thread each"
    )
    print("\n| mode | processes | ms a step, median [range] | steps a second, all | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for mode in modes:
        for jobs in sorted({1, args.jobs}):
            ms, wall = at_once(mode, jobs, args.steps)
            total = sum(1000.0 / m for m in ms)
            print(
                f"| {mode} | {jobs} | {statistics.median(ms):.3f} [{min(ms):.3f}-{max(ms):.3f}] "
                f"| {total:,.0f} | {wall:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
