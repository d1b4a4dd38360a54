"""The report, from run directories the test writes with known numbers."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from advfit.report.__main__ import main
from advfit.report.collect import ReportError, aggregate, collect, pooled_distances
from advfit.report.verdict import Thresholds, claim_of, verdict
from advfit.rundir import RunDir
from tests import zygote


def write_run(
    root: Path,
    dataset: str,
    regime: str,
    fold: int,
    epochs: pd.DataFrame,
    distances: pd.DataFrame | None = None,
    done: bool = True,
    lr: float = 0.001,
    machine: dict | None = None,
) -> RunDir:
    run = RunDir(root / f"{dataset}-{regime}-fold{fold}-seed0")
    run.config.parent.mkdir(parents=True)
    run.config.write_text(
        f"data:\n  name: {dataset}\nregime:\n  name: {regime}\n  lr: {lr}\nfold: {fold}\nseed: 0\n"
    )
    run.write_epochs(epochs)
    if distances is not None:
        distances.to_csv(run.distances_csv, index=False)
    best = int(epochs.loc[epochs["val_acc"].idxmax(), "epoch"])
    run.summary_json.write_text(
        json.dumps(
            {
                "dataset": dataset,
                "regime": regime,
                "fold": fold,
                "seed": 0,
                "lr": lr,
                "best_epoch": best,
                "versions": {"torch": "x"},
                **({"machine": machine} if machine is not None else {}),
            }
        )
    )
    if done:
        run.mark_done()
    return run


def trend(regime: str, fold: int, reverse: bool = False) -> pd.DataFrame:
    """10 epochs following the paper's trend (or its reverse), a little fold noise."""
    e = np.arange(1, 11)
    noise = 0.01 * fold
    if regime == "normal":
        test = 0.3 + 0.05 * e + noise
        asr = 0.2 + 0.06 * e if not reverse else 0.9 - 0.06 * e
        val = test
    else:
        val = np.where(e <= 4, 0.5 + 0.05 * e, 0.7 - 0.03 * (e - 4)) + noise
        test = val
        asr = (
            np.where(e <= 4, 0.8, 0.8 - 0.02 * (e - 4))
            if not reverse
            else np.where(e <= 4, 0.5, 0.5 + 0.05 * (e - 4))
        )
    return curves(e, val, test, asr).assign(loss_sensitivity=0.1 * e)


def curves(e: np.ndarray, val: np.ndarray, test: np.ndarray, asr: np.ndarray) -> pd.DataFrame:
    """An epochs.csv of one fold: training accuracy rising, the given curves."""
    return pd.DataFrame(
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_acc": 0.5 + 0.04 * e,
            "val_loss": 1 - val,
            "val_acc": val,
            "test_acc": test,
            "asr_fgsm": asr,
        }
    )


def distances(n_fooled: int, l2_mean: float, l2_std: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "attack": "fgsm",
                "n": 100,
                "n_fooled": n_fooled,
                "l0_mean": 700.0,
                "l0_std": 10.0,
                "l2_mean": l2_mean,
                "l2_std": l2_std,
                "linf_mean": 0.3,
                "linf_std": 0.0,
                "l0_elements_mean": 700.0,
                "l0_elements_std": 10.0,
            }
        ]
    )


@pytest.fixture
def sweep(tmp_path):
    for regime in ("normal", "overfit"):
        for fold in (0, 1, 2):
            write_run(
                tmp_path,
                "cifar10",
                regime,
                fold,
                trend(regime, fold),
                distances(50 + 10 * fold, 8 + fold, 0.5),
            )
    write_run(tmp_path, "cifar10", "normal", 3, trend("normal", 3), done=False)
    return tmp_path


def test_aggregates_equal_hand_computed_values(sweep):
    s = collect([sweep])
    assert len(s.runs) == 6 and len(s.unfinished) == 1 and s.group_keys == []
    runs = s.groups()[("cifar10", "normal")]
    table = aggregate(runs)
    values = [0.3 + 0.05 * 3 + 0.01 * f for f in (0, 1, 2)]
    assert table.loc[3, ("mean", "test_acc")] == pytest.approx(np.mean(values))
    assert table.loc[3, ("std", "test_acc")] == pytest.approx(np.std(values, ddof=1))
    assert table.loc[3, "n_folds"] == 3


def test_pooled_distances_are_exact_over_all_examples(sweep):
    runs = collect([sweep]).groups()[("cifar10", "normal")]
    row = pooled_distances(runs).iloc[0]
    # Rebuild every example: fold f has 50+10f examples with mean 8+f and std 0.5.
    examples = np.concatenate(
        [8 + f + 0.5 * np.resize([1.0, -1.0], 50 + 10 * f) for f in (0, 1, 2)]
    )
    assert row["n_fooled"] == 180 and row["folds"] == 3
    assert row["l2_mean"] == pytest.approx(examples.mean())
    assert row["l2_std"] == pytest.approx(examples.std(), rel=1e-6)


def test_verdict_holds_on_the_papers_trend_and_not_on_its_reverse(tmp_path):
    t = Thresholds()
    for reverse, expected in ((False, "holds"), (True, "does not hold")):
        root = tmp_path / str(reverse)
        runs = {
            r: [write_run(root, "stl10", r, f, trend(r, f, reverse)) for f in (0, 1)]
            for r in ("normal", "overfit")
        }
        s = collect([root])
        for (_, regime), group in s.groups().items():
            row = verdict(claim_of(group)[0], group, t).iloc[0]
            assert row["verdict"] == expected, (regime, row["reasons"])
        assert len(s.groups()) == 2 and all(len(v) == 2 for v in runs.values())


def test_report_end_to_end_writes_figures_tables_and_verdict(sweep):
    assert main([str(sweep), "--out", str(sweep / "out")]) == 0
    out = sweep / "out"
    for number in (3, 4, 6, 7, 8, 10):
        assert (out / f"fig{number}.png").stat().st_size > 5000 and (
            out / f"fig{number}.pdf"
        ).is_file()
    assert not (out / "fig5.png").exists()  # no CLEVER column: no panel, no figure
    text = (out / "report.md").read_text()
    assert "left out (no DONE): 1" in text
    # The fixture follows the paper's trend in both regimes.
    assert "- cifar10, normal, fgsm (paper's ASR): holds: ASR rises with test accuracy" in text
    assert (
        "- cifar10, overfit, fgsm (paper's ASR): holds: the runs overfit: validation accuracy "
        "falls" in text
    )
    assert (
        "| **holds** |" in text and "*Figure 4. Progression in the no-overfitting regime.*" in text
    )
    # (50 x 8 + 60 x 9 + 70 x 10) / 180 = 9.11, pooled std 0.95 (see the test above).
    table = (out / "distances.md").read_text()
    assert "| 700.00 ± 10.00 | 9.11 ± 0.95 | 0.30 ± 0.00 |" in table
    assert "\\begin{tabular}" in (out / "distances.tex").read_text()
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "## Configs" in text and "lr: 0.001" in text


def test_figure_panels_and_error_bars(sweep):
    import matplotlib.pyplot as plt

    from advfit.report.figures import draw

    s = collect([sweep])
    tables = {k[0]: aggregate(r) for k, r in s.groups().items() if k[1] == "normal"}
    tables["one fold"] = aggregate(s.groups()[("cifar10", "normal")][:1])
    fig = draw(4, tables, sweep / "figs")
    axes = fig.axes
    assert len(axes) == 2 and [a.get_title() for a in axes] == [
        "cifar10 (3 folds)",
        "one fold (1 fold)",
    ]
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == [
        "test accuracy",
        "ASR FGSM (paper's)",
    ]
    assert axes[0].collections and not axes[1].collections  # error bars only with folds > 1
    # The caption stands beside the image (report, W&B), not in it as well.
    assert fig._suptitle is None and not fig.texts
    plt.close("all")


def test_bad_input(tmp_path):
    assert main([str(tmp_path)]) == 2
    with pytest.raises(ReportError, match="no finished run directories"):
        collect([tmp_path])
    run = write_run(tmp_path, "cifar10", "normal", 0, trend("normal", 0))
    run.epochs_csv.write_text("garbage\n")
    with pytest.raises(ReportError, match=r"epochs.csv changed after the run finished"):
        collect([tmp_path])
    run.mark_done()  # a run whose DONE vouches for a malformed file (a bug, or a hand edit)
    with pytest.raises(ReportError, match=r"epochs.csv is malformed: it lacks the columns"):
        collect([tmp_path])


def fold_curves(regime: str, slopes: list[float]) -> list[pd.DataFrame]:
    """Per-fold curves whose ASR follows test accuracy with the fold's ``slope`` plus a fixed
    wiggle, so each fold has its own Spearman rho (normal regime), or whose ASR moves by
    ``slope`` per epoch after the best epoch, 4 (overfit regime)."""
    e = np.arange(1, 13)
    frames = []
    for fold, slope in enumerate(slopes):
        wiggle = 0.04 * np.sin(e * (fold + 1.3))
        if regime == "normal":
            val = test = 0.3 + 0.04 * e
            asr = 0.5 + slope * (e - 6) + wiggle
        else:
            val = test = np.where(e <= 4, 0.5 + 0.05 * e, 0.7 - 0.02 * (e - 4))
            asr = np.where(e <= 4, 0.6, 0.6 + slope * (e - 4)) + 0.2 * wiggle
        frames.append(curves(e, val, test, asr))
    return frames


def hand_interval(values: list[float]) -> tuple[float, float, float]:
    from scipy.stats import t

    x = np.asarray(values)
    half = t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


@pytest.mark.parametrize(
    ("slopes", "expected", "agreeing"),
    [
        ([0.05, 0.04, 0.06, 0.05, 0.03], "holds", "5 of 5 folds"),
        ([0.05, -0.04, 0.06, -0.05, 0.01], "undetermined", None),
        ([-0.05, -0.04, -0.06, -0.05, -0.03], "does not hold", "0 of 5 folds"),
    ],
)
def test_normal_regime_verdict_reads_the_interval_over_folds(tmp_path, slopes, expected, agreeing):
    from scipy.stats import spearmanr

    runs = [
        write_run(tmp_path, "cifar10", "normal", f, frame)
        for f, frame in enumerate(fold_curves("normal", slopes))
    ]
    t = Thresholds()
    row = verdict("generalization", collect([tmp_path]).groups()[("cifar10", "normal")], t).iloc[0]
    rhos = []
    for run in runs:
        # From epoch 5 on; the best epoch, 12 (validation accuracy rises throughout), is where
        # the attacks were crafted: its ASR is white-box and is left out.
        e = run.read_epochs().query("epoch >= 5 and epoch != 12")
        rhos.append(spearmanr(e["test_acc"], e["asr_fgsm"]).statistic)
    mean, low, high = hand_interval(rhos)
    low, high = max(low, -1.0), min(high, 1.0)  # rho lies in [-1, 1]
    assert (row["rho_mean"], row["rho_low"], row["rho_high"]) == pytest.approx((mean, low, high))
    assert row["verdict"] == expected
    assert ("folds would decide it" in row["reasons"]) == (expected == "undetermined")
    n_agree = sum(r >= t.min_rho for r in rhos)
    assert row["folds_agreeing"] == (agreeing or f"{n_agree} of 5 folds")
    assert expected != "undetermined" or low < t.min_rho < high


@pytest.mark.parametrize(
    ("slopes", "expected"),
    [
        ([-0.02, -0.01, -0.015, -0.02, -0.01], "holds"),
        ([0.03, 0.02, 0.04, 0.03, 0.025], "does not hold"),
        ([0.03, -0.03, 0.02, -0.02, 0.0], "undetermined"),
    ],
)
def test_overfit_regime_verdict_reads_the_interval_of_the_asr_change(tmp_path, slopes, expected):
    from scipy.stats import linregress

    runs = [
        write_run(tmp_path, "cifar10", "overfit", f, frame)
        for f, frame in enumerate(fold_curves("overfit", slopes))
    ]
    row = verdict("overfitting", collect([tmp_path]).groups()[("cifar10", "overfit")], Thresholds())
    row = row.iloc[0]
    changes = []
    for run in runs:
        # Best epoch 4: the line through epochs 5..12, its slope times their span (7 epochs).
        e = run.read_epochs().query("epoch > 4")
        changes.append(linregress(e["epoch"], e["asr_fgsm"]).slope * 7)
    mean, low, high = hand_interval(changes)
    assert (row["asr_change_after_best"], row["asr_change_low"], row["asr_change_high"]) == (
        pytest.approx((mean, low, high))
    )
    assert row["verdict"] == expected, row["reasons"]
    assert ("folds would decide it" in row["reasons"]) == (expected == "undetermined")


@pytest.mark.parametrize("regime", ["normal", "overfit"])
def test_the_best_epochs_white_box_asr_enters_no_statistic(tmp_path, regime):
    """The attacks are crafted on the best epoch, so its ASR is theirs against that very
    snapshot. Counted, it would make the normal claim hold on an ASR that does not follow test
    accuracy (the best epoch is the most accurate one) and keep the overfit claim from ever
    failing (no replay reaches it). Whatever it is, the verdict is the same."""
    slopes = (
        [0.0, 0.01, -0.01, 0.005, -0.005]
        if regime == "normal"
        else [-0.003, -0.002, -0.003, -0.002, -0.003]
    )
    best = 12 if regime == "normal" else 4
    rows = []
    for spike in (1.0, 0.0):
        root = tmp_path / str(spike)
        for f, frame in enumerate(fold_curves(regime, slopes)):
            frame.loc[frame["epoch"] == best, "asr_fgsm"] = spike
            write_run(root, "cifar10", regime, f, frame)
        group = collect([root]).groups()[("cifar10", regime)]
        rows.append(verdict(claim_of(group)[0], group, Thresholds()))
    pd.testing.assert_frame_equal(rows[0], rows[1])
    row = rows[0].iloc[0]
    if regime == "normal":  # flat ASR: rho near 0, whatever the white-box spike
        assert row["verdict"] != "holds" and abs(row["rho_mean"]) < 0.5
    else:  # ASR flat after a white-box 1.0: no change, not a 0.4 fall
        assert abs(row["asr_change_after_best"]) < 0.05 and row["verdict"] == "holds", row[
            "reasons"
        ]


@pytest.mark.parametrize(("loss_rises", "expected"), [(True, "holds"), (False, "undetermined")])
def test_overfitting_is_read_from_validation_loss_when_accuracy_plateaus(
    tmp_path, loss_rises, expected
):
    """Validation accuracy peaks at epoch 6 and then stays within 0.005 of it; validation
    loss is least at epoch 6 and then rises (or stays flat); ASR falls after the best epoch."""
    e = np.arange(1, 13)
    rises = []
    for fold, (wobble, steepness) in enumerate([(0.001, 0.08), (0.002, 0.1), (0.0, 0.12)]):
        val = np.where(e <= 6, 0.5 + 0.05 * e, 0.8 - 0.004 - wobble)
        val[5] = 0.8
        loss = np.where(e <= 6, 1.5 - 0.15 * e, 0.6 + (steepness * (e - 6) if loss_rises else 0))
        frame = curves(e, val, val, np.where(e <= 6, 0.9, 0.9 - 0.02 * (e - 6)))
        write_run(tmp_path, "cifar10", "overfit", fold, frame.assign(val_loss=loss))
        rises.append(loss[-1] / loss.min() - 1)
    row = verdict("overfitting", collect([tmp_path]).groups()[("cifar10", "overfit")], Thresholds())
    row = row.iloc[0]
    assert row["val_loss_rise"] == pytest.approx(np.mean(rises))
    assert row["verdict"] == expected, row["reasons"]
    if loss_rises:
        mean, low, high = hand_interval(rises)
        assert f"validation loss ends {mean:+.3f} [{low:+.3f}, {high:+.3f}] above" in row["reasons"]
    else:
        assert (
            "not clearly more than 0.01" in row["reasons"]
            and "do not clearly overfit" in (row["reasons"])
        )


def test_two_epochs_or_one_fold_are_undetermined_with_the_reason(tmp_path):
    write_run(tmp_path, "cifar10", "normal", 0, trend("normal", 0))
    row = verdict(
        "generalization", collect([tmp_path]).groups()[("cifar10", "normal")], Thresholds()
    )
    assert row.iloc[0]["verdict"] == "undetermined"
    assert "in at least 2 folds; 1 fold(s) have them" in row.iloc[0]["reasons"]


def test_a_best_epoch_next_to_last_leaves_no_asr_change_to_read(tmp_path):
    """Overfit runs whose best epoch is the last but one: one epoch after it, no line."""
    e = np.arange(1, 13)
    for fold in range(3):
        val = np.where(e <= 11, 0.5 + 0.03 * e, 0.7) + 0.01 * fold  # best epoch 11
        write_run(tmp_path, "cifar10", "overfit", fold, curves(e, val, val, 0.8 - 0.01 * e))
    row = verdict("overfitting", collect([tmp_path]).groups()[("cifar10", "overfit")], Thresholds())
    row = row.iloc[0]
    assert row["verdict"] == "undetermined" and np.isnan(row["asr_change_after_best"])
    assert "0 fold(s) have at least 2 epochs after the best" in row["reasons"]


def test_the_report_starts_without_lightning_or_torch():
    """`make figures` redraws in seconds: the report logs no training, so it must not pay for
    importing Lightning (about 6 s) or torch."""
    code = "import sys, advfit.report.__main__; print(sorted({'pytorch_lightning', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_small_floats_keep_their_digits_in_both_renderings(tmp_path):
    """A learning rate such as the normal regime's 1e-5 is shown as such in the runs table of
    report.md and report.html, not rounded to 0 (3 decimals)."""
    for fold, lr in enumerate((1e-5, 0.0001, 0.0024)):
        write_run(tmp_path, "cifar10", "normal", fold, trend("normal", fold), lr=lr)
    assert main([str(tmp_path), "--out", str(tmp_path / "out"), "--wandb", "disabled"]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    page = (tmp_path / "out" / "report.html").read_text()
    rows = [line for line in md.splitlines() if "cifar10-normal-fold" in line and "](" in line]
    assert [row.split("|")[4].strip() for row in rows] == ["1e-05", "0.0001", "0.0024"]
    for shown in ("<td>1e-05</td>", "<td>0.0001</td>", "<td>0.0024</td>"):
        assert shown in page
    # Floats from 0.01 on keep three decimals, unparsed by the Markdown table writer.
    from advfit.report.markup import Table, to_markdown

    text = to_markdown([Table(pd.DataFrame({"x": [0.5, 0.0, 12.3456]}))])
    assert text.splitlines()[:5] == [
        "|      x |",
        "|-------:|",
        "|  0.500 |",
        "|  0.000 |",
        "| 12.346 |",
    ]


def test_a_metric_scored_every_kth_snapshot_is_drawn_as_one_joined_line(tmp_path):
    """metrics.every_k leaves NaN between the scored epochs; the figure's line joins the
    scored epochs (a NaN would break it into separate dots)."""
    import matplotlib.pyplot as plt

    from advfit.report.figures import draw

    for fold in (0, 1):
        epochs = trend("normal", fold)
        epochs["loss_sensitivity"] = np.where(
            epochs["epoch"] % 5 == 0, epochs["epoch"] / 10, np.nan
        )
        write_run(tmp_path, "cifar10", "normal", fold, epochs)
    runs = collect([tmp_path]).groups()[("cifar10", "normal")]
    fig = draw(6, {"cifar10": aggregate(runs)}, tmp_path / "figs")
    line = fig.axes[0].containers[0].lines[0]  # the errorbar's data line
    assert list(line.get_xdata()) == [5, 10] and list(line.get_ydata()) == [0.5, 1.0]
    plt.close("all")


def test_the_report_lists_what_each_fold_gives_the_verdict(tmp_path):
    """Per fold, the ASR change after the best epoch against a hand fit (scipy), the best
    epoch, and whether the fold agrees; the same rows in verdict_folds.csv and report.md."""
    from scipy.stats import linregress

    slopes = [0.03, -0.03, 0.02, -0.02, 0.0]
    runs = [
        write_run(tmp_path, "cifar10", "overfit", f, frame)
        for f, frame in enumerate(fold_curves("overfit", slopes))
    ]
    assert main([str(tmp_path), "--out", str(tmp_path / "out"), "--wandb", "disabled"]) == 0
    folds = pd.read_csv(tmp_path / "out" / "verdict_folds.csv")
    assert folds["fold"].tolist() == [0, 1, 2, 3, 4] and (folds["best_epoch"] == 4).all()
    changes = []
    for run in runs:
        e = run.read_epochs().query("epoch > 4")
        changes.append(linregress(e["epoch"], e["asr_fgsm"]).slope * 7)
    assert folds["asr_change"].to_numpy() == pytest.approx(changes)
    assert folds["agrees"].tolist() == [c <= 0.02 for c in changes]
    # Validation accuracy falls by 0.02 an epoch over the 8 epochs after the best.
    assert folds["val_drop"].to_numpy() == pytest.approx([0.16] * 5)
    text = (tmp_path / "out" / "report.md").read_text()
    header = next(line for line in text.splitlines() if "| reads " in line)
    assert [c.strip() for c in header.strip("|").split("|")][-2:] == ["reads", "fgsm"]
    rows = [
        line for line in text.splitlines() if line.startswith("| cifar10 ") and "| ASR " in line
    ]
    marks = ["✗", "✓", "✗", "✓", "✓"]
    assert [r.strip("|").split("|")[-1].strip() for r in rows] == [
        f"{c:+.3f} {m}" for c, m in zip(changes, marks, strict=True)
    ]


@pytest.mark.parametrize("grayscale", [True, False])
def test_the_papers_distance_tables_stand_beside_comparable_groups(tmp_path, grayscale):
    """Grayscale CIFAR-10 runs get the paper's Tables 2 and 4 beside their own distances; RGB
    runs (not what the paper measured) get none."""
    for regime in ("normal", "overfit"):
        for fold in (0, 1):
            run = write_run(
                tmp_path, "cifar10", regime, fold, trend(regime, fold), distances(50, 8.9, 0.5)
            )
            text = run.config.read_text()
            run.config.write_text(text.replace("data:\n", f"data:\n  grayscale: {grayscale}\n"))
            run.mark_done()  # as a run of that config would have finished
    assert main([str(tmp_path), "--out", str(tmp_path / "out"), "--wandb", "disabled"]) == 0
    table = (tmp_path / "out" / "distances.md").read_text()
    frame = pd.read_csv(tmp_path / "out" / "distances.csv")
    if grayscale:
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
        assert rows[0][-3:] == ["paper L0", "paper L2", "paper Linf"]
        # Ours, then the paper's Table 2 (normal) and Table 4 (overfit).
        assert rows[2][-4:] == ["0.30 ± 0.00", "1017.92 ± 25.30", "8.93 ± 0.48", "0.30 ± 0.00"]
        assert rows[3][-4:] == ["0.30 ± 0.00", "1017.19 ± 27.86", "8.64 ± 0.52", "0.30 ± 0.00"]
        assert frame["paper_l2_mean"].tolist() == [8.93, 8.64]
        assert "'paper': the paper's Tables 2-5" in (tmp_path / "out" / "report.md").read_text()
    else:
        assert "paper" not in table and "paper_l2_mean" not in frame


def test_an_undetermined_row_says_how_many_folds_would_decide_it():
    """The fewest folds whose t interval, at the folds' mean and spread, clears the threshold:
    checked against the interval's half-width at that count and one fewer."""
    import re

    from scipy.stats import t as student

    from advfit.report.intervals import folds_to_decide

    values = [-0.002, 0.023, 0.010, 0.035, -0.001]  # the demo's overfit FGSM changes
    said = folds_to_decide(values, 0.02)
    n = int(re.search(r"about (\d+) folds", said).group(1))
    x = np.asarray(values)
    gap, s = abs(x.mean() - 0.02), x.std(ddof=1)
    assert student.ppf(0.975, n - 1) * s / np.sqrt(n) < gap
    assert student.ppf(0.975, n - 2) * s / np.sqrt(n - 1) >= gap
    assert 20 <= n <= 26
    assert "no number of folds" in folds_to_decide([0.01, 0.03], 0.02)
    assert "more than 1000" in folds_to_decide([0.0, 0.04, 0.019, 0.022], 0.0205)


def test_the_runs_table_says_where_each_run_was_computed(tmp_path):
    """Each run's machine (its GPU on a GPU, else its processor; runs of earlier versions
    "not recorded") in the runs table of report.md and report.html, and the count per machine
    above it: a verdict near its threshold can change with the machine."""
    gpu = {"processor": "AMD EPYC 7R13", "gpu": "NVIDIA H200"}
    for fold, machine in enumerate((gpu, gpu, {"processor": "Intel(R) Xeon(R) CPU"}, None)):
        write_run(tmp_path, "cifar10", "normal", fold, trend("normal", fold), machine=machine)
    assert main([str(tmp_path), "--out", str(tmp_path / "out"), "--wandb", "disabled"]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    page = (tmp_path / "out" / "report.html").read_text()
    assert (
        "Computed on: NVIDIA H200 (2 runs); Intel(R) Xeon(R) CPU (1 run); not recorded (1 run)."
        in md
    )
    header = next(line for line in md.splitlines() if line.startswith("| run"))
    column = [c.strip() for c in header.split("|")].index("machine")
    rows = [line for line in md.splitlines() if "cifar10-normal-fold" in line and "](" in line]
    assert [row.split("|")[column].strip() for row in rows] == [
        "NVIDIA H200",
        "NVIDIA H200",
        "Intel(R) Xeon(R) CPU",
        "not recorded",
    ]
    assert "<td>NVIDIA H200</td>" in page and "Computed on: NVIDIA H200 (2 runs)" in page


def test_ctrl_c_during_the_report_leaves_the_previous_one_whole(sweep):
    """The report is drawn into a draft folder beside --out and swapped in at the end: SIGINT
    while it draws exits 130 with one line and leaves the previous report as it was."""
    import hashlib
    import signal
    import time

    assert main([str(sweep), "--wandb", "disabled"]) == 0
    out = sweep / "report"

    def files() -> dict[str, str]:
        return {
            p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }

    before = files()
    assert "report.md" in before and "fig3.png" in before
    job = zygote.popen(
        [sys.executable, "-m", "advfit.report", str(sweep), "--wandb", "disabled"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(sweep.glob(".report.draft-*/*.png")):
        assert job.poll() is None and time.monotonic() < deadline, "the report ended first"
        time.sleep(0.005)
    job.send_signal(signal.SIGINT)
    stdout, stderr = job.communicate(timeout=60)
    assert job.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"stopped by SIGINT: {out} is as it was before"]
    assert files() == before and not list(sweep.glob(".report.*"))


def test_make_report_finds_the_sweep_under_advfit_root(tmp_path):
    """The Makefile reads sweeps where the configs write them: $ADVFIT_ROOT/multirun."""
    import os

    from tests.conftest import ROOT

    sweep = tmp_path / "multirun" / "mine"
    for fold in (0, 1):
        write_run(sweep, "cifar10", "overfit", fold, trend("overfit", fold))
    venv = Path(sys.prefix)
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), f"--assume-old={venv / '.installed'}", "report",
         f"VENV={venv}", "ARGS="],
        capture_output=True,
        text=True,
        env={**os.environ, "ADVFIT_ROOT": str(tmp_path), "WANDB_MODE": "disabled"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (sweep / "report" / "report.md").is_file()
    assert f"report: {sweep.resolve() / 'report' / 'report.md'}" in result.stdout


def test_the_reports_help_explains_every_threshold(capsys):
    from dataclasses import fields

    from advfit.report.verdict import THRESHOLD_HELP

    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    said = " ".join(capsys.readouterr().out.split())
    for f in fields(Thresholds):
        assert f"--{f.name.replace('_', '-')}" in said
        assert " ".join(THRESHOLD_HELP[f.name].replace("%%", "%").split()[:6]) in said, f.name
