"""CLEVER of this checkout against another version of ``advfit/metrics/clever.py``, on the CPU:
metrics.clever's defaults (ART's 10 x 50 draws from a 500-point pool) on ``--images`` random
images and a seeded random LeNet, the two interleaved in every round; seconds per call,
median [range], and whether the scores are equal bit for bit.

    git show <commit>:src/advfit/metrics/clever.py > /tmp/clever_before.py
    python -m benchmarks.clever_versions --against /tmp/clever_before.py [--threads 2]
"""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import torch

from advfit.metrics.clever import Clever
from benchmarks.common import cpu_parser, interleaved, ratios, seeded_lenet, spread


def load_clever(path: Path) -> type:
    """The ``Clever`` class of another version's clever.py (it imports today's advfit)."""
    if not path.is_file():
        raise SystemExit(f"--against {path}: no such file (a version of clever.py)")
    spec = importlib.util.spec_from_file_location("clever_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Clever


def compare(other: type, side: int, args) -> None:
    net = seeded_lenet(side)
    x = torch.rand(args.images, 1, side, side, generator=torch.Generator().manual_seed(1))
    before, now = other(seed=0), Clever(seed=0)
    a, b = before.evaluate(net, x), now.evaluate(net, x)
    equal = torch.equal(a.scores, b.scores) and torch.equal(
        a.per_class.nan_to_num(-1), b.per_class.nan_to_num(-1)
    )
    times = interleaved(
        {"against": lambda: before(net, x), "this": lambda: now(net, x)}, args.repeats
    )
    r = ratios(times, "against", "this")
    print(
        f"{side}x{side}, {args.images} images: against {spread(times['against'])}, "
        f"this checkout {spread(times['this'])}, {statistics.median(r):.2f}x "
        f"[{min(r):.2f}-{max(r):.2f}]; scores equal: {equal}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=3)
    parser.add_argument("--against", type=Path, required=True, help="another clever.py")
    parser.add_argument("--images", type=int, default=10, help="metrics.clever.n_images")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    other = load_clever(args.against)
    print(f"CPU, {args.threads} thread(s), torch {torch.__version__}; s a call, median [range]")
    for side in args.sides:
        compare(other, side, args)


if __name__ == "__main__":
    main()
