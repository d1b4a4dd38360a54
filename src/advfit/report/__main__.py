"""Draw the paper's figures, tables and a verdict from one or more sweeps.

python -m advfit.report multirun/demo [more sweeps...] [--out DIR] [--only fig3,tables]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from advfit.cli import Interrupted, stops_on_signals
from advfit.errors import ConfigError
from advfit.report.build import build
from advfit.report.collect import ReportError
from advfit.report.figures import FIGURES
from advfit.report.verdict import THRESHOLD_HELP, Thresholds
from advfit.tracking.mode import WANDB_MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: <first sweep>/report")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated: {', '.join(FIGURES)}, tables"
    )
    parser.add_argument(
        "--wandb",
        default="auto",
        choices=WANDB_MODES,
        help="log a `report` W&B run: auto = when the sweep's runs logged to W&B, in their "
        "mode; disabled = never (default: %(default)s)",
    )
    defaults = Thresholds()
    for name, value in vars(defaults).items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(value),
            default=value,
            help=f"{THRESHOLD_HELP[name]} (default: %(default)s)",
        )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    thresholds = Thresholds(**{k: getattr(args, k) for k in vars(defaults)})
    only = set(args.only.split(",")) if args.only else None
    out = args.out or args.sweeps[0] / "report"
    try:
        thresholds.rule()
        with stops_on_signals():
            report = build(args.sweeps, out, only, thresholds, args.wandb)
    except (ReportError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"stopped by {stop}: {out} is as it was before", file=sys.stderr)
        return 128 + stop.signum
    verdict_md = report.parent / "verdict.md"
    if verdict_md.is_file():
        print("\nVerdict (means over folds with 95% intervals):\n")
        print(verdict_md.read_text())
    print(f"report: {report.resolve()}")
    print(f"report: {report.with_suffix('.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
