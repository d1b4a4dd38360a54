"""Runs that did not learn: the rule, the verdict and curves that leave them out, one-class
snapshots, and a real run that cannot learn reported end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from advfit.errors import ConfigError
from advfit.learning import LearningRule, chance_band, not_learned
from advfit.replay.classify import classify
from advfit.report.__main__ import main as report
from advfit.rundir import RunDir
from advfit.summarize import main as summarize
from tests.conftest import TINY_RUN, run_cli
from tests.test_report import curves, fold_curves, hand_interval, write_run

LN10 = math.log(10)


def dead_curves(epochs: int = 12) -> pd.DataFrame:
    """A fold that never learned, as met on CIFAR-10: training loss at ln 10, validation
    accuracy 0.102-0.106, test accuracy alternating 0.090/0.108, ASR jumping 0/1."""
    e = np.arange(1, epochs + 1)
    frame = curves(
        e,
        val=0.102 + 0.004 * (e % 2),
        test=np.where(e % 2 == 0, 0.090, 0.108),
        asr=(e % 2).astype(float),
    )
    return frame.assign(train_loss=LN10 + 0.0008 * np.sin(e), train_acc=0.1)


def record_learning(run: RunDir, n_classes: int = 10, n_val: int = 1000) -> None:
    """What train() records in summary.json for the report to judge the run by."""
    summary = json.loads(run.summary_json.read_text())
    summary["learned"] = {"n_classes": n_classes, "n_val": n_val}
    run.summary_json.write_text(json.dumps(summary))
    if run.is_done():
        run.mark_done()  # DONE vouches for summary.json's contents


def test_the_chance_band_is_the_upper_end_of_guessings_95_percent_interval():
    assert chance_band(10, 1000) == stats.binom.ppf(0.975, 1000, 0.1) / 1000 == 0.119
    assert chance_band(2, 100) == stats.binom.ppf(0.975, 100, 0.5) / 100 == 0.6


def test_the_rule_names_a_dead_run_and_passes_a_learning_one():
    reason = not_learned(dead_curves(), 10, 1000)
    assert reason.startswith("validation accuracy <= 0.106, chance band up to 0.119")
    learning = fold_curves("overfit", [0.0])[0]  # validation accuracy 0.55..0.7
    assert not_learned(learning, 10, 1000) is None
    # A margin above the band: 0.7 is not enough above 0.119 + 0.6.
    assert "+ 0.6" in not_learned(learning, 10, 1000, LearningRule(margin=0.6))
    # The loss rule alone: validation accuracy above the band, training loss at ln 10 throughout.
    flat = learning.assign(train_loss=LN10 + 0.005)
    assert "within 0.01 of ln 10 = 2.3026" in not_learned(flat, 10, 1000)
    assert not_learned(flat, 10, 1000, LearningRule(loss_tolerance=0.001)) is None


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--learned-margin", "-0.1", "learned margin=-0.1 is invalid"),
        ("--learned-loss-tolerance", "0", "learned loss tolerance=0.0 is invalid"),
        ("--learned-loss-tolerance", "nan", "learned loss tolerance=nan is invalid"),
    ],
)
def test_rule_thresholds_out_of_range_exit_2(tmp_path, capsys, option, value, message):
    for fold, frame in enumerate(fold_curves("overfit", [0.0, 0.0])):
        write_run(tmp_path, "cifar10", "overfit", fold, frame)
    assert report([str(tmp_path), option, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "report").exists()
    with pytest.raises(ConfigError):
        LearningRule(**{option[len("--learned-") :].replace("-", "_"): float(value)})


def test_a_dead_fold_is_left_out_of_the_verdict_the_curves_and_the_tables(tmp_path):
    slopes = [-0.02, -0.01, -0.015, -0.02, -0.01]
    frames = fold_curves("overfit", slopes)
    frames[0] = dead_curves()
    runs = [write_run(tmp_path, "cifar10", "overfit", f, frame) for f, frame in enumerate(frames)]
    for run in runs:
        record_learning(run)
    assert report([str(tmp_path), "--wandb", "disabled"]) == 0
    out = tmp_path / "report"

    # The verdict over folds 1-4 alone, by hand: the ASR change after the best epoch (4).
    changes = []
    for run in runs[1:]:
        e = run.read_epochs().query("epoch > 4")
        changes.append(stats.linregress(e["epoch"], e["asr_fgsm"]).slope * 7)
    mean, low, high = hand_interval(changes)
    row = pd.read_csv(out / "verdict.csv").iloc[0]
    assert (row["asr_change_after_best"], row["asr_change_low"], row["asr_change_high"]) == (
        pytest.approx((mean, low, high))
    )
    assert (row["folds"], row["folds_learned"], row["folds_not_learned"]) == (5, 4, 1)
    assert row["folds_agreeing"] == "4 of 4 folds" and row["verdict"] == "holds"
    assert (
        "left out: fold 0 did not learn (validation accuracy <= 0.106, chance band up to "
        "0.119" in row["reasons"]
    )

    # The per-fold table keeps fold 0's numbers, marked, agreeing with nothing.
    folds = pd.read_csv(out / "verdict_folds.csv")
    dead = folds[folds["fold"] == 0].iloc[0]
    assert dead["not_learned"].startswith("validation accuracy <= 0.106") and pd.isna(
        dead["agrees"]
    )
    md = (out / "report.md").read_text()
    assert "left out: did not learn (validation accuracy <= 0.106" in md
    assert "1 of 5 runs did not learn and are left out" in md
    assert "| no: validation accuracy <= 0.106" in md  # the runs table

    # The mean curves: folds 1-4 only.
    means = pd.read_csv(out / "epochs_cifar10_overfit.csv", header=[0, 1], index_col=0)
    n_folds = means[[c for c in means.columns if c[0] == "n_folds"]].to_numpy()
    assert (n_folds == 4).all()
    curve = means["mean"]["val_acc"].to_numpy()
    by_hand = np.mean([r.read_epochs()["val_acc"].to_numpy() for r in runs[1:]], axis=0)
    np.testing.assert_allclose(curve, by_hand)


def test_a_group_left_with_one_learning_fold_is_undetermined_for_that_reason(tmp_path):
    frames = fold_curves("overfit", [-0.02, -0.01, -0.015])
    frames[0] = frames[2] = dead_curves()
    for fold, frame in enumerate(frames):
        record_learning(write_run(tmp_path, "cifar10", "overfit", fold, frame))
    assert report([str(tmp_path), "--wandb", "disabled"]) == 0
    row = pd.read_csv(tmp_path / "report" / "verdict.csv").iloc[0]
    assert row["verdict"] == "undetermined"
    assert row["reasons"].startswith("1 of 3 folds learned: the verdict needs at least 2")
    assert "fold 0 did not learn" in row["reasons"] and "fold 2 did not learn" in row["reasons"]


class OneClass(nn.Module):
    """Predicts class 3 for every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10)
        logits[:, 3] = 1.0
        return logits


def test_a_snapshot_that_predicts_one_class_has_no_asr():
    from advfit.replay.crafting import AdversarialSet

    x = torch.rand(20, 1, 8, 8)
    y = torch.arange(20) % 10
    adv = AdversarialSet.__new__(AdversarialSet)
    adv.x_adv, adv.labels = torch.rand(5, 1, 8, 8), torch.tensor([3, 3, 1, 2, 4])
    adv.indices = torch.tensor([3, 13, 1, 2, 4])  # sources of those labels
    row = classify(OneClass(), x, y, {"fgsm": adv}, batch_size=8)
    assert row["test_acc"] == pytest.approx(0.1)  # the images of class 3
    assert math.isnan(row["asr_fgsm"])  # not 0.4 (the adversarials not labelled 3)
    assert math.isnan(row["asr_fgsm_given_correct"]) and row["n_correct_fgsm"] == 2


@pytest.mark.slow
def test_a_real_run_that_cannot_learn_is_reported_as_not_learned(tmp_path, fmnist_dir, capsys):
    result = run_cli(
        "train.py",
        "-m",
        *TINY_RUN,
        "regime.lr=10",
        "task_name=diverged",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    (run,) = [p for p in (tmp_path / "multirun" / "diverged").iterdir() if p.is_dir()]
    assert f"{run.name} did not learn: validation accuracy <=" in output  # the job's line
    # ... and the sweep's, as it ends.
    assert f"1 of 1 runs did not learn: {run.name} (validation accuracy <=" in output
    learned = json.loads((run / "summary.json").read_text())["learned"]
    assert learned["learned"] is False and learned["n_classes"] == 10
    # 500 images in 5 folds: 100 validation images, chance band up to 0.16.
    assert learned["n_val"] == 100 and learned["chance_band"] == 0.16
    assert learned["reason"].startswith("validation accuracy <= ")
    epochs = pd.read_csv(run / "epochs.csv")
    assert epochs["val_acc"].max() <= 0.16
    summarize([str(tmp_path / "multirun" / "diverged")])
    printed = capsys.readouterr().out
    assert f"1 of 1 runs did not learn: {run.name}" in printed


def test_a_run_of_an_earlier_version_is_judged_for_learning_after_the_fact(tmp_path):
    """Its summary.json predates the learned record: its epochs.csv is judged with the
    classes of its data (CIFAR-10: 10) and the validation fold its saved config's subset and
    fold count leave (1,200 / 5 = 240 images), and the report says so."""
    import yaml

    frames = fold_curves("overfit", [-0.02, -0.01, -0.015, -0.02])
    frames[0] = dead_curves()
    for fold, frame in enumerate(frames):
        run = write_run(tmp_path, "cifar10", "overfit", fold, frame)
        config = yaml.safe_load(run.config.read_text())
        config["data"]["train_subset"], config["n_folds"] = 1200, 5
        run.config.write_text(yaml.safe_dump(config))
        run.mark_done()
        assert "learned" not in json.loads(run.summary_json.read_text())
    assert report([str(tmp_path), "--wandb", "disabled"]) == 0
    row = pd.read_csv(tmp_path / "report" / "verdict.csv").iloc[0]
    assert (row["folds_learned"], row["folds_not_learned"]) == (3, 1)
    band = chance_band(10, 240)
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"chance band up to {band:.3f} (10 classes, 240 validation images); judged after " in md
