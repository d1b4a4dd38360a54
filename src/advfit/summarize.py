"""Print what a sweep produced: one block per finished run, its epochs as a table.

python -m advfit.summarize multirun/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from advfit.rundir import RunDir


def finished_runs(sweep: Path) -> list[RunDir]:
    return [RunDir(p.parent) for p in sorted(Path(sweep).rglob("DONE"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep or run directories")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    total = 0
    for sweep in args.sweeps:
        if not sweep.exists():
            print(f"error: {sweep} does not exist", file=sys.stderr)
            return 2
        runs = finished_runs(sweep)
        unfinished = [
            p.parent for p in sweep.rglob("epochs.csv") if not (p.parent / "DONE").exists()
        ]
        for run in runs:
            best = run.read_summary().get("best_epoch")
            epochs = run.read_epochs().set_index("epoch")
            # The attacks were crafted on the best epoch's snapshot: its ASR is their white-box
            # success there, every other row a replay.
            epochs.index = [f"{e}*" if e == best else str(e) for e in epochs.index]
            epochs.index.name = "epoch"
            print(f"\n== {run.root}  (best epoch {best}, marked *: the attacks were crafted there)")
            print(epochs.round(3).to_string())
        total += len(runs)
        print(f"\n{len(runs)} finished run(s) under {sweep.resolve()}", end="")
        print(f"; {len(unfinished)} unfinished" if unfinished else "")
    return 0 if total else 1


if __name__ == "__main__":
    sys.exit(main())
