"""Each regime declares the claim the verdict judges it by (``regime.claim``): a regime of the
user's own, with its own name, is judged by the rule of the claim it declares, never by a rule
chosen from its name."""

from __future__ import annotations

import pandas as pd
import yaml

from advfit.report.__main__ import main as report
from advfit.rundir import RunDir
from tests.test_report import fold_curves, write_run


def declare(run: RunDir, claim: str | None) -> None:
    """Give a run's saved config ``regime.claim`` (or leave it out), vouched for again."""
    config = yaml.safe_load(run.config.read_text())
    if claim is not None:
        config["regime"]["claim"] = claim
    run.config.write_text(yaml.safe_dump(config))
    run.mark_done()


def test_a_regime_of_ones_own_is_judged_by_the_claim_it_declares(tmp_path):
    """``my_regime`` declares overfitting: the overfitting rule judges it (the ASR change
    after the best epoch), as it judges the paper's overfit regime, whatever its name."""
    slopes = [-0.02, -0.01, -0.015, -0.02, -0.01]
    for fold, frame in enumerate(fold_curves("overfit", slopes)):
        declare(write_run(tmp_path / "mine", "cifar10", "my_regime", fold, frame), "overfitting")
        write_run(tmp_path / "paper", "cifar10", "overfit", fold, frame)
    assert report([str(tmp_path / "mine"), "--wandb", "disabled"]) == 0
    assert report([str(tmp_path / "paper"), "--wandb", "disabled"]) == 0
    mine = pd.read_csv(tmp_path / "mine" / "report" / "verdict.csv")
    paper = pd.read_csv(tmp_path / "paper" / "report" / "verdict.csv")
    assert mine["claim"].tolist() == ["overfitting"] and mine["verdict"].tolist() == ["holds"]
    assert mine["reasons"].iloc[0].startswith("the runs overfit: validation")
    numbers = ["asr_change_after_best", "asr_change_low", "asr_change_high", "verdict"]
    pd.testing.assert_frame_equal(mine[numbers], paper[numbers])
    text = (tmp_path / "mine" / "report" / "report.md").read_text()
    assert "my_regime (overfitting): does ASR not rise by more than 0.02" in text
    assert "ASR change after best" in text and "Judged by the claim of its regime's" not in text
    # The paper's runs saved no claim (an earlier version): read from the regime's name, said.
    earlier = (tmp_path / "paper" / "report" / "report.md").read_text()
    assert "Judged by the claim of its regime's name (runs of an earlier version" in earlier
    assert (tmp_path / "mine" / "report" / "fig8.png").is_file()  # drawn by claim too


def test_a_regime_without_a_known_claim_is_refused_by_the_report(tmp_path, capsys):
    for fold, frame in enumerate(fold_curves("overfit", [0.01, 0.02])):
        declare(write_run(tmp_path / "none", "cifar10", "my_regime", fold, frame), None)
        declare(write_run(tmp_path / "odd", "cifar10", "my_regime", fold, frame), "robustness")
    assert report([str(tmp_path / "none"), "--wandb", "disabled"]) == 2
    said = capsys.readouterr().err
    assert "regime.claim is missing in " in said and "(regime my_regime)" in said
    assert "one of generalization, overfitting, robust_overfitting" in said
    assert report([str(tmp_path / "odd"), "--wandb", "disabled"]) == 2
    assert "regime.claim='robustness' in " in capsys.readouterr().err
    assert not (tmp_path / "none" / "report").exists()  # nothing half-written
