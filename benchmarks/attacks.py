"""Attack and replay costs on LeNet with grayscale 32x32 (CIFAR-10-shaped) inputs, on this CPU.

1. Crafting through advfit's attack layer (FGSM and PGD: advertorch's classes; CW:
   advfit.attacks.cw, advertorch's without a device read per iteration) vs calling
   advertorch directly on the same batch (both with frozen parameters), plus advertorch with
   trainable parameters; images/s.
2. Carlini-Wagner time per iteration: advertorch (advfit's has the same arithmetic) vs
   torchattacks; the number of iterations each ran is counted with a forward hook
   (torchattacks stops early).
3. Replaying 35 snapshots x (10,000 clean + 3 x 1,000 adversarial images) vs the pure
   forward passes that needs.

    python -m benchmarks.attacks [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from advfit.attacks import Attack, frozen
from advfit.attacks.advertorch_compat import attacks as advertorch_attacks
from advfit.files import atomic_torch_save
from advfit.models import LeNet
from advfit.replay import AdversarialSet, Replay, predict
from advfit.rundir import RunDir
from benchmarks.common import interleaved, ratios, spread

SHAPE = (1, 32, 32)
# name: (the class advfit's config crafts with, parameters); advertorch's class of the same
# name is the direct contender.
ATTACKS = {
    "fgsm": (
        "advertorch.attacks.GradientSignAttack",
        {"eps": 0.3, "clip_min": 0.0, "clip_max": 1.0},
    ),
    "pgd": (
        "advertorch.attacks.LinfPGDAttack",
        {
            "eps": 0.3,
            "eps_iter": 0.1,
            "nb_iter": 40,
            "rand_init": False,
            "clip_min": 0.0,
            "clip_max": 1.0,
        },
    ),
    "cw": (
        "advfit.attacks.cw.CarliniWagnerL2Attack",
        {"num_classes": 10, "binary_search_steps": 1, "max_iterations": 100, "abort_early": False},
    ),
}


def trained_like_net() -> LeNet:
    torch.manual_seed(0)
    return LeNet(SHAPE, 10).eval()


def attack_layer(repeats: int) -> None:
    net = trained_like_net()
    x = torch.rand(500, *SHAPE, generator=torch.Generator().manual_seed(1))
    y = net(x).argmax(1)
    print(f"\n1. crafting 500 images, {repeats} interleaved rounds (seconds, median [min-max])")
    for name, (path, params) in ATTACKS.items():
        layer = Attack(name, path, batch_size=500, **params)
        cls = path.rsplit(".", 1)[1]

        def direct_frozen(cls=cls, params=params):
            with frozen(net):
                getattr(advertorch_attacks, cls)(net, **params).perturb(x, y)

        def direct_trainable(cls=cls, params=params):
            getattr(advertorch_attacks, cls)(net, **params).perturb(x, y)

        times = interleaved(
            {
                "advfit": lambda layer=layer: layer(net, x, y),
                "advertorch frozen": direct_frozen,
                "advertorch trainable": direct_trainable,
            },
            repeats,
        )
        r = ratios(times, "advfit", "advertorch frozen")
        print(
            f"  {name:<5} advfit {spread(times['advfit'])}  advertorch frozen "
            f"{spread(times['advertorch frozen'])}  trainable {spread(times['advertorch trainable'])}"
            f"  advfit/advertorch {statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}]"
            f"  {500 / statistics.median(times['advfit']):.0f} img/s"
        )


def cw_per_iteration(repeats: int) -> None:
    try:  # a peer for comparison, not a dependency (it pins an old requests): pip install it
        import torchattacks
    except ImportError:
        torchattacks = None
    net = trained_like_net()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.rand(200, *SHAPE, generator=torch.Generator().manual_seed(2))
    y = net(x).argmax(1)
    calls = {"n": 0}
    net.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    runs = {
        "advertorch": lambda: advertorch_attacks.CarliniWagnerL2Attack(
            net, 10, binary_search_steps=1, max_iterations=500, abort_early=False
        ).perturb(x, y),
    }
    if torchattacks is not None:
        runs["torchattacks"] = lambda: torchattacks.CW(net, c=1, kappa=0, steps=500, lr=0.01)(x, y)
    else:
        print("torchattacks is not installed: its CW is left out of the comparison")
    per_iteration: dict[str, list[float]] = {name: [] for name in runs}
    iterations: dict[str, list[int]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            calls["n"] = 0
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
            iterations[name].append(calls["n"])
            per_iteration[name].append(seconds / calls["n"] * 1000)
    print(f"\n2. Carlini-Wagner on 200 images, 500 iterations asked, {repeats} rounds")
    for name in runs:
        print(
            f"  {name:<12} {spread(per_iteration[name])} ms/iteration, iterations run: {iterations[name]}"
        )


def replay_overhead(repeats: int) -> None:
    net = trained_like_net()
    g = torch.Generator().manual_seed(3)
    x_test = torch.randint(0, 256, (10_000, *SHAPE), dtype=torch.uint8, generator=g)
    y_test = torch.randint(0, 10, (10_000,), generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))
        for epoch in range(1, 36):
            torch.manual_seed(epoch)
            atomic_torch_save(LeNet(SHAPE, 10).state_dict(), run.snapshot(epoch))
        run.write_epochs(
            pd.DataFrame(
                {
                    "epoch": range(1, 36),
                    "train_loss": 0.0,
                    "train_acc": 0.0,
                    "val_loss": 0.0,
                    "val_acc": 0.0,
                }
            )
        )
        sets = {}
        for name in ("fgsm", "pgd", "cw"):
            idx = torch.arange(1000)
            sets[name] = AdversarialSet(
                name, torch.rand(1000, *SHAPE, generator=g), idx, y_test[idx], 35
            )
        replay = Replay(run, net, x_test, y_test, {"x": None}, batch_size=1000, progress=False)
        snapshots = run.snapshots()
        weights = {e: torch.load(p, weights_only=True) for e, p in snapshots.items()}

        def pure():
            for state in weights.values():
                net.load_state_dict(state)
                predict(net, x_test, 1000)
                for adv in sets.values():
                    predict(net, adv.x_adv, 1000)

        times = interleaved(
            {"replay": lambda: replay.snapshot_pass(snapshots, sets), "pure forward": pure}, repeats
        )
        r = ratios(times, "replay", "pure forward")
        print(
            f"\n3. replay of 35 snapshots x (10,000 clean + 3 x 1,000 adversarial), {repeats} rounds"
        )
        print(
            f"  replay {spread(times['replay'])} s, pure forward passes {spread(times['pure forward'])} s,"
            f" ratio {statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    attack_layer(args.repeats)
    cw_per_iteration(args.repeats)
    replay_overhead(args.repeats)


if __name__ == "__main__":
    main()
