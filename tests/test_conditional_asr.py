"""The ASR among the sources a snapshot classifies correctly, beside the paper's ASR: per
snapshot (advfit.replay.classify), and in the verdict (a companion row per claim)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from advfit.replay.classify import MIN_CORRECT, classify
from advfit.replay.crafting import AdversarialSet
from advfit.report.collect import collect
from advfit.report.verdict import CONDITIONAL, PAPERS, Thresholds, early_gap, survival, verdict
from tests.test_report import fold_curves, hand_interval, write_run


class Table(nn.Module):
    """A 'snapshot' whose prediction for an image is looked up by the image's one value (its
    id, float images pass ``predict`` unchanged): every prediction is chosen by the test."""

    def __init__(self, predictions: dict[int, int], classes: int = 10) -> None:
        super().__init__()
        self.predictions, self.classes = predictions, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = torch.round(x.flatten(1)[:, 0]).long().tolist()
        chosen = torch.tensor([self.predictions[i] for i in ids])
        return nn.functional.one_hot(chosen, self.classes).float()


def ids(values) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.float32).view(-1, 1, 1, 1)


def replay_one(clean: list[int], adversarial: list[int], y: torch.Tensor, sources: list[int]):
    """classify() of a Table snapshot predicting ``clean`` on the test images (ids 0..) and
    ``adversarial`` on the sources' adversarials (ids 10000..)."""
    net = Table({**dict(enumerate(clean)), **{10000 + j: p for j, p in enumerate(adversarial)}})
    adv = AdversarialSet(
        "pgd", ids(10000 + j for j in range(len(sources))), torch.tensor(sources), y[sources], 1
    )
    return classify(net, ids(range(len(clean))), y, {"pgd": adv}, batch_size=7)


def test_conditional_asr_and_its_count_equal_a_hand_count():
    """60 test images; the sources are images 0..39. The snapshot gets image i right unless
    i % 3 == 0, and misclassifies the adversarial of source j when j % 4 == 0."""
    n, sources = 60, list(range(40))
    y = torch.arange(n) % 10
    wrong = [(int(c) + 1) % 10 for c in y]
    clean = [int(y[i]) if i % 3 else wrong[i] for i in range(n)]
    adversarial = [wrong[i] if i % 4 == 0 else int(y[i]) for i in sources]
    row = replay_one(clean, adversarial, y, sources)

    right = [i % 3 != 0 for i in sources]
    fooled = [i % 4 == 0 for i in sources]
    among = [f for f, r in zip(fooled, right, strict=True) if r]
    assert row["test_acc"] == pytest.approx(sum(i % 3 != 0 for i in range(n)) / n)
    assert row["asr_pgd"] == pytest.approx(sum(fooled) / 40)  # the paper's: 10 of 40
    assert row["n_correct_pgd"] == sum(right) == 26
    assert row["asr_pgd_given_correct"] == pytest.approx(sum(among) / len(among))  # 6 of 26
    assert len(among) == 26 and sum(among) == 6


@pytest.mark.parametrize("n_right", [25, MIN_CORRECT - 1])
def test_a_near_chance_snapshot_reads_its_few_correct_sources_or_nan(n_right):
    """200 sources, of which the snapshot gets ``n_right`` right; each adversarial is
    classified as its clean image was, but for the first 5 sources, which are fooled. The
    paper's ASR is about 0.9 whatever the perturbation does; the conditional one is
    5 / n_right, read on those sources alone, or NaN below the minimum."""
    n = 200
    y = torch.arange(n) % 10
    wrong = [(int(c) + 1) % 10 for c in y]
    clean = [int(y[i]) if i < n_right else wrong[i] for i in range(n)]
    adversarial = [wrong[i] if i < 5 else clean[i] for i in range(n)]
    row = replay_one(clean, adversarial, y, list(range(n)))
    assert row["asr_pgd"] == pytest.approx(1 - (n_right - 5) / n) and row["asr_pgd"] > 0.85
    assert row["n_correct_pgd"] == n_right
    if n_right >= MIN_CORRECT:
        assert row["asr_pgd_given_correct"] == pytest.approx(5 / n_right)
    else:
        assert math.isnan(row["asr_pgd_given_correct"])


def with_conditional(frame: pd.DataFrame, fold: int, slope: float) -> pd.DataFrame:
    """A fold's curves with a conditional ASR of its own: ``slope`` times test accuracy, a
    fold's wiggle; the paper's ASR stays as it is."""
    e = frame["epoch"].to_numpy()
    conditional = 0.6 + slope * (frame["test_acc"] - 0.5) + 0.02 * np.sin(e * (fold + 2.1))
    return frame.assign(asr_fgsm_given_correct=conditional, n_correct_fgsm=100 + 0 * e)


def test_the_verdicts_companion_rows_read_the_conditional_asr_by_the_same_rule(tmp_path):
    from advfit.report.__main__ import main as report

    slopes = [0.05, 0.04, 0.06, 0.05, 0.03]
    given = [-0.9, -1.0, -0.8, -0.95, -0.85]  # fragility falls with accuracy here
    runs = [
        write_run(tmp_path, "cifar10", "normal", f, with_conditional(frame, f, given[f]))
        for f, frame in enumerate(fold_curves("normal", slopes))
    ]
    t = Thresholds()
    rows = verdict("generalization", collect([tmp_path]).groups()[("cifar10", "normal")], t)
    assert rows[["attack", "asr"]].values.tolist() == [["fgsm", PAPERS], ["fgsm", CONDITIONAL]]
    for column, row in zip(["asr_fgsm", "asr_fgsm_given_correct"], rows.itertuples(), strict=True):
        rhos = []
        for run in runs:
            e = run.read_epochs().query("epoch >= 5 and epoch != 12")  # 12: the best epoch
            rhos.append(spearmanr(e["test_acc"], e[column]).statistic)
        mean, low, high = hand_interval(rhos)
        expected = (mean, max(low, -1.0), min(high, 1.0))
        assert (row.rho_mean, row.rho_low, row.rho_high) == pytest.approx(expected)
    assert rows["verdict"].tolist() == ["holds", "does not hold"]
    assert survival(rows.assign(dataset="cifar10", regime="normal")) == [
        "cifar10, normal, fgsm: does not survive: only the paper's reading holds (the ASR "
        "among correctly classified sources does not bear it out)"
    ]

    # The early gap: the paper's ASR minus the conditional one over epochs 5-10, by hand.
    by_hand = np.mean(
        [
            (
                r.read_epochs().query("5 <= epoch <= 10").eval("asr_fgsm - asr_fgsm_given_correct")
            ).mean()
            for r in runs
        ]
    )
    group = collect([tmp_path]).groups()[("cifar10", "normal")]
    assert early_gap(group, "fgsm", 5, 10) == pytest.approx(by_hand)

    assert report([str(tmp_path), "--wandb", "disabled"]) == 0
    out = tmp_path / "report"
    saved = pd.read_csv(out / "verdict.csv")
    assert saved["asr"].tolist() == [PAPERS, CONDITIONAL]
    md = (out / "report.md").read_text()
    assert "cifar10, normal, fgsm (given correct ASR): does not hold" in md
    assert "fgsm: does not survive: only the paper's reading holds" in md
    assert f"cifar10, normal, fgsm: {by_hand:+.3f}." in md
    folds = pd.read_csv(out / "verdict_folds.csv")
    assert folds.groupby("asr").size().to_dict() == {CONDITIONAL: 5, PAPERS: 5}
