"""Carlini-Wagner on a batch of 500 sources with the network's passes whole or split
(``attack.cw.images_per_pass``), on the CPU; the contenders interleaved in every round,
seconds per attack, median [range], and whether the examples are equal.

    python -m benchmarks.cw_passes [--threads 2] [--repeats 3] [--sides 32 96]
"""

from __future__ import annotations

import torch

from advfit.attacks import Attack
from benchmarks.common import cpu_args, cpu_parser, interleaved, ratios, seeded_lenet, spread

#: images per pass at each side: the data's eval_batch_size (conf/data/*.yaml)
PASSES = {32: 250, 96: 100}


def _crafting(net, x, y, args, images_per_pass, key, crafted):
    cw = Attack(
        "cw",
        "advfit.attacks.cw.CarliniWagnerL2Attack",
        batch_size=len(x),
        images_per_pass=images_per_pass,
        binary_search_steps=1,
        max_iterations=args.iterations,
        abort_early=False,
    )
    return lambda: crafted.__setitem__(key, cw(net, x, y))


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=3)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--iterations", type=int, default=10, help="one binary-search step")
    args = cpu_args(parser, argv, "s an attack")
    for side in args.sides:
        net = seeded_lenet(side)
        x = torch.rand(args.images, 1, side, side)
        with torch.no_grad():
            y = net(x).argmax(1)
        per_pass = min(PASSES.get(side, 250), args.images)
        crafted: dict[str, torch.Tensor] = {}
        contenders = {
            key: _crafting(net, x, y, args, images_per_pass, key, crafted)
            for key, images_per_pass in (("whole", None), ("passes", per_pass))
        }
        times = interleaved(contenders, args.repeats)
        r = sorted(ratios(times, "whole", "passes"))
        print(
            f"{side}x{side} {args.images} images x {args.iterations} iterations: whole "
            f"{spread(times['whole'])}, passes of {per_pass} {spread(times['passes'])}; "
            f"ratio {r[len(r) // 2]:.2f}; equal examples: "
            f"{torch.equal(crafted['whole'], crafted['passes'])}"
        )


if __name__ == "__main__":
    main()
