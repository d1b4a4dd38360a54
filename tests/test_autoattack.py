"""APGD and AutoAttack (the authors' code, pyautoattack) behind advfit's attack contract, and
each snapshot's white-box robust accuracy (APGD-CE crafted on the snapshot itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from advfit.attacks import Attack
from advfit.attacks.advertorch_compat import attacks as advertorch_attacks
from advfit.data.batches import to_unit_range
from advfit.errors import ConfigError
from advfit.metrics import RobustAccuracy
from advfit.models import LeNet
from advfit.replay.network import load_weights
from advfit.report.__main__ import main as report
from advfit.report.figures import FIGURES
from advfit.tasks import build
from advfit.trend import change_after
from tests.conftest import run_cli


def lenet_and_images(n: int = 24):
    torch.manual_seed(0)
    net = LeNet((1, 28, 28), 10).eval()
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x).argmax(1)  # every image classified "right": every one is attacked
    return net, x, y


def test_advfits_apgd_equals_the_authors_called_directly_and_leaves_the_rng_alone():
    from pyautoattack.autopgd_base import APGDAttack

    net, x, y = lenet_and_images()
    state = torch.get_rng_state()
    ours = Attack("apgd", "advfit.attacks.autoattack.APGD", batch_size=len(x), eps=0.3, nb_iter=10)(
        net, x, y
    )
    assert torch.equal(torch.get_rng_state(), state)
    theirs = APGDAttack(net, n_iter=10, norm="Linf", n_restarts=1, eps=0.3, seed=0, device="cpu")
    assert torch.equal(ours, theirs.perturb(x, y))
    assert (ours - x).abs().max() <= 0.3 + 1e-6 and ours.min() >= 0 and ours.max() <= 1
    with torch.no_grad():
        assert (net(ours).argmax(1) != y).any()  # it does attack


def test_advfits_autoattack_is_the_authors_standard_evaluation_called_directly():
    """The same snapshot, sources and seed: the same examples and robust accuracy as
    ``AutoAttack(..., version='standard').run_standard_evaluation`` called as RobustBench
    does; at eps 0.15 APGD-CE alone leaves images robust, which the later attacks take."""
    from pyautoattack import AutoAttack

    net, x, y = lenet_and_images(16)
    ours = Attack("autoattack", "advfit.attacks.autoattack.AutoAttack", batch_size=16, eps=0.15)(
        net, x, y
    )
    authors = AutoAttack(net, norm="Linf", eps=0.15, version="standard", device="cpu", seed=0)
    assert (authors.apgd.n_iter, authors.apgd_targeted.n_target_classes) == (100, 9)
    assert (authors.fab.n_target_classes, authors.square.n_queries) == (9, 5000)
    theirs, _ = authors.run_standard_evaluation(x, y, batch_size=16)
    assert torch.equal(ours, theirs)
    from pyautoattack.autopgd_base import APGDAttack

    ce_alone = APGDAttack(net, n_iter=100, eps=0.15, seed=0, device="cpu").perturb(x, y)
    with torch.no_grad():
        robust = (net(ours).argmax(1) == y).float().mean().item()
        after_ce = (net(ce_alone).argmax(1) == y).float().mean().item()
    assert robust < after_ce  # images withstood APGD-CE, and the later attacks took them


def test_the_authors_checks_reach_the_log(caplog):
    """Their checks (checks.py) warn, on the auto-attack logger, that a model whose outputs
    are probabilities, not logits, is evaluated."""
    net, x, y = lenet_and_images(8)
    probabilities = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
    with caplog.at_level("WARNING", logger="auto-attack"):
        Attack("autoattack", "advfit.attacks.autoattack.AutoAttack", batch_size=8, eps=0.3)(
            probabilities, x, y
        )
    assert "the output is a probability distribution" in caplog.text


@pytest.mark.parametrize(
    ("attack", "params", "message"),
    [
        ("APGD", {"eps": 0}, r"attack.a.eps=0 is invalid: accepted are numbers in \(0, 1\]"),
        ("APGD", {"eps": -0.1}, r"attack.a.eps=-0.1 is invalid"),
        ("APGD", {"norm": "L3"}, r"attack.a.norm='L3' is invalid: accepted are Linf, L2"),
        ("APGD", {"loss": "hinge"}, r"attack.a.loss='hinge' is invalid: accepted are ce, dlr"),
        ("APGD", {"n_restarts": 0}, r"attack.a.n_restarts=0 is invalid"),
        ("AutoAttack", {"version": "fast"}, r"version='fast' is invalid: accepted are standard"),
        ("AutoAttack", {"seed": -1}, r"attack.a.seed=-1 is invalid"),
        ("AutoAttack", {"steps": 5}, r"attack.a: steps not accepted by"),
    ],
)
def test_bad_apgd_and_autoattack_parameters_are_refused_by_name(attack, params, message):
    with pytest.raises(ConfigError, match=message):
        Attack("a", f"advfit.attacks.autoattack.{attack}", **params)


def test_bad_robust_accuracy_settings_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"metrics.robust_accuracy.eps=1.5 is invalid"):
        RobustAccuracy(eps=1.5)
    with pytest.raises(ConfigError, match=r"metrics.robust_accuracy.norm='L1' is invalid"):
        RobustAccuracy(norm="L1")


def test_an_attack_setting_is_refused_before_training(tmp_path):
    result = run_cli(
        "train.py", "attack=[fgsm,autoattack]", "attack.autoattack.version=fast", "logger=none",
        f"paths.root_dir={tmp_path}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    said = (result.stdout + result.stderr).strip()
    assert said.splitlines()[-1].endswith(
        "attack.autoattack.version='fast' is invalid: accepted are standard, plus, rand"
    )
    assert not list(tmp_path.rglob("epoch_001.pt"))


def test_robust_accuracy_is_at_most_clean_accuracy_on_a_random_network():
    net, x, y = lenet_and_images(40)
    y = torch.arange(40) % 10  # labels the network mostly gets wrong
    with torch.no_grad():
        clean = (net(x).argmax(1) == y).float().mean().item()
    robust = RobustAccuracy(eps=0.02, nb_iter=5, batch_size=16)(net, x, y)
    assert robust <= clean
    assert robust == RobustAccuracy(eps=0.02, nb_iter=5, batch_size=16)(net, x, y)  # seeded


def test_training_pgd_is_seeded_by_batch_stays_in_its_ball_and_leaves_the_rng_alone():
    from advfit.models.adversarial import TrainingPGD

    net, x, y = lenet_and_images()
    pgd = TrainingPGD(eps=0.1, eps_iter=0.025, nb_iter=4, seed=3)
    state = torch.get_rng_state()
    first = pgd(net, x, y, (0, 7))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, pgd(net, x, y, (0, 7)))  # a resumed run crafts the same
    assert not torch.equal(first, pgd(net, x, y, (1, 7)))  # another epoch, another start
    assert (first - x).abs().max() <= 0.1 + 1e-6 and first.min() >= 0 and first.max() <= 1
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    with pytest.raises(ConfigError, match=r"regime.adversarial.eps=0 is invalid"):
        TrainingPGD(eps=0, eps_iter=0.01, nb_iter=1)


EPS = 0.1


def tiny_sweep(root: Path, fmnist_dir: Path):
    """One sweep on real Fashion-MNIST: a normal and an adversarially trained LeNet, 3 epochs
    on 2,000 images, FGSM, PGD and AutoAttack at eps 0.1, robust accuracy at eps 0.1."""
    args = [
        "-m",
        "regime=normal,adversarial",
        "regime.lr=0.002",
        "trainer.max_epochs=3",
        "data.train_subset=1500",
        "data.test_subset=200",
        "attack=[fgsm,pgd,autoattack]",
        f"attack.fgsm.eps={EPS}",
        f"attack.pgd.eps={EPS}",
        "attack.pgd.eps_iter=0.01",
        "attack.pgd.nb_iter=20",
        f"attack.autoattack.eps={EPS}",
        "replay.n_images=60",
        "metrics.n_images=60",
        "metrics.clever=null",
        "metrics.empirical_robustness=null",
        "metrics.loss_sensitivity=null",
        f"metrics.robust_accuracy.eps={EPS}",
        "logger=none",
        "task_name=adv",
        f"paths.root_dir={root}",
        f"paths.data_dir={fmnist_dir}",
    ]
    result = run_cli("train.py", *args, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = root / "multirun" / "adv"
    runs = {d.name.split("-")[1]: d for d in sweep.iterdir() if (d / "DONE").is_file()}
    assert sorted(runs) == ["adversarial", "normal"]
    return sweep, runs


def best_row(run):
    epochs = pd.read_csv(run / "epochs.csv").set_index("epoch")
    return epochs.loc[int(json.loads((run / "summary.json").read_text())["best_epoch"])]


@pytest.mark.slow
def test_a_tiny_sweep_of_both_regimes_checks_autoattack_robust_accuracy_and_the_verdict(
    tmp_path, fmnist_dir
):
    """One sweep, trained once, read three ways (below)."""
    sweep, runs = tiny_sweep(tmp_path, fmnist_dir)
    # The authors' code logs to the run's own log, beside advfit's lines.
    assert "setting parameters for standard version" in (runs["normal"] / "train.log").read_text()
    autoattack_succeeds_at_least_as_often_as_pgd(runs)
    robust_accuracy_lies_below_clean_and_one_step_fgsm_accuracy(runs)
    adversarial_training_is_more_robust_and_the_report_judges_robust_overfitting(sweep, runs)


def autoattack_succeeds_at_least_as_often_as_pgd(runs):
    row = best_row(runs["normal"])
    assert row["test_acc"] > 0.6  # it learned (chance: 0.1)
    assert row["asr_autoattack"] >= row["asr_pgd"] > 0
    distances = pd.read_csv(runs["normal"] / "distances.csv").set_index("attack")
    assert distances.loc["autoattack", "linf_mean"] <= EPS + 1e-6


def robust_accuracy_lies_below_clean_and_one_step_fgsm_accuracy(runs):
    """On every snapshot."""
    run = runs["normal"]
    epochs = pd.read_csv(run / "epochs.csv").set_index("epoch")
    datamodule, model = build(OmegaConf.load(run / ".hydra" / "config.yaml"))
    datamodule.setup("test")
    x, y = to_unit_range(datamodule.x_test[:60]), datamodule.y_test[:60]
    for epoch, row in epochs.iterrows():
        net = load_weights(model.net, run / "checkpoints" / f"epoch_{epoch:03d}.pt").eval()
        for p in net.parameters():
            p.requires_grad_(False)
        fgsm = advertorch_attacks.GradientSignAttack(
            net, eps=EPS, clip_min=0.0, clip_max=1.0
        ).perturb(x, y)
        with torch.no_grad():
            clean = (net(x).argmax(1) == y).float().mean().item()
            after_fgsm = (net(fgsm).argmax(1) == y).float().mean().item()
        assert row["robust_accuracy"] <= clean, epoch
        assert row["robust_accuracy"] <= after_fgsm, epoch


def adversarial_training_is_more_robust_and_the_report_judges_robust_overfitting(sweep, runs):
    adversarial, normal = best_row(runs["adversarial"]), best_row(runs["normal"])
    assert adversarial["robust_accuracy"] > normal["robust_accuracy"]
    epochs = pd.read_csv(runs["adversarial"] / "epochs.csv")
    assert epochs["val_robust_acc"].notna().all() and "val_robust_acc" not in pd.read_csv(
        runs["normal"] / "epochs.csv"
    )
    # The best epoch of adversarial training is the most robust on validation.
    summary = json.loads((runs["adversarial"] / "summary.json").read_text())
    assert summary["best_epoch"] == int(epochs.loc[epochs["val_robust_acc"].idxmax(), "epoch"])
    assert report([str(sweep), "--wandb", "disabled"]) == 0
    verdicts = pd.read_csv(sweep / "report" / "verdict.csv")
    row = verdicts[verdicts["regime"] == "adversarial"].iloc[0]
    # Judged by its regime's claim, which reads no attack.
    assert row["claim"] == "robust_overfitting" and pd.isna(row["attack"])
    assert row["verdict"] == "undetermined"
    folds = pd.read_csv(sweep / "report" / "verdict_folds.csv")
    drop = folds[folds["regime"] == "adversarial"]["robust_drop"].iloc[0]
    expected = -change_after(epochs, "val_robust_acc", summary["best_epoch"])
    assert drop == pytest.approx(expected, nan_ok=True)
    # The two figures draw the adversarial regime's columns from the group's mean table.
    table = pd.read_csv(
        sweep / "report" / "epochs_fashion_mnist_adversarial.csv", header=[0, 1], index_col=0
    )
    means = table["mean"]
    assert means["val_robust_acc"].tolist() == pytest.approx(epochs["val_robust_acc"].tolist())
    assert {"val_robust_acc"} <= set(FIGURES["adversarial_training"].series_for(table))
    assert {"robust_accuracy", "asr_autoattack"} <= set(FIGURES["robustness"].series_for(table))
    for figure in ("adversarial_training", "robustness"):
        assert (sweep / "report" / f"{figure}.png").is_file()
