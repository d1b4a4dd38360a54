"""Keras's defaults or PyTorch's: what the choice does to the study, 5 folds x 2 regimes each.

``keras``: Glorot-uniform kernels, zero biases, Adam eps 1e-7 (the paper's framework);
``torch``: PyTorch's initialisation, Adam eps 1e-8. Two settings, each swept with
``train.py -m`` (two jobs at once, one thread each):

- ``demo``: the demo (``experiment=demo``: Fashion-MNIST, 1,200 training images, its regimes);
- ``cifar10``: the protocol benchmark's CIFAR-10-sized stand-in (Fashion-MNIST padded to
  1x32x32, benchmarks.protocol), a 5,000 / 1,000 image subset, the paper's regimes and 35
  epochs, FGSM and PGD on 200 sources, no metrics.

Per setting, choice and regime: runs that did not learn (advfit.learning), the normal
regime's validation accuracy at the last epoch, the overfitting regime's best epoch and
validation drop after it, and the pooled FGSM/PGD L2 distances.

    python -m benchmarks.init_choice [--settings demo,cifar10] [--out /tmp/init_choice]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from advfit.config import CONF_DIR
from advfit.learning import LearningRule
from advfit.report.collect import collect, judge_learning, pooled_distances
from benchmarks.protocol import SHAPES, standin

ROOT = CONF_DIR.parent
CHOICES = {
    "keras": ["model.net.init=keras", "model.optimizer.eps=1e-7"],
    "torch": ["model.net.init=torch", "model.optimizer.eps=1e-8"],
}


def sweep_args(setting: str, data_dir: Path, cache: Path) -> list[str]:
    if setting == "demo":
        return ["experiment=demo"]
    npz = standin(SHAPES["cifar10"], 50_000, 10_000, data_dir, cache)
    return [
        "regime=normal,overfit",
        "fold=0-4",
        "data=custom",
        f"data.path={npz}",
        "data.name=cifar10_standin",
        "data.train_subset=5000",
        "data.test_subset=1000",
        "trainer.max_epochs=35",
        "attack=[fgsm,pgd]",
        "replay.n_images=200",
        "metrics=none",
        "hydra/launcher=parallel",
    ]


def run(setting: str, choice: str, out: Path, data_dir: Path, cache: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *sweep_args(setting, data_dir, cache),
            *CHOICES[choice],
            "hydra.launcher.n_jobs=2",
            "cpu_threads=1",
            "logger=none",
            f"task_name={setting}_{choice}",
            f"paths.root_dir={out}",
            f"paths.data_dir={data_dir}",
        ],
        check=True,
        cwd=out,
    )
    return time.perf_counter() - started


def table(setting: str, choice: str, out: Path) -> list[dict]:
    sweep = collect([out / "multirun" / f"{setting}_{choice}"])
    judge_learning(sweep.runs, LearningRule())
    rows = []
    for (_dataset, regime, *_), runs in sweep.groups().items():
        dead = [r for r in runs if r.not_learned]
        learned = [r for r in runs if not r.not_learned] or runs
        row = {
            "setting": setting,
            "choice": choice,
            "regime": regime,
            "not learned": f"{len(dead)} of {len(runs)}",
        }
        last = [float(r.epochs["val_acc"].iloc[-1]) for r in learned]
        best = [int(r.summary["best_epoch"]) for r in learned]
        drop = [
            float(r.epochs.set_index("epoch").loc[b, "val_acc"] - r.epochs["val_acc"].iloc[-1])
            for r, b in zip(learned, best, strict=True)
        ]
        row["val acc, last epoch"] = (
            f"{statistics.mean(last):.3f} [{min(last):.3f}-{max(last):.3f}]"
        )
        row["best epoch"] = f"{statistics.mean(best):.1f} [{min(best)}-{max(best)}]"
        row["val drop after best"] = f"{statistics.mean(drop):.3f}"
        distances = pooled_distances(learned).set_index("attack")
        for attack in ("fgsm", "pgd"):
            if attack in distances.index:
                d = distances.loc[attack]
                row[f"{attack.upper()} L2"] = f"{d['l2_mean']:.3f} ± {d['l2_std']:.3f}"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="demo,cifar10")
    parser.add_argument("--out", type=Path, default=Path("/tmp/init_choice"))
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], {}
    for setting in args.settings.split(","):
        for choice in CHOICES:  # one after the other: each sweep has both cores
            seconds[(setting, choice)] = run(
                setting, choice, args.out, args.data_dir, args.out / "cache"
            )
            rows += table(setting, choice, args.out)
    print(pd.DataFrame(rows).to_markdown(index=False))
    for (setting, choice), s in seconds.items():
        print(f"{setting}, {choice}: {s / 60:.1f} min")


if __name__ == "__main__":
    main()
