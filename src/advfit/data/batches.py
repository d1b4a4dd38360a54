"""Batching of in-memory uint8 image tensors by tensor indexing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import yaml

from advfit.config import CONF_DIR

#: Images per evaluation pass (validation, test, replay, attacks, metrics) where no data config
#: says (code that builds a data module, an attack or the replay by hand): read from
#: ``conf/data/base/in_memory.yaml``'s ``eval_batch_size``, its one home. BENCHMARKS.md,
#: "Evaluation batch size", measures it.
EVAL_BATCH_SIZE = int(
    yaml.safe_load((CONF_DIR / "data" / "base" / "in_memory.yaml").read_text())["eval_batch_size"]
)


def near_equal_parts(at_most: int, *tensors: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """``tensors`` (of equal length) cut along their first dimension into the fewest
    near-equal parts of at most ``at_most`` rows, part by part. Near-equal rather than full
    parts and a remainder: LeNet's per-image outputs and gradients on the CPU are the same bit
    for bit in any batch of 16 or more images, not in a remainder of a few."""
    parts = max(1, -(-len(tensors[0]) // at_most))
    return list(zip(*(t.tensor_split(parts) for t in tensors), strict=True))


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in 0..255 -> float32 in [0, 1], the space every attack works in. One
    operation (the division converts as it reads), the values of ``x.float() / 255``."""
    return x / 255.0


class TensorBatches:
    """An iterable of ``(x, y)`` batches over tensors that already sit on their device.

    Replaces ``DataLoader(TensorDataset(...))``: indexing a whole batch at once avoids
    per-sample Python work, which dominates the cost of a model as small as LeNet.
    The shuffle order of an epoch is a function of ``(seed, epoch)`` alone, so a run
    resumed at epoch ``e`` sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is invalid: it must be >= 1")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch or (lambda: 0)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def order(self) -> torch.Tensor:
        n = len(self.y)
        if not self.shuffle:
            return torch.arange(n, device=self.y.device)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch())
        return torch.randperm(n, generator=generator).to(self.y.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield to_unit_range(self.x[idx]), self.y[idx]
