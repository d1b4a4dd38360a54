"""The paper's whole protocol, timed stage by stage on full-size stand-ins of its data sets.

This machine cannot download CIFAR-10 or STL-10, so the runs train on stand-ins built from
real Fashion-MNIST images with the paper's shapes and counts (grayscale, as the paper's
experiments use them):

    cifar10: 50,000 train / 10,000 test, 1x32x32 (28x28 images padded by 2 pixels)
    stl10:    5,000 train /  8,000 test, 1x96x96 (28x28 images resized, bilinear)

written once as ``.npz`` and run through ``data=custom`` by ``train.py`` itself (a
subprocess per run, fold 0 of each regime, or its first ``--run-folds`` folds), so training,
attacks with early abort and the metrics behave as on real data. Each run reports seconds
per stage: training, validation, each attack, classifying the snapshots, each metric, and
the whole launch.

A run can be measured short and extrapolated (labelled so in the table): training,
validation, classifying and the metrics scale with the epochs (they are per epoch or per
snapshot; training and each metric from the first epoch or snapshot once plus the others'
mean for the rest, so that the first one's one-off costs are not multiplied), crafting
with the number of sources (on a CPU; on a GPU it grows with the number
of batches instead, so measure the attacks at the protocol's sources there). The protocol's
total is the runs' seconds times folds / run folds, over the jobs at once. ``--run-folds 5
--jobs 10`` runs every fold, ten at once, much as ``make paper`` does on ten or more cores
(it runs the CIFAR-10 sweep before the STL-10 one): at the protocol's epochs and sources its
wall time is then the protocol's, measured.

    python -m benchmarks.protocol                       # measured at the paper's settings
    python -m benchmarks.protocol --measure-epochs 3 --measure-sources 200   # extrapolated
    python -m benchmarks.protocol --shapes cifar10 --regimes overfit --train-size 2000 ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from advfit.cores import threads_per_job
from advfit.data.folds import check_folds

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shape:
    """A data set's shape and counts, and how a 28x28 image becomes it."""

    name: str
    n_train: int
    n_test: int
    side: int
    build: str  # "pad" or "resize"


SHAPES = {
    "cifar10": Shape("cifar10", 50_000, 10_000, 32, "pad"),
    "stl10": Shape("stl10", 5_000, 8_000, 96, "resize"),
}
#: The source of the stand-ins: Fashion-MNIST's split sizes.
SOURCE_TRAIN, SOURCE_TEST = 60_000, 10_000
#: The metrics' columns, in this order; a metric a run scores beyond them gets a column too.
METRICS = ("loss_sensitivity", "empirical_robustness", "clever", "robust_accuracy")


class BenchmarkError(ValueError):
    """Settings the benchmark cannot run; the message names the value and the limit."""


def fashion_mnist(data_dir: Path) -> tuple[torch.Tensor, ...]:
    from advfit.data import FashionMNISTDataModule

    # Debian's copy (paths.fashion_mnist_system) is unpacked into data_dir when it is missing.
    system = OmegaConf.load(ROOT / "conf" / "paths" / "default.yaml").fashion_mnist_system
    return FashionMNISTDataModule(data_dir=str(data_dir), system_dir=system).read()


def to_shape(images: torch.Tensor, shape: Shape) -> torch.Tensor:
    """uint8 N x 1 x 28 x 28 -> uint8 N x 1 x side x side."""
    if shape.build == "pad":
        pad = (shape.side - images.shape[-1]) // 2
        return F.pad(images, (pad, shape.side - images.shape[-1] - pad) * 2)
    out = []
    for chunk in images.split(2000):
        resized = F.interpolate(chunk.float(), size=(shape.side, shape.side), mode="bilinear")
        out.append(resized.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def standin(shape: Shape, n_train: int, n_test: int, data_dir: Path, cache: Path) -> Path:
    """The stand-in ``.npz`` of ``shape`` with ``n_train`` / ``n_test`` images (built once)."""
    for what, n, limit in (("training", n_train, SOURCE_TRAIN), ("test", n_test, SOURCE_TEST)):
        if not 1 <= n <= limit:
            raise BenchmarkError(
                f"{shape.name}: {n:,} {what} images cannot be built: Fashion-MNIST, the "
                f"stand-ins' source, has {limit:,} {what} images (accepted: 1 to {limit:,})"
            )
    path = cache / f"{shape.name}-standin-{n_train}-{n_test}.npz"
    if path.is_file():
        return path
    x_train, y_train, x_test, y_test = fashion_mnist(data_dir)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.npz")
    np.savez(
        partial,
        x_train=to_shape(x_train[:n_train], shape).numpy(),
        y_train=y_train[:n_train].numpy(),
        x_test=to_shape(x_test[:n_test], shape).numpy(),
        y_test=y_test[:n_test].numpy(),
    )
    partial.replace(path)
    return path


def data_settings(shape: str) -> list[str]:
    """The overrides that run a stand-in as the data set it stands in for: that data
    config's own ``eval_batch_size`` (conf/data/stl10.yaml sets 50 for 96x96 images)."""
    own = OmegaConf.load(ROOT / "conf" / "data" / f"{shape}.yaml").get("eval_batch_size")
    return [] if own is None else [f"data.eval_batch_size={own}"]


def run_once(
    npz: Path,
    shape: str,
    regime: str,
    fold: int,
    folds: int,
    epochs: int,
    sources: int,
    out: Path,
    threads: int | None,
    extra: list[str],
) -> tuple[dict, float]:
    """One run of ``train.py``; its summary.json and the launch's wall seconds."""
    root = out / f"{shape}-{regime}-fold{fold}"
    args = [
        sys.executable,
        str(ROOT / "train.py"),
        "data=custom",
        f"data.path={npz}",
        f"data.name={shape}_standin",
        *data_settings(shape),
        "task_name=protocol_benchmark",
        f"n_folds={folds}",
        f"fold={fold}",
        f"regime={regime}",
        f"trainer.max_epochs={epochs}",
        f"replay.n_images={sources}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"paths.root_dir={root}",
        *([f"cpu_threads={threads}"] if threads else []),
        *extra,
    ]
    root.mkdir(parents=True, exist_ok=True)
    # The run's output goes to a file as it comes, so a run stopped early still shows its
    # last stage there.
    log = root / "train.log"
    started = time.perf_counter()
    with log.open("w") as sink:
        result = subprocess.run(args, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchmarkError(
            f"train.py failed for {shape}/{regime} (exit {result.returncode}; "
            f"its whole output: {log}):\n" + log.read_text()[-3000:]
        )
    (summary,) = [
        json.loads(p.read_text())
        for p in root.rglob("summary.json")
        if (p.parent / "DONE").exists() and json.loads(p.read_text()).get("regime") == regime
    ]
    return summary, wall


def per_item(each: list[float] | None, total: float, measured: int, target: int) -> float:
    """Seconds for ``target`` epochs (or snapshots) from ``measured`` of them: with each one's
    seconds, the first as measured and the mean of the others for the rest, so that one-off
    costs of the first (a GPU's lazy kernel loading, caches warming) count once, not
    ``target / measured`` times; otherwise ``total`` scaled."""
    if each and len(each) == measured >= 2:
        return each[0] + (target - 1) * sum(each[1:]) / (measured - 1)
    return total * target / measured


def stages(summary: dict, wall: float, epochs: int, sources: int, target: dict) -> dict:
    """Seconds per stage of one run, scaled to ``target`` epochs and sources."""
    seconds = summary["seconds"]
    replay = summary["replay"]["seconds"]
    per_snapshot = summary.get("metrics_seconds_per_snapshot", {})
    by_snapshot = summary.get("metrics_seconds_by_snapshot", {})
    e = target["epochs"] / epochs
    s = target["sources"] / sources
    metric_total = sum(per_snapshot.values()) * epochs
    metrics = [m for m in METRICS if m in per_snapshot] + sorted(set(per_snapshot) - set(METRICS))
    row = {
        "train": per_item(seconds.get("train_epochs"), seconds["train"], epochs, target["epochs"]),
        "validate": seconds["validate"] * e,
        **{k.replace("craft_", "attack "): v * s for k, v in replay.items() if k != "replay"},
        "classify snapshots": (replay["replay"] - metric_total) * e,
        **{
            m: per_item(
                by_snapshot.get(m),
                per_snapshot.get(m, 0.0) * epochs,
                epochs,
                target["epochs"],
            )
            for m in metrics
        },
    }
    measured_parts = (
        seconds["train"]
        + seconds["validate"]
        + sum(v for k, v in replay.items() if k != "replay")
        + replay["replay"]
    )
    row["other (start-up, data, files)"] = max(0.0, wall - measured_parts)
    row["run"] = sum(row.values())
    row["metrics / training"] = sum(row[m] for m in metrics) / max(row["train"], 1e-9)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="cifar10,stl10")
    parser.add_argument("--regimes", default="normal,overfit")
    parser.add_argument("--epochs", type=int, default=35, help="the protocol's epochs")
    parser.add_argument("--sources", type=int, default=1000, help="the protocol's sources")
    parser.add_argument("--folds", type=int, default=5, help="folds per regime")
    parser.add_argument(
        "--run-folds", type=int, default=1, help="run folds 0..N-1 of each regime (default 1)"
    )
    parser.add_argument("--measure-epochs", type=int, default=None, help="train this many")
    parser.add_argument("--measure-sources", type=int, default=None, help="craft on this many")
    parser.add_argument("--train-size", type=int, default=None, help="default: the shape's")
    parser.add_argument("--test-size", type=int, default=None, help="default: the shape's")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, the cores split between them"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="cpu_threads per run (default: cores / jobs)"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "multirun" / "protocol_benchmark")
    parser.add_argument(
        "--set", action="append", default=[], help="an extra train.py override, repeatable"
    )
    args = parser.parse_args(argv)
    try:
        shapes = [s for s in args.shapes.split(",") if s]
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown or not shapes:
            raise BenchmarkError(
                f"--shapes={args.shapes!r}: accepted are {', '.join(SHAPES)} (comma-separated)"
            )
        regimes = [r for r in args.regimes.split(",") if r]
        for name in (
            "epochs",
            "sources",
            "folds",
            "run_folds",
            "jobs",
            "measure_epochs",
            "measure_sources",
        ):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise BenchmarkError(f"--{name.replace('_', '-')}={value}: must be >= 1")
        if args.run_folds > args.folds:
            raise BenchmarkError(
                f"--run-folds={args.run_folds}: a regime has {args.folds} folds (--folds); "
                f"accepted: 1 to {args.folds}"
            )
        try:  # train.py's own check of n_folds, before any stand-in is built
            check_folds(args.folds, 0)
        except ValueError as err:
            raise BenchmarkError(f"--folds={args.folds}: {err}") from err
        target = {"epochs": args.epochs, "sources": args.sources}
        epochs = args.measure_epochs or args.epochs
        sources = args.measure_sources or args.sources
        extrapolated = epochs != args.epochs or sources != args.sources
        npzs = {
            name: standin(
                SHAPES[name],
                args.train_size or SHAPES[name].n_train,
                args.test_size or SHAPES[name].n_test,
                args.data_dir,
                args.data_dir / "standins",
            )
            for name in shapes
        }
        threads = args.threads or threads_per_job(args.jobs)

        def one(name: str, regime: str, fold: int) -> dict:
            what = f"{name} / {regime} / fold {fold}"
            print(f"running {what}: {epochs} epochs, {sources} sources", flush=True)
            summary, wall = run_once(
                npzs[name],
                name,
                regime,
                fold,
                args.folds,
                epochs,
                sources,
                args.out,
                threads,
                args.set,
            )
            device = summary.get("device", "?")
            replayed_on = summary.get("replay", {}).get("device", device)
            row = {
                "shape": name,
                "regime": regime,
                "fold": fold,
                # Training's device, and the replay's where it differs.
                "device": device if replayed_on == device else f"{device} (replay {replayed_on})",
                **stages(summary, wall, epochs, sources, target),
            }
            # Each run's stages as it finishes, so a benchmark stopped early still tells.
            parts = ", ".join(
                f"{k} {v:,.1f}"
                for k, v in row.items()
                if k not in ("shape", "regime", "fold", "device", "run", "metrics / training")
            )
            each = summary["seconds"].get("train_epochs") or []
            measured = (
                f"; measured training epochs {', '.join(f'{t:.2f}' for t in each)} s"
                if each
                else ""
            )
            print(
                f"finished {what} on {row['device']} in {wall:,.0f} s "
                f"({row['run']:,.0f} s per run at the protocol's settings: {parts}{measured})",
                flush=True,
            )
            return row

        started = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            jobs = [(n, r, f) for n in shapes for r in regimes for f in range(args.run_folds)]
            rows = list(pool.map(lambda job: one(*job), jobs))
        wall = time.perf_counter() - started
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows).set_index(["shape", "regime", "fold"])
    # Jobs at once share the machine: each run's seconds are its own, under that sharing;
    # the folds not run are taken to cost what the ones run did.
    protocol = table["run"].sum() * args.folds / args.run_folds / args.jobs
    folds_run = "fold 0" if args.run_folds == 1 else f"folds 0-{args.run_folds - 1}"
    how = (
        f"extrapolated from {epochs} epochs and {sources} sources to {args.epochs} and "
        f"{args.sources}"
        if extrapolated
        else f"measured at {args.epochs} epochs and {args.sources} sources"
    )
    gpu = f"{torch.cuda.get_device_name()} GPU, " if torch.cuda.is_available() else "no GPU, "
    lines = [
        f"Protocol benchmark, {date.today()}, {gpu}{os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}; {args.jobs} job(s) at once with {threads} thread(s) "
        f"each; {folds_run} of each regime, {how}; this benchmark's wall time {wall:,.0f} s. "
        "Seconds per run:",
        "",
        table.reset_index().round(1).to_markdown(index=False),
        "",
        f"Whole protocol ({len(shapes)} data set(s) x {len(regimes)} regime(s) x "
        f"{args.folds} folds, {args.jobs} job(s) at once): "
        f"{protocol:,.0f} s = {protocol / 3600:.2f} h"
        + (" (extrapolated)" if extrapolated else ""),
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "protocol.csv")
    (args.out / "protocol.md").write_text(text + "\n")
    print(f"\ntable: {args.out / 'protocol.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
