"""Draw the paper's figures, tables and a verdict from one or more sweeps.

python -m advfit.report multirun/demo [more sweeps...] [--out DIR] [--only fig3,tables]
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from advfit.report.collect import ReportError, aggregate, collect, pooled_distances
from advfit.report.figures import FIGURES, draw
from advfit.report.verdict import Thresholds, verdict

log = logging.getLogger("advfit.report")


def panel_title(key: tuple, group_keys: list[str]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in zip(group_keys, key[2:], strict=True))
    return f"{key[0]}" + (f" ({extra})" if extra else "")


def fmt(mean: float, std: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def build(paths: list[Path], out: Path, only: set[str] | None, thresholds: Thresholds) -> Path:
    sweep = collect(paths)
    groups = sweep.groups()
    out.mkdir(parents=True, exist_ok=True)

    def wanted(name: str) -> bool:
        return only is None or name in only

    tables = {key: aggregate(runs) for key, runs in groups.items()}
    for key, table in tables.items():
        name = "_".join(str(part).replace("/", "-") for part in key)
        table.to_csv(out / f"epochs_{name}.csv")

    figures = []
    for name, figure in FIGURES.items():
        if not wanted(name):
            continue
        panels = {
            panel_title(k, sweep.group_keys) + ("" if figure.regime else f", {k[1]}"): t
            for k, t in tables.items()
            if figure.regime in (None, k[1])
        }
        if draw(figure, panels, out) is not None:
            figures.append(figure)

    distance_rows, verdict_rows = [], []
    for key, runs in groups.items():
        for row in pooled_distances(runs).to_dict("records"):
            distance_rows.append(
                {"dataset": panel_title(key, sweep.group_keys), "regime": key[1], **row}
            )
        for row in verdict(key[1], runs, thresholds).to_dict("records"):
            verdict_rows.append(
                {
                    "dataset": panel_title(key, sweep.group_keys),
                    "regime": key[1],
                    "folds": len(runs),
                    **row,
                }
            )
    distances = pd.DataFrame(distance_rows)
    verdicts = pd.DataFrame(verdict_rows)
    if wanted("tables") and not distances.empty:
        distances.to_csv(out / "distances.csv", index=False)
        shown = distances.assign(
            L0=[fmt(m, s) for m, s in zip(distances.l0_mean, distances.l0_std, strict=True)],
            L2=[fmt(m, s) for m, s in zip(distances.l2_mean, distances.l2_std, strict=True)],
            Linf=[fmt(m, s) for m, s in zip(distances.linf_mean, distances.linf_std, strict=True)],
        )[["dataset", "regime", "attack", "folds", "n", "n_fooled", "L0", "L2", "Linf"]]
        (out / "distances.md").write_text(shown.to_markdown(index=False) + "\n")
        (out / "distances.tex").write_text(shown.to_latex(index=False))
    if not verdicts.empty:
        verdicts.to_csv(out / "verdict.csv", index=False)

    report = out / "report.md"
    lines = [
        "# advfit report",
        "",
        f"Sweeps: {', '.join(str(Path(p).resolve()) for p in paths)}",
        f"Finished runs: {len(sweep.runs)}; left out (no DONE): {len(sweep.unfinished)}",
        f"Groups split by: dataset, regime{''.join(', ' + k for k in sweep.group_keys)}",
        "",
        "## Verdict",
        "",
        f"Spearman rho between test accuracy and ASR from epoch {thresholds.first_epoch} on, "
        "mean over folds; ASR change from the best epoch to the last.",
        "",
        verdicts.drop(columns=["claim"]).to_markdown(index=False, floatfmt=".3f")
        if not verdicts.empty
        else "(none)",
        "",
        *[
            f"- {r['dataset']}, {r['regime']}, {r['attack']}: **{r['holds']}** — {r['claim']}"
            for r in verdict_rows
        ],
        "",
        "## Distances (Tables 2-5)",
        "",
        (out / "distances.md").read_text() if (out / "distances.md").is_file() else "(none)",
        "",
        "## Figures",
        "",
        *[f"![{f.caption}]({f.name}.png)" for f in figures],
        "",
        "## Runs",
        "",
        pd.DataFrame(
            [
                {
                    "run": str(r.root),
                    "seed": r.summary.get("seed"),
                    "fold": r.fold,
                    "lr": r.summary.get("lr"),
                    "best_epoch": r.summary.get("best_epoch"),
                    "torch": r.summary.get("versions", {}).get("torch"),
                    "advertorch": r.summary.get("versions", {}).get("advertorch"),
                }
                for r in sweep.runs
            ]
        ).to_markdown(index=False),
        "",
        "## Configs",
        "",
        "The resolved config of the first run of each group (its folds differ in `fold` only).",
        "",
    ]
    for key, runs in groups.items():
        config = OmegaConf.to_yaml(OmegaConf.create(runs[0].config)).rstrip()
        title = f"### {panel_title(key, sweep.group_keys)}, {key[1]}"
        lines += [title, "", "```yaml", config, "```", ""]
    report.write_text("\n".join(lines))
    write_html(out, lines)
    return report


def write_html(out: Path, lines: list[str]) -> None:
    """A self-contained page: the report's text, and every figure embedded as PNG."""
    body, code = [], None
    for line in lines:
        if line.startswith("```"):
            if code is None:
                code = []
            else:
                body.append(f"<pre>{html.escape(chr(10).join(code))}</pre>")
                code = None
            continue
        if code is not None:
            code.append(line)
        elif line.startswith("!["):
            alt, path = line[2:-1].split("](")
            data = base64.b64encode((out / path).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            body.append(f"<pre>{html.escape(line)}</pre>")
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>advfit report</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}</style>"
        + "\n".join(body)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: <first sweep>/report")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated: {', '.join(FIGURES)}, tables"
    )
    defaults = Thresholds()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    thresholds = Thresholds(**{k: getattr(args, k) for k in vars(defaults)})
    only = set(args.only.split(",")) if args.only else None
    try:
        report = build(args.sweeps, args.out or args.sweeps[0] / "report", only, thresholds)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
