"""CLEVER of this checkout against another version of ``advfit/metrics/clever.py``, on the CPU:
metrics.clever's defaults (ART's 10 x 50 draws from a 500-point pool) on ``--images`` random
images and a seeded random LeNet, the two interleaved in every round; seconds per call,
median [range], and whether the scores are equal bit for bit.

    git show <commit>:src/advfit/metrics/clever.py > /tmp/clever_before.py
    python -m benchmarks.clever_versions --against /tmp/clever_before.py [--threads 2]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from advfit.metrics.clever import Clever
from benchmarks.common import cpu_args, cpu_parser, head_to_head, seeded_lenet


def clever_file(value: str) -> Path:
    """``--against``: refused before anything runs when the file is missing."""
    path = Path(value)
    if not path.is_file():
        raise SystemExit(f"--against {path}: no such file (a version of clever.py)")
    return path


def load_clever(path: Path) -> type:
    """The ``Clever`` class of another version's clever.py (it imports today's advfit)."""
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
    result = head_to_head(
        {"against": lambda: before(net, x), "this checkout": lambda: now(net, x)}, args.repeats
    )
    print(f"{side}x{side}, {args.images} images: {result}; scores equal: {equal}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=3)
    parser.add_argument("--against", type=clever_file, required=True, help="another clever.py")
    parser.add_argument("--images", type=int, default=10, help="metrics.clever.n_images")
    args = cpu_args(parser, argv, "s a call")
    other = load_clever(args.against)
    for side in args.sides:
        compare(other, side, args)


if __name__ == "__main__":
    main()
