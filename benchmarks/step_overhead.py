"""The host's work in a training step: what a GPU's step is made of when the network is small.

On a GPU, LeNet's arithmetic at batch size 32 is a fraction of a millisecond and the step's
time is the host's: Python, Lightning's hooks and one dispatch per operation (BENCHMARKS.md,
"On a GPU again": advfit's Lightning step took about twice the plain step there). On a
CPU that work hides behind LeNet's convolutions, so here the network is one linear layer on
1x4x4 inputs, whose arithmetic is negligible, and each contender fits one epoch of ``--steps``
batches of 32 (after one warm-up round; the Trainer's set-up not counted), interleaved over
``--repeats`` rounds:

- ``plain``: zero_grad, forward, cross-entropy, backward, Adam, over the same batches;
- ``lightning``: advfit's Classifier fitted by a Lightning Trainer, deterministic as advfit
  trains (``EpochTotals`` for the epoch's loss and accuracy);
- ``torchmetrics``: the same with torchmetrics' ``SumMetric`` and ``MulticlassAccuracy`` (the
  Classifier's metrics before 2026-11-26).

    python -m benchmarks.step_overhead [--steps 2000] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from advfit.data import TensorBatches
from advfit.models import Classifier
from benchmarks.common import ratio_spread, ratios, torchmetrics_classifier
from benchmarks.training_loop import fit_epochs

SHAPE = (1, 4, 4)


class Linear(nn.Module):
    """One linear layer over the flattened image: a network with next to no arithmetic."""

    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(SHAPE[0] * SHAPE[1] * SHAPE[2], self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.flatten(1))


def _adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


def plain_epoch(x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one epoch of the plain loop."""
    torch.manual_seed(0)
    net = Linear()
    optimizer = _adam(net.parameters())
    started = time.perf_counter()
    for xb, yb in TensorBatches(x, y, 32, shuffle=True):
        optimizer.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        optimizer.step()
    return time.perf_counter() - started


def lightning_epoch(classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one epoch of ``classifier`` under a Trainer, its set-up not counted."""
    torch.manual_seed(0)
    model = classifier(Linear(), _adam)
    batches = TensorBatches(x, y, 32, shuffle=True)
    # log_every_n_steps as advfit's trainer config has it.
    return fit_epochs(model, batches, 1, deterministic=True, log_every_n_steps=1)[0]


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="batches of 32 per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(
            f"--steps={args.steps} --repeats={args.repeats} --threads={args.threads}: "
            "each must be >= 1"
        )
    torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    generator = torch.Generator().manual_seed(0)
    n = 32 * args.steps
    x = torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    contenders = {
        "plain": lambda: plain_epoch(x, y),
        "lightning": lambda: lightning_epoch(Classifier, x, y),
        "torchmetrics": lambda: lightning_epoch(torchmetrics_classifier(checks=False), x, y),
    }
    ms: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(args.repeats + 1):
        for name, epoch in contenders.items():
            seconds = epoch()
            if round_:  # the first round warms up
                ms[name].append(seconds * 1000 / args.steps)
    print(
        f"CPU, {args.threads} thread(s), torch {torch.__version__}; a linear layer on "
        f"{'x'.join(map(str, SHAPE))}, batch 32, {args.steps} steps, {args.repeats} rounds"
    )
    print("\n| contender | ms a step, median [range] | ratio to lightning |")
    print("| --- | --- | --- |")
    for name, values in ms.items():
        ratio = ratio_spread(ratios(ms, name, "lightning"))
        print(
            f"| {name} | {statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}] | {ratio} |"
        )
    return ms


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\n{time.perf_counter() - started:.0f} s")
