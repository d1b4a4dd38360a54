"""Print what a sweep produced: one block per finished run, its epochs as a table, then
where each unfinished run stands.

python -m advfit.summarize multirun/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from advfit.rundir import RunDir
from advfit.sweep import not_learned_line, read_manifest


def finished_runs(sweep: Path) -> list[RunDir]:
    return [RunDir(p.parent) for p in sorted(Path(sweep).rglob("DONE"))]


def where_unfinished(sweep: Path) -> list[str]:
    """One line per run of the sweep without ``DONE`` (running, or stopped: a relaunch resumes
    it): the epochs it has trained of how many, or that it has not started. The runs are those
    of the sweep's ``sweep.json`` (written at launch; it names the runs not started yet) and
    every run directory holding an ``epochs.csv``."""
    started = {p.parent for p in Path(sweep).rglob("epochs.csv")}
    manifest = read_manifest(sweep)
    listed = [Path(sweep) / name for name in manifest[1]] if manifest else []
    dirs = listed + sorted(started - set(listed))
    lines = []
    for path in dirs:
        run = RunDir(path)
        if run.is_done():
            continue
        if not run.epochs_csv.is_file():
            lines.append(f"  {path.name}: not started")
            continue
        try:
            trained = len(pd.read_csv(run.epochs_csv))
        except (OSError, ValueError):
            lines.append(f"  {path.name}: epochs.csv unreadable")
            continue
        config = run.read_config() if run.config.is_file() else {}
        epochs = (config.get("trainer") or {}).get("max_epochs")
        of = f" of {epochs}" if epochs else ""
        replaying = ", replay not finished" if epochs and trained >= int(epochs) else ""
        lines.append(f"  {path.name}: {trained}{of} epochs trained{replaying}")
    return lines


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
        unfinished = where_unfinished(sweep)
        for run in runs:
            summary = run.read_summary()
            best = summary.get("best_epoch")
            epochs = run.read_epochs().set_index("epoch")
            # The attacks were crafted on the best epoch's snapshot: its ASR is their white-box
            # success there, every other row a replay.
            epochs.index = [f"{e}*" if e == best else str(e) for e in epochs.index]
            epochs.index.name = "epoch"
            print(f"\n== {run.root}  (best epoch {best}, marked *: the attacks were crafted there)")
            learned = summary.get("learned") or {}
            if learned.get("learned") is False:
                print(f"did not learn: {learned.get('reason')}")
            # "-": not scored at that epoch (metrics.every_k), not a failure.
            print(epochs.round(3).to_string(na_rep="-"))
        total += len(runs)
        print(f"\n{len(runs)} finished run(s) under {sweep.resolve()}", end="")
        print(f"; {len(unfinished)} unfinished:" if unfinished else "")
        for line in unfinished:
            print(line)
        if (line := not_learned_line(run.root for run in runs)) is not None:
            print(line)
    return 0 if total else 1


if __name__ == "__main__":
    sys.exit(main())
