"""CLEVER cost per image: advfit's batched CLEVER vs IBM ART's ``clever_u``, on this CPU.

1. Whole CLEVER untargeted per image on LeNet, ART's settings of the issue (nb_batches 10,
   batch_size 50, pool_factor 10, R 5, L2), CIFAR-shaped RGB (3x32x32) and the paper's
   grayscale (1x32x32) input; the two interleaved in each round, ratio per round.
2. The Weibull fits alone: scipy's ``weibull_min.fit`` (ART's call, one per (image, class))
   vs :func:`advfit.metrics.weibull.fit_weibull_min` over the same maxima at once.

    python -m benchmarks.clever [--repeats 5] [--images 4]
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import numpy as np
import torch
from scipy.optimize import fmin
from scipy.stats import weibull_min

from advfit.metrics.clever import Clever
from advfit.metrics.weibull import fit_weibull_min
from advfit.models import LeNet
from benchmarks.common import interleaved, ratios, spread

SETTINGS = {"nb_batches": 10, "batch_size": 50, "pool_factor": 10, "radius": 5.0, "norm": 2}


def whole_clever(shape: tuple[int, int, int], images: int, repeats: int) -> None:
    from art.estimators.classification import PyTorchClassifier
    from art.metrics import clever_u

    torch.manual_seed(0)
    net = LeNet(shape, 10).eval()
    x = torch.rand(images, *shape, generator=torch.Generator().manual_seed(1))
    classifier = PyTorchClassifier(
        net, torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10, clip_values=(0, 1)
    )
    ours = Clever(**SETTINGS)
    s = SETTINGS

    def art() -> None:
        # ART scores one image per call; one image a round keeps the rounds short.
        clever_u(
            classifier, x[0].numpy(), s["nb_batches"], s["batch_size"], s["radius"], s["norm"],
            pool_factor=s["pool_factor"], verbose=False,
        )  # fmt: skip

    ours(net, x[:1])  # warm-up
    times = interleaved({"ART clever_u": art, "advfit": lambda: ours(net, x)}, repeats)
    times["advfit"] = [t / images for t in times["advfit"]]
    r = ratios(times, "ART clever_u", "advfit")
    print(f"\n1. CLEVER per image, LeNet {'x'.join(map(str, shape))}, {repeats} rounds")
    print(f"  ART clever_u {spread(times['ART clever_u'])} s/image (1 image per round)")
    print(f"  advfit       {spread(times['advfit'])} s/image ({images} images per call)")
    print(f"  ART / advfit {statistics.median(r):.1f}x [{min(r):.1f}-{max(r):.1f}]")


def weibull_fits(repeats: int) -> None:
    # Maxima shaped like CLEVER's: 10 maxima of 50 draws from a pool of 500 gradient norms.
    rng = np.random.default_rng(0)
    pools = rng.gamma(rng.uniform(2, 50, size=(54, 1)), size=(54, 500))
    maxima = np.take_along_axis(pools, rng.integers(0, 500, size=(54, 500)), axis=1)
    samples = -maxima.reshape(54, 10, 50).max(axis=2)

    def scipy_fits() -> None:
        for row in samples:
            weibull_min.fit(row, 1.0, optimizer=fmin)

    times = interleaved(
        {"scipy": scipy_fits, "batched": lambda: fit_weibull_min(samples, 1.0)}, repeats
    )
    r = ratios(times, "scipy", "batched")
    print(f"\n2. 54 Weibull fits (6 images x 9 classes), {repeats} rounds")
    print(
        f"  scipy weibull_min.fit {spread(times['scipy'])} s, batched {spread(times['batched'])} s"
    )
    print(f"  scipy / batched {statistics.median(r):.1f}x [{min(r):.1f}-{max(r):.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=4, help="images per advfit call")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for shape in ((3, 32, 32), (1, 32, 32)):
        whole_clever(shape, args.images, args.repeats)
    weibull_fits(args.repeats)


if __name__ == "__main__":
    main()
