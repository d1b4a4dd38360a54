"""The paper's figures from aggregated runs: means as lines, one std as vertical bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

#: figure number -> (regime, title, series: column -> label)
FIGURES = {
    3: (
        "normal",
        "Training curves, normal regime",
        {"train_acc": "train accuracy", "val_acc": "validation accuracy"},
    ),
    7: (
        "overfit",
        "Training curves, overfitting regime",
        {"train_acc": "train accuracy", "val_acc": "validation accuracy"},
    ),
    4: ("normal", "Test accuracy and ASR, normal regime", None),
    8: ("overfit", "Test accuracy and ASR, overfitting regime", None),
    5: ("normal", "CLEVER, normal regime", {"clever": "CLEVER"}),
    9: ("overfit", "CLEVER, overfitting regime", {"clever": "CLEVER"}),
    6: (
        "normal",
        "Loss sensitivity and empirical robustness, normal regime",
        {"loss_sensitivity": "loss sensitivity", "empirical_robustness": "empirical robustness"},
    ),
    10: (
        "overfit",
        "Loss sensitivity and empirical robustness, overfitting regime",
        {"loss_sensitivity": "loss sensitivity", "empirical_robustness": "empirical robustness"},
    ),
}


def series_for(number: int, table: pd.DataFrame) -> dict[str, str]:
    _, _, series = FIGURES[number]
    if series is None:  # test accuracy and every attack's ASR
        means = table["mean"].columns
        series = {
            "test_acc": "test accuracy",
            **{c: f"ASR {c[4:].upper()}" for c in means if c.startswith("asr_")},
        }
    return {
        c: label
        for c, label in series.items()
        if c in table["mean"].columns and table["mean"][c].notna().any()
    }


def draw(number: int, panels: dict[str, pd.DataFrame], out: Path) -> plt.Figure | None:
    """Figure ``number`` with one panel per group of its regime; None when nothing to draw.

    ``panels`` maps a panel title (dataset and any swept keys) to its aggregated table.
    Writes ``fig<number>.png`` and ``.pdf`` under ``out``.
    """
    drawable = {title: t for title, t in panels.items() if series_for(number, t)}
    if not drawable:
        return None
    _, title, _ = FIGURES[number]
    fig, axes = plt.subplots(1, len(drawable), figsize=(5 * len(drawable), 3.8), squeeze=False)
    for ax, (panel, table) in zip(axes[0], drawable.items(), strict=True):
        folds = int(table["n_folds"].max())
        for column, label in series_for(number, table).items():
            mean, std = table["mean"][column], table["std"][column]
            ax.errorbar(
                table.index,
                mean,
                yerr=None if folds < 2 else std,
                label=label,
                capsize=2,
                marker=".",
            )
        ax.set_title(f"{panel} ({folds} fold{'s' if folds != 1 else ''})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(
            "value"
            if number in (6, 10)
            else ("CLEVER score" if number in (5, 9) else "accuracy / ASR")
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure {number}. {title}\nlines: mean across folds; bars: one std", fontsize=9)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"fig{number}.{suffix}", dpi=110)
    plt.close(fig)
    return fig
