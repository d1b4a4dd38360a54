"""The paper's figures as a saved W&B workspace, defined as code with ``wandb-workspaces``.

python -m advfit.tracking.dashboard --entity E --project P [--task NAME] [--attacks fgsm,pgd,cw]
python -m advfit.tracking.dashboard --dry-run [--out spec.json]   # the spec only, no network

One section per pair of the paper's figures (the normal and overfitting regimes are the
groups of one panel), built from the report's own figure list (:data:`FIGURES`), so a figure
added there appears here too. Every line plot: x = ``epoch``, runs grouped by their W&B
group (the folds of one configuration), the mean line with a one-std band across folds. A
last section holds the distance tables and the example pictures of each attack.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from urllib.parse import urlparse

from advfit.errors import first_line
from advfit.report.figures import FIGURES, Figure
from advfit.rundir import GIVEN_CORRECT
from advfit.tracking.mode import wandb_logged_in
from advfit.tracking.replay import ATTACK_SUMMARY_KEYS
from advfit.tracking.runs import EVALUATE_JOB, REPORT_JOB

#: The paper's attacks (conf/train.yaml's default ``attack`` list).
PAPER_ATTACKS = ("fgsm", "pgd", "cw")
#: Runs that are not training folds: their rows would double-count in a group's mean.
OTHER_JOB_TYPES = (EVALUATE_JOB, REPORT_JOB)


class DashboardError(Exception):
    """A dashboard that cannot be built or saved; the message says why and what to do."""


def series(figure: Figure, attacks: tuple[str, ...]) -> dict[str, str]:
    """The W&B keys a figure plots (the epochs.csv columns) with their labels."""
    asr = [c for a in attacks for c in (f"asr_{a}", f"asr_{a}{GIVEN_CORRECT}")]
    return figure.labels(["test_acc", *asr, *(figure.series or {})])


def sections_of_figures(attacks: tuple[str, ...]) -> list[tuple[str, Figure, dict[str, str]]]:
    """The figures paired by what they plot (Figures 3 and 7, 4 and 8, ...): one section each,
    named after its figures and series."""
    paired: dict[tuple, list[Figure]] = {}
    for figure in FIGURES.values():
        key = (tuple(series(figure, attacks).items()), figure.ylabel)
        paired.setdefault(key, []).append(figure)
    out = []
    for (items, _), figures in paired.items():
        numbers = [f.name[3:] for f in figures if f.name[3:].isdigit()]
        regimes = [f.regime for f in figures if f.name[3:].isdigit()]
        labels = dict(items)
        what = (
            "test accuracy and ASR per attack"
            if figures[0].series is None
            else ", ".join(labels.values())
        )
        if numbers:
            named = " and ".join(f"{n} ({r})" for n, r in zip(numbers, regimes, strict=True))
            title = f"Figure{'s' if len(numbers) > 1 else ''} {named}: {what}"
        else:
            title = ", ".join(f.caption for f in figures)
        out.append((title, figures[0], labels))
    return out


def workspace(
    entity: str,
    project: str,
    task: str | None = None,
    attacks: tuple[str, ...] = PAPER_ATTACKS,
    name: str | None = None,
):
    """The workspace: a ``wandb_workspaces.workspaces.Workspace``, not yet saved."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    def line(column: str, label: str, ylabel: str):
        return wr.LinePlot(
            title=label,
            x="epoch",
            y=[column],
            title_x="epoch",
            title_y=ylabel,
            groupby="Group",
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
            smoothing_type="none",
        )

    on_epoch = ws.SectionPanelSettings(x_axis="epoch", smoothing_type="none")
    sections = [
        ws.Section(
            name=title,
            panels=[line(column, label, figure.ylabel) for column, label in labels.items()],
            is_open=True,
            panel_settings=on_epoch,
        )
        for title, figure, labels in sections_of_figures(attacks)
    ]
    sections.append(
        ws.Section(
            name="Distances (Tables 2-5) and adversarial examples at the best epoch",
            panels=[
                wr.WeavePanelSummaryTable(table_name="distances"),
                *(
                    wr.MediaBrowser(
                        title=f"{attack.upper()}: clean | adversarial | amplified perturbation",
                        media_keys=[f"examples/{attack}"],
                        num_columns=2,
                    )
                    for attack in attacks
                ),
            ],
            is_open=True,
        )
    )
    filters = " and ".join(
        [f"Metric('JobType') != '{job}'" for job in OTHER_JOB_TYPES]
        + ([f"Tags() in ['{task}']"] if task else [])
    )
    headline = ["summary:best_epoch", "summary:learned"] + [
        f"summary:{attack}/{key}" for attack in attacks for key in ATTACK_SUMMARY_KEYS
    ]
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name or (f"advfit: {task}" if task else "advfit: the paper's figures"),
        sections=sections,
        settings=ws.WorkspaceSettings(x_axis="epoch", smoothing_type="none", max_runs=100),
        runset_settings=ws.RunsetSettings(
            filters=filters,
            groupby=[expr.Metric("Group")],
            pinned_columns=headline,
        ),
    )


def spec(workspace) -> dict:
    """The JSON spec W&B stores for a workspace (what ``save()`` uploads)."""
    model = workspace._to_model()  # the library's own serialisation, used by save()
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def reachable(timeout: float) -> str:
    """The W&B host in use; a DashboardError when it does not answer within ``timeout``."""
    url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return url
    except OSError as err:
        raise DashboardError(
            f"W&B at {url} cannot be reached ({err}); use --dry-run to write the spec offline"
        ) from None


def save(board, timeout: float) -> None:
    """Upload the workspace; any failure (authentication, network) is one line."""
    os.environ.setdefault("WANDB_HTTP_TIMEOUT", str(max(1, int(timeout))))
    try:
        board.save()
    except Exception as err:  # wandb raises many types: auth, HTTP, GraphQL
        raise DashboardError(f"W&B did not save the workspace: {first_line(err)}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", help="W&B entity (user or team) that owns the project")
    parser.add_argument("--project", help="W&B project the runs log to (logger.wandb.project)")
    parser.add_argument("--task", default=None, help="only runs tagged with this task_name")
    parser.add_argument(
        "--attacks",
        default=",".join(PAPER_ATTACKS),
        help="comma-separated attacks to plot (default: %(default)s)",
    )
    parser.add_argument("--name", default=None, help="the workspace's name")
    parser.add_argument("--dry-run", action="store_true", help="write the JSON spec, no network")
    parser.add_argument("--out", default="-", help="where --dry-run writes the spec (- = stdout)")
    parser.add_argument("--timeout", type=float, default=10, help="seconds to wait for W&B")
    args = parser.parse_args(argv)
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    try:
        if not attacks:
            raise DashboardError(f"--attacks={args.attacks!r} names no attack")
        if not args.dry_run:
            missing = [f"--{k}" for k in ("entity", "project") if not getattr(args, k)]
            if missing:
                raise DashboardError(
                    f"{' and '.join(missing)} required to save a workspace "
                    "(or --dry-run to write its spec)"
                )
            if not wandb_logged_in():
                raise DashboardError(
                    "not logged in to W&B: run `wandb login` (or set WANDB_API_KEY), "
                    "or use --dry-run to write the spec"
                )
            reachable(args.timeout)
        board = workspace(
            args.entity or "ENTITY", args.project or "advfit", args.task, attacks, args.name
        )
        if args.dry_run:
            text = json.dumps(spec(board), indent=1)
            if args.out == "-":
                print(text)
            else:
                with open(args.out, "w") as handle:
                    handle.write(text + "\n")
                print(f"workspace spec: {args.out}", file=sys.stderr)
            return 0
        save(board, args.timeout)
        print(f"workspace: {board.url}")
        return 0
    except DashboardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(
            f"error: {err}; install the dashboard extra: pip install -e '.[dashboard]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
