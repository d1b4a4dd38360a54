"""Where a run's time goes, stage by stage, beside the floor under it: the same arithmetic as
bare PyTorch on the same machine.

For each shape (the demo's Fashion-MNIST 1x28x28, and the protocol's CIFAR-10-shaped 1x32x32
and STL-10-shaped 1x96x96 stand-ins, built from real Fashion-MNIST images as
``benchmarks.protocol`` builds them), in one process, interleaved over ``--repeats`` rounds:

- **start**: a fresh process that imports what ``train.py`` runs (``advfit.tasks``), against
  one that imports torch alone (and, printed beside, one that imports Lightning alone);
- **training**, seconds per epoch (batch 32, Adam): advfit's LightningModule under Lightning's
  Trainer (``benchmarks.training_loop``), against a hand-written loop with Adam, with fused
  Adam and, with ``--compile``, ``torch.compile``d; the floor is the fastest;
- **each attack**: advfit's attack layer (the config's own settings) crafting on the sources,
  against its floor: the network passes it made (counted), each timed as a bare
  forward+backward at the same batch size;
- **the replay**: classifying the test set and every adversarial set on each snapshot
  (``Replay.snapshot_pass``, no metrics), against bare forward passes of the same batches
  after the same weight loads;
- **a whole run**: those stages added up, each as often as a run does it (training once per
  epoch, the metrics once per scored snapshot), and for the demo its **sweep**: a worker's
  start, then the 5 runs each of its 2 workers trains one after another.

Each stage gets its FLOP count (``torch.utils.flop_counter``) and the GFLOP/s the floor and
advfit achieve. The network is a LeNet trained for ``--epochs`` epochs first, so that the
attacks (Carlini-Wagner's early abort) meet a network that has learned.

    python -m benchmarks.floor                      # the demo's shape, 1 thread, 3 rounds
    python -m benchmarks.floor --shapes demo cifar10 stl10 --compile
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from advfit.data.batches import TensorBatches, to_unit_range
from advfit.files import atomic_torch_save
from advfit.models import LeNet
from advfit.replay import AdversarialSet, Replay
from advfit.replay.network import predict
from advfit.rundir import RunDir
from benchmarks.common import interleaved, spread
from benchmarks.protocol import SHAPES as PROTOCOL
from benchmarks.protocol import fashion_mnist, to_shape
from benchmarks.training_loop import fit_epochs

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Size:
    side: int
    n_train: int
    n_test: int
    sources: int
    snapshots: int
    attacks: tuple[str, ...]
    eval_batch: int


#: The demo's sizes (conf/experiment/demo.yaml); the protocol's with fewer training images
#: and sources than its 50,000 / 1,000 (per epoch and per source, time scales linearly).
SIZES = {
    "demo": Size(28, 960, 1000, 200, 35, ("fgsm", "pgd", "cw_fast"), 500),
    "cifar10": Size(32, 6000, 10_000, 200, 35, ("fgsm", "pgd", "cw"), 500),
    "stl10": Size(96, 2000, 8000, 100, 35, ("fgsm", "pgd", "cw"), 50),
}


def images(name: str, size: Size, data_dir: Path):
    x_train, y_train, x_test, y_test = fashion_mnist(data_dir)
    x_train, y_train = x_train[: size.n_train], y_train[: size.n_train]
    x_test, y_test = x_test[: size.n_test], y_test[: size.n_test]
    if name in PROTOCOL:
        x_train, x_test = to_shape(x_train, PROTOCOL[name]), to_shape(x_test, PROTOCOL[name])
    return x_train, y_train, x_test, y_test


#: The config each shape composes: the demo's experiment, the protocol's data sets.
OVERRIDES = {"demo": ["experiment=demo"], "cifar10": ["data=cifar10"], "stl10": ["data=stl10"]}


def composed(name: str, size: Size):
    """The shape's config as train.py composes it, with the shape's attacks."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "train",
            [
                *OVERRIDES[name],
                f"attack=[{','.join(size.attacks)}]",
                f"data.eval_batch_size={size.eval_batch}",
            ],
        )


def step_flops(net, x, y, backward: bool = True) -> float:
    """FLOPs of one forward (and backward) pass of ``net`` on the batch ``x``."""
    with FlopCounterMode(display=False) as counter:
        out = net(x)
        if backward:
            F.cross_entropy(out, y).backward()
    net.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def hand_epoch(net, x, y, optimizer, epoch: int, step=None) -> None:
    for xb, yb in TensorBatches(x, y, 32, shuffle=True, epoch=lambda: epoch):
        if step is not None:
            step(xb, yb)
            continue
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()
        optimizer.step()


def training(shape, x, y, repeats: int, compiled: bool) -> tuple[dict, float]:
    """Seconds per epoch of each contender (its second epoch onwards), and FLOPs per epoch."""
    from advfit.models import Classifier

    def lightning():
        torch.manual_seed(0)
        model = Classifier(
            LeNet(shape, 10), lambda params, **kw: torch.optim.Adam(params, lr=1e-3, **kw)
        )
        return statistics.median(fit_epochs(model, TensorBatches(x, y, 32, shuffle=True), 3)[1:])

    def hand(fused: bool, compile_step: bool = False):
        def run():
            torch.manual_seed(0)
            net = LeNet(shape, 10).train()
            opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=fused or None)
            step = None
            if compile_step:

                @torch.compile
                def step(xb, yb):
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(net(xb), yb).backward()
                    opt.step()

            seconds = []
            for epoch in range(3):
                started = time.perf_counter()
                hand_epoch(net, x, y, opt, epoch, step)
                seconds.append(time.perf_counter() - started)
            return statistics.median(seconds[1:])

        return run

    contenders = {"advfit": lightning, "bare Adam": hand(False), "bare fused Adam": hand(True)}
    if compiled:
        contenders["bare compiled"] = hand(True, compile_step=True)
    per_epoch = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            per_epoch[name].append(run())
    net = LeNet(shape, 10).train()
    steps = -(-len(y) // 32)
    return per_epoch, step_flops(net, to_unit_range(x[:32]), y[:32]) * steps


class Passes:
    """Counts a network's forward and backward passes, and the images in each, while
    active (CLEVER differentiates one forward pass once per class)."""

    def __init__(self, net) -> None:
        self.forward: list[int] = []
        self.backward: list[int] = []
        self.handles = [
            net.register_forward_hook(lambda _m, args, _o: self.forward.append(len(args[0]))),
            net.register_full_backward_hook(
                lambda _m, grad_in, _g: (
                    self.backward.append(len(grad_in[0]))
                    if grad_in and grad_in[0] is not None
                    else None
                )
            ),
        ]

    def close(self) -> tuple[list[int], list[int]]:
        for handle in self.handles:
            handle.remove()
        return self.forward, self.backward


def pass_seconds(net, shape, batch: int, repeats: int, backward: bool) -> float:
    """Median seconds of one bare forward (+ backward to the input) pass on ``batch`` images."""
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(max(5, repeats)):
        xi = x.clone().requires_grad_(backward)
        started = time.perf_counter()
        out = net(xi)
        if backward:
            F.cross_entropy(out, y).backward()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def floor_of(net, shape, passes: tuple[list[int], list[int]], repeats: int) -> float:
    """Seconds of the counted passes (images in each forward, in each backward) as bare
    passes: a forward alone, and a backward as forward+backward less the forward."""
    forward, backward = passes
    sizes = sorted(set(forward) | set(backward))
    f = {b: pass_seconds(net, shape, b, repeats, backward=False) for b in sizes}
    fb = {b: pass_seconds(net, shape, b, repeats, backward=True) for b in sizes}
    return sum(f[b] for b in forward) + sum(max(fb[b] - f[b], 0.0) for b in backward)


def counted(net, work) -> tuple[list[int], list[int]]:
    """The images of each forward and each backward pass ``work()`` makes."""
    counter = Passes(net)
    try:
        work()
    finally:
        passes = counter.close()
    return passes


def pass_count(passes: tuple[list[int], list[int]]) -> str:
    forward, backward = passes
    return f"{len(forward):,} forward, {len(backward):,} backward"


def pass_flops(net, x, y, passes: tuple[list[int], list[int]]) -> float:
    """FLOPs of the counted passes: per image, a forward, and a backward (the difference)."""
    forward = step_flops(net, x[:1], y[:1], backward=False)
    both = step_flops(net, x[:1].clone().requires_grad_(), y[:1])
    return forward * sum(passes[0]) + (both - forward) * sum(passes[1])


def frozen_sources(net, x_test, y_test, n: int):
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        correct = predict(net, x_test, 500) == y_test
    return to_unit_range(x_test[correct][:n]), y_test[correct][:n]


def metrics(net, shape, x_test, y_test, cfg, repeats: int) -> list[dict]:
    """Each robustness metric on one snapshot (the config's images), against its passes."""
    schedule = instantiate(cfg.metrics)
    x, y = to_unit_range(x_test[: schedule.n_images]), y_test[: schedule.n_images]
    rows = []
    for name, metric in schedule.metrics.items():
        torch.manual_seed(0)
        passes = counted(net, lambda m=metric: m(net, x, y))
        times = interleaved({"advfit": lambda m=metric: m(net, x, y)}, repeats)
        rows.append(
            stage_row(
                f"metric {name} ({getattr(metric, 'n_images', None) or len(y)} images; "
                f"{pass_count(passes)})",
                times["advfit"],
                [floor_of(net, shape, passes, repeats)],
                pass_flops(net, x, y, passes),
            )
        )
    return rows


def crafting(net, shape, x_test, y_test, size: Size, repeats: int, cfg) -> list[dict]:
    rows = []
    sources, labels = frozen_sources(net, x_test, y_test, size.sources)
    for name, node in cfg.attack.items():
        attack = instantiate(node)
        passes = counted(net, lambda a=attack: a(net, sources, labels))
        times = interleaved({"advfit": lambda a=attack: a(net, sources, labels)}, repeats)
        rows.append(
            stage_row(
                f"craft {name} ({len(labels)} sources; {pass_count(passes)})",
                times["advfit"],
                [floor_of(net, shape, passes, repeats)],
                pass_flops(net, sources, labels, passes),
            )
        )
    return rows


def replay(net, shape, x_test, y_test, size: Size, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))
        for epoch in range(1, size.snapshots + 1):
            torch.manual_seed(epoch)
            atomic_torch_save(LeNet(shape, 10).state_dict(), run.snapshot(epoch))
        g = torch.Generator().manual_seed(3)
        sets = {}
        for name in size.attacks:
            idx = torch.arange(size.sources)
            sets[name] = AdversarialSet(
                name, torch.rand(size.sources, *shape, generator=g), idx, y_test[idx], 1
            )
        player = Replay(
            run,
            net,
            x_test,
            y_test,
            {"x": None},
            n_images=1,
            batch_size=size.eval_batch,
            progress=False,
        )
        snapshots = run.snapshots()

        def bare():
            for path in snapshots.values():
                net.load_state_dict(torch.load(path, weights_only=True))
                predict(net, x_test, size.eval_batch)
                for adv in sets.values():
                    predict(net, adv.x_adv, size.eval_batch)

        times = interleaved(
            {"advfit": lambda: player.snapshot_pass(snapshots, sets), "floor": bare}, repeats
        )
        images = size.snapshots * (len(y_test) + size.sources * len(sets))
        flops = step_flops(net, to_unit_range(x_test[:1]), y_test[:1], backward=False) * images
        return stage_row(
            f"replay ({size.snapshots} snapshots x {len(y_test):,} + {len(sets)} x {size.sources})",
            times["advfit"],
            times["floor"],
            flops,
        )


def start(repeats: int) -> dict:
    """A fresh process importing what train.py runs, against one importing torch alone."""

    def process(code: str):
        return lambda: subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)

    times = interleaved(
        {
            "advfit": process("import advfit.tasks, advfit.data"),
            "floor": process("import torch"),
            "lightning": process("import pytorch_lightning"),
        },
        repeats,
    )
    # What Lightning alone imports (torchmetrics, and through it torchvision and scipy): the
    # part of advfit's start that no change to advfit can remove.
    print(f"  process start: pytorch_lightning alone {spread(times['lightning'])} s")
    return stage_row("process start: imports", times["advfit"], times["floor"], None)


#: Where a stage row keeps its two medians (seconds) for the run's total; not printed.
MEDIANS = "_medians"


def stage_row(stage: str, advfit: list[float], floor: list[float], flops: float | None) -> dict:
    return table_row(stage, spread(advfit), spread(floor), advfit, floor, flops)


def total_row(stage: str, advfit: float, floor: float) -> dict:
    """A row that adds up stage rows' medians: seconds, no FLOP count of its own."""
    return table_row(stage, f"{advfit:.2f}", f"{floor:.2f}", [advfit], [floor], None)


def table_row(
    stage: str, advfit_s: str, floor_s: str, advfit: list[float], floor: list[float], flops
) -> dict:
    a, f = statistics.median(advfit), statistics.median(floor)
    row = {
        "stage": stage,
        "advfit s": advfit_s,
        "floor s": floor_s,
        "ratio": f"{a / f:.2f}",
        "GFLOP": f"{flops / 1e9:.2f}" if flops else "-",
        "floor GFLOP/s": f"{flops / 1e9 / f:.1f}" if flops else "-",
        "advfit GFLOP/s": f"{flops / 1e9 / a:.1f}" if flops else "-",
    }
    print("  " + " | ".join(row.values()), flush=True)  # as each stage is done
    return {**row, MEDIANS: (a, f)}


def run_row(name: str, stages: list[tuple[dict, int]]) -> dict:
    """A whole run of the shape: each stage's medians times how often a run does it (the
    epochs, each scored snapshot's metrics, each attack and the replay once), added up."""
    advfit, floor = (sum(row[MEDIANS][i] * times for row, times in stages) for i in (0, 1))
    return total_row(f"{name}: a whole run, the stages above added up", advfit, floor)


#: The demo's jobs side by side: one per core of the 2-core machine it is sized for.
DEMO_WORKERS = 2


def demo_runs() -> int:
    """How many runs the demo's sweep makes: the product of its swept values, as Hydra's
    override parser reads ``conf/experiment/demo.yaml``'s sweeper params."""
    params = OmegaConf.load(ROOT / "conf" / "experiment" / "demo.yaml").hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return math.prod(len(list(o.sweep_string_iterator())) for o in overrides)


def sweep_row(start_row: dict, run: dict) -> dict:
    """The demo's sweep as its stages add up: a worker's start, then its share of the runs
    one after another. A real sweep adds what lies outside the stages: the launch, the
    Trainer's set-up, validation, checkpoints and W&B."""
    runs = demo_runs()
    per_worker = -(-runs // DEMO_WORKERS)
    advfit, floor = (start_row[MEDIANS][i] + per_worker * run[MEDIANS][i] for i in (0, 1))
    return total_row(
        f"demo: the sweep, {runs} runs {DEMO_WORKERS} at a time "
        f"(a start, then {per_worker} runs per worker)",
        advfit,
        floor,
    )


def matmul_peak() -> float:
    """GFLOP/s of a large float32 matmul on this process's threads: what they reach at best."""
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["demo"], choices=sorted(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="1: what each demo job gets")
    parser.add_argument("--epochs", type=int, default=5, help="to train the attacked network")
    parser.add_argument("--compile", action="store_true", help="time a torch.compile'd step too")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="Fashion-MNIST")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir
    print(
        f"CPU, {args.threads} thread(s), torch {torch.__version__}; a float32 2048^2 matmul "
        f"reaches {matmul_peak():.0f} GFLOP/s; seconds: median [range] over "
        f"{args.repeats} rounds"
    )
    rows = [start(args.repeats)]
    for name in args.shapes:
        size = SIZES[name]
        x_train, y_train, x_test, y_test = images(name, size, data_dir)
        shape = tuple(x_train.shape[1:])
        per_epoch, flops = training(shape, x_train, y_train, args.repeats, args.compile)
        floors = [n for n in per_epoch if n != "advfit"]
        best = min(floors, key=lambda n: statistics.median(per_epoch[n]))
        rows.append(
            stage_row(
                f"{name}: training, per epoch ({len(y_train):,} images; floor: {best})",
                per_epoch["advfit"],
                per_epoch[best],
                flops,
            )
        )
        for other in floors:
            if other != best:
                print(f"  {name}: {other} {spread(per_epoch[other])} s/epoch")
        torch.manual_seed(0)
        net = LeNet(shape, 10).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for epoch in range(args.epochs):
            hand_epoch(net, x_train, y_train, opt, epoch)
        cfg = composed(name, size)
        schedule = instantiate(cfg.metrics)
        scored = sum(schedule.due(e, size.snapshots) for e in range(1, size.snapshots + 1))
        stages = [(rows[-1], size.snapshots)]  # training, once per epoch
        stages += [
            (row, 1) for row in crafting(net, shape, x_test, y_test, size, args.repeats, cfg)
        ]
        stages += [(row, scored) for row in metrics(net, shape, x_test, y_test, cfg, args.repeats)]
        stages.append((replay(net, shape, x_test, y_test, size, args.repeats), 1))
        rows += [{**row, "stage": f"{name}: {row['stage']}"} for row, _ in stages[1:]]
        rows.append(run_row(name, stages))
        if name == "demo":
            rows.append(sweep_row(rows[0], rows[-1]))
        for p in net.parameters():
            p.requires_grad_(True)
    table = pd.DataFrame(rows).drop(columns=MEDIANS)
    print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
