"""Helpers for the benchmarks: interleaved repeats, medians with their spread."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from advfit.models import LeNet


def interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Run each contender once per round, ``repeats`` rounds; seconds per run, by name."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def ratios(times: dict[str, list[float]], numerator: str, denominator: str) -> list[float]:
    """Per-round ratios, so that a noisy round affects both contenders alike."""
    return [a / b for a, b in zip(times[numerator], times[denominator], strict=True)]


def cpu_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    """The options every CPU micro-benchmark takes: threads, rounds and input sides."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--sides", type=int, nargs="+", default=[32, 96])
    return parser


def cpu_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, unit: str
) -> argparse.Namespace:
    """A :func:`cpu_parser`'s options parsed, this process's threads set from them, and the
    header line every CPU micro-benchmark prints (``unit``: what its numbers count)."""
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s), torch {torch.__version__}; {unit}, median [range]")
    return args


def ratio_spread(r: list[float]) -> str:
    """Per-round ratios as ``median x [min-max]``."""
    return f"{statistics.median(r):.2f}x [{min(r):.2f}-{max(r):.2f}]"


def seeded_lenet(side: int) -> LeNet:
    """LeNet for 1 x side x side inputs, seeded alike in every benchmark, in eval mode."""
    torch.manual_seed(0)
    return LeNet((1, side, side), 10).eval()


def head_to_head(
    contenders: dict[str, Callable[[], object]], repeats: int, scale: float = 1.0, unit: str = ""
) -> str:
    """Two contenders interleaved over ``repeats`` rounds: ``a <spread>, b <spread>, <ratio>``
    (times multiplied by ``scale`` and followed by ``unit``; the ratio is a's over b's)."""
    a, b = contenders
    times = interleaved(contenders, repeats)
    shown = {k: [t * scale for t in v] for k, v in times.items()}
    return (
        f"{a} {spread(shown[a])}{unit}, {b} {spread(shown[b])}{unit}, "
        f"{ratio_spread(ratios(times, a, b))}"
    )


def torchmetrics_classifier(checks: bool):
    """advfit's Classifier with its epoch metrics built from torchmetrics' ``SumMetric`` (the
    loss times the batch size) and micro ``MulticlassAccuracy``, as before 2026-11-26 (18
    operations a step against ``EpochTotals``' 7); ``checks``: torchmetrics' per-update input
    checks on (before an earlier 2026-11-26 change) or off. The same numbers."""
    from torchmetrics import Metric, SumMetric
    from torchmetrics.classification import MulticlassAccuracy

    from advfit.models import Classifier

    class Totals(Metric):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            nan = "warn" if checks else "disable"
            self.loss = SumMetric(nan_strategy=nan)
            self.acc = MulticlassAccuracy(num_classes, average="micro", validate_args=checks)
            self.add_state("images", torch.tensor(0), dist_reduce_fx="sum")

        def update(self, loss, logits, y) -> None:
            self.loss.update(loss * len(y))
            self.acc.update(logits, y)
            self.images += len(y)

        def compute(self) -> dict[str, torch.Tensor]:
            return {"loss": self.loss.compute() / self.images, "acc": self.acc.compute()}

        def reset(self) -> None:
            super().reset()
            self.loss.reset()
            self.acc.reset()

    class TorchmetricsClassifier(Classifier):
        def __init__(self, net, optimizer, **kwargs) -> None:
            super().__init__(net, optimizer, **kwargs)
            self.train_metrics = Totals(net.num_classes)
            self.val_metrics = Totals(net.num_classes)

    return TorchmetricsClassifier
