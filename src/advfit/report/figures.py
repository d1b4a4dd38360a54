"""The paper's figures from aggregated runs: means as lines, one std as vertical bars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from advfit.identity import EARLIER_CLAIMS, Claim  # noqa: E402
from advfit.rundir import GIVEN_CORRECT  # noqa: E402

GENERALIZATION, OVERFITTING, ROBUST_OVERFITTING = (c.value for c in Claim)

TRAINING = {"train_acc": "train accuracy", "val_acc": "validation accuracy"}
SENSITIVITY = {
    "loss_sensitivity": "loss sensitivity",
    "empirical_robustness": "empirical robustness",
}


@dataclass(frozen=True)
class Figure:
    """One figure of the report: a panel per group, a line per series, x = epoch.

    Args:
        name: its file stem and ``--only`` key; ``fig<N>`` names the paper's Figure N.
        title: the caption.
        series: epochs.csv column -> legend label; None draws test accuracy and every ASR.
        ylabel: the y-axis label.
        claim: draw the groups judged by this claim only (``regime.claim``: the paper's
            normal regime is ``generalization``, its overfitting one ``overfitting``); None
            draws every group.
        attacks: draw every attack's ASR after ``series``.
    """

    name: str
    title: str
    series: dict[str, str] | None
    ylabel: str
    claim: str | None = None
    attacks: bool = False

    @property
    def regime(self) -> str:
        """The paper's name of the regime this figure draws ("" for every group)."""
        return {v: k for k, v in EARLIER_CLAIMS.items()}.get(self.claim, "")

    @property
    def caption(self) -> str:
        number = self.name[3:] if self.name.startswith("fig") else ""
        return f"Figure {number}. {self.title}" if number.isdigit() else self.title

    def labels(self, columns) -> dict[str, str]:
        """The series this figure draws from ``columns`` (epochs.csv column names), with
        their legend labels; the report's figures and the W&B dashboard both read it."""
        series = self.series
        if series is None:  # test accuracy and every attack's ASR
            series = {"test_acc": "test accuracy"}
        if self.series is None or self.attacks:
            # Figures 4 and 8 (series None) draw each attack's ASR both ways: the paper's,
            # and among the sources the snapshot classifies correctly (dashed).
            series = {**series, **asr_labels(columns, conditional=self.series is None)}
        return {c: label for c, label in series.items() if c in columns}

    def series_for(self, table: pd.DataFrame) -> dict[str, str]:
        """The series this aggregated table can draw (columns present and not all NaN)."""
        means = table["mean"]
        drawn = {
            c: label for c, label in self.labels(means.columns).items() if means[c].notna().any()
        }
        own = set(self.series or {}) - {"test_acc"}
        if self.attacks and not own & set(drawn):  # the ASRs alone are Figures 4 and 8
            return {}
        return drawn


def asr_labels(columns, conditional: bool) -> dict[str, str]:
    """The ASR columns among ``columns`` with their legend labels; the conditional ones
    (``asr_<attack>_given_correct``) only when ``conditional``."""
    out = {}
    for c in columns:
        if not c.startswith("asr_"):
            continue
        if c.endswith(GIVEN_CORRECT):
            if conditional:
                out[c] = f"ASR {c[4 : -len(GIVEN_CORRECT)].upper()}, among correct sources"
        else:
            out[c] = f"ASR {c[4:].upper()} (paper's)" if conditional else f"ASR {c[4:].upper()}"
    return out


#: How every figure reads; the report prints it above the figures and W&B adds it to each
#: figure's caption (the images carry no title).
KEY = (
    "Lines: mean across folds; bars: one std; dotted verticals: each fold's best epoch, "
    "where the attacks were crafted; dashed: an attack's ASR among the sources the snapshot "
    "classifies correctly, beside the paper's ASR in the same colour."
)


#: Every figure of the report, by name. A new figure is one more entry (see the README,
#: "Extending advfit").
FIGURES: dict[str, Figure] = {
    f.name: f
    for f in [
        Figure(
            "fig3", "Training progress for normal training.", TRAINING, "accuracy", GENERALIZATION
        ),
        Figure(
            "fig4",
            "Progression in the no-overfitting regime.",
            None,
            "accuracy / ASR",
            GENERALIZATION,
        ),
        Figure(
            "fig5",
            "CLEVER metrics without overfitting.",
            {"clever": "CLEVER"},
            "CLEVER score",
            GENERALIZATION,
        ),
        Figure(
            "fig6",
            "Adversarial metrics without overfitting.",
            SENSITIVITY,
            "value",
            GENERALIZATION,
        ),
        Figure(
            "fig7", "Training curve for the overfitting regime.", TRAINING, "accuracy", OVERFITTING
        ),
        Figure(
            "fig8",
            "Attack Success Rate vs Test Accuracy in overfitting regime.",
            None,
            "accuracy / ASR",
            OVERFITTING,
        ),
        Figure(
            "fig9",
            "CLEVER metrics with overfitting.",
            {"clever": "CLEVER"},
            "CLEVER score",
            OVERFITTING,
        ),
        Figure(
            "fig10",
            "Adversarial metrics with overfitting.",
            SENSITIVITY,
            "value",
            OVERFITTING,
        ),
        Figure(
            "adversarial_training",
            "Adversarial training: training accuracy (on PGD examples), and validation accuracy "
            "clean and on PGD examples (robust).",
            {
                "train_acc": "train accuracy (PGD examples)",
                "val_acc": "validation accuracy",
                "val_robust_acc": "robust validation accuracy",
            },
            "accuracy",
            ROBUST_OVERFITTING,
        ),
        Figure(
            "robustness",
            "Each snapshot's white-box robust accuracy (APGD-CE crafted on that snapshot) "
            "beside the replay's ASR (the best epoch's adversarials).",
            {"test_acc": "test accuracy", "robust_accuracy": "robust accuracy (APGD-CE)"},
            "accuracy / ASR",
            attacks=True,
        ),
    ]
}


def draw(
    figure: Figure | str | int,
    panels: dict[str, pd.DataFrame],
    out: Path,
    best_epochs: dict[str, list[int]] | None = None,
) -> plt.Figure | None:
    """``figure`` (a :class:`Figure`, its name, or the paper's number) with one panel per
    group; None when nothing is drawable.

    ``panels`` maps a panel title (dataset, and regime or swept keys) to its aggregated
    table; ``best_epochs`` each panel's best epochs (one per fold, where the attacks were
    crafted), drawn as dotted verticals. Writes ``<name>.png`` and ``.pdf`` under ``out``.
    """
    if not isinstance(figure, Figure):
        figure = FIGURES[figure if isinstance(figure, str) else f"fig{figure}"]
    drawable = {title: t for title, t in panels.items() if figure.series_for(t)}
    if not drawable:
        return None
    fig, axes = plt.subplots(1, len(drawable), figsize=(5 * len(drawable), 3.8), squeeze=False)
    for ax, (panel, table) in zip(axes[0], drawable.items(), strict=True):
        folds = int(table["n_folds"].max())
        colours: dict[str, str] = {}
        for column, label in figure.series_for(table).items():
            # Epochs a series has no value at (metrics scored every k-th snapshot) are left
            # out, so that the line joins the scored epochs instead of breaking at each gap.
            scored = table["mean"][column].notna()
            mean, std = table["mean"][column][scored], table["std"][column][scored]
            paper = column.removesuffix(GIVEN_CORRECT)
            drawn = ax.errorbar(
                mean.index,
                mean,
                yerr=None if folds < 2 else std,
                label=label,
                capsize=2,
                marker=".",
                color=colours.get(paper) if paper != column else None,
                linestyle="--" if paper != column else "-",
            )
            colours.setdefault(column, drawn.lines[0].get_color())
        for i, epoch in enumerate((best_epochs or {}).get(panel, [])):
            label = "best epoch (per fold)" if i == 0 else None
            ax.axvline(epoch, color="grey", linestyle=":", linewidth=1.2, label=label)
        ax.set_title(f"{panel} ({folds} fold{'s' if folds != 1 else ''})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(figure.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    # No title in the image: its caption and key stand beside it (the report's figcaption,
    # W&B's caption), as in a paper; a title here repeated them in report.html.
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"{figure.name}.{suffix}", dpi=110)
    plt.close(fig)
    return fig
