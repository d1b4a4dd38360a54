"""Time per epoch: advfit's Lightning training loop against a minimal hand-written loop.

Same LeNet, same data (random uint8 images in memory), batch size 32, Adam, on this CPU.
Each round fits 3 epochs with each contender (interleaved) and keeps the median time of
epochs 2-3, so the Trainer's one-off set-up is not counted; the ratio is taken per round.

    python benchmarks/training_loop.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from advfit.cores import keep_nvml_check_only_with_nvml
from advfit.data import TensorBatches
from advfit.models import Classifier, LeNet
from benchmarks.common import spread

EPOCHS = 3

SHAPES = {
    "fashion_mnist 1x28x28": ((1, 28, 28), 6000),
    "cifar10-gray 1x32x32": ((1, 32, 32), 6000),
    "cifar10 3x32x32": ((3, 32, 32), 6000),
    "stl10-gray 1x96x96": ((1, 96, 96), 2000),
    "stl10 3x96x96": ((3, 96, 96), 2000),
}


def data(shape, n):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def fit_epochs(
    model: pl.LightningModule,
    batches: TensorBatches,
    epochs: int,
    accelerator: str = "cpu",
    deterministic: bool = False,
    **trainer_options,
) -> list[float]:
    """Seconds of each training epoch of ``model`` fitted by a Trainer with nothing else to
    do (no logger, checkpoint, bar or validation), its set-up not counted."""
    keep_nvml_check_only_with_nvml()  # as a train.py job does before it trains
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        deterministic=deterministic,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
        **trainer_options,
    )
    trainer.fit(model, train_dataloaders=batches)
    return timer.seconds


def lightning_epoch(
    shape, x, y, accelerator: str = "cpu", deterministic: bool = False, classifier=Classifier
) -> float:
    """The median second and third epoch of advfit's Classifier (or a subclass, ``classifier``)
    fitted by a Trainer."""
    torch.manual_seed(0)
    model = classifier(LeNet(shape, 10), lambda params: torch.optim.Adam(params, lr=1e-3))
    batches = TensorBatches(x, y, 32, shuffle=True)
    return statistics.median(fit_epochs(model, batches, EPOCHS, accelerator, deterministic)[1:])


def hand_epoch(shape, x, y) -> float:
    torch.manual_seed(0)
    net = LeNet(shape, 10)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    seconds = []
    for epoch in range(EPOCHS):
        started = time.perf_counter()
        for xb, yb in TensorBatches(x, y, 32, shuffle=True, epoch=lambda e=epoch: e):
            opt.zero_grad()
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.repeats} interleaved rounds"
    )
    print(
        f"{'shape':<24} {'lightning s/epoch':>26} {'hand s/epoch':>26} {'ratio median [min-max]':>26} {'img/s (lightning)':>18}"
    )
    for name, (shape, n) in SHAPES.items():
        x, y = data(shape, n)
        times: dict[str, list[float]] = {"lightning": [], "hand": []}
        for _ in range(args.repeats):
            times["lightning"].append(lightning_epoch(shape, x, y))
            times["hand"].append(hand_epoch(shape, x, y))
        r = [a / b for a, b in zip(times["lightning"], times["hand"], strict=True)]
        rate = n / statistics.median(times["lightning"])
        print(
            f"{name:<24} {spread(times['lightning']):>26} {spread(times['hand']):>26} "
            f"{statistics.median(r):>10.3f} [{min(r):.3f}-{max(r):.3f}] {rate:>16.0f}"
        )


if __name__ == "__main__":
    main()
