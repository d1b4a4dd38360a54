"""Images per forward pass outside training: LeNet classifying and differentiating with
respect to its input (FGSM, PGD, the per-image metrics) at several batch sizes, on the CPU.

Each image's outputs and input gradients are the same bit for bit in any batch, so the
batch size is chosen for speed alone: ``data.eval_batch_size`` (250; conf/data/stl10.yaml
sets 100 for 96x96 images). The batch sizes interleaved in every round; images a second,
median [range].

    python -m benchmarks.eval_batch [--threads 1] [--repeats 3] [--sides 32 96]
"""

from __future__ import annotations

import torch

from benchmarks.common import cpu_args, cpu_parser, interleaved, seeded_lenet, spread

SIZES = {32: (100, 250, 500), 96: (25, 50, 100, 150, 250)}


def passes(net: torch.nn.Module, x: torch.Tensor, batch: int, gradient: bool):
    def run() -> None:
        for start in range(0, len(x), batch):
            part = x[start : start + batch]
            if gradient:
                part = part.clone().requires_grad_(True)
                torch.autograd.grad(net(part)[:, 0].sum(), part)
            else:
                with torch.no_grad():
                    net(part)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = cpu_parser(__doc__, repeats=3)
    parser.add_argument("--images", type=int, default=None, help="default 2000 / 500")
    args = cpu_args(parser, argv, "images/s")
    for side in args.sides:
        net = seeded_lenet(side)
        for p in net.parameters():
            p.requires_grad_(False)
        n = args.images or (2000 if side <= 32 else 500)
        x = torch.rand(n, 1, side, side)
        sizes = SIZES.get(side, (50, 100, 250, 500))
        for gradient in (False, True):
            contenders = {b: passes(net, x, b, gradient) for b in sizes}
            for run in contenders.values():
                run()  # warm-up
            times = interleaved(contenders, args.repeats)
            rates = {b: [n / t for t in ts] for b, ts in times.items()}
            what = "input gradients" if gradient else "classifying"
            print(
                f"{side}x{side} {what}: " + ", ".join(f"{b}: {spread(r)}" for b, r in rates.items())
            )


if __name__ == "__main__":
    main()
