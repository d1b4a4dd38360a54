"""Adversarial replay on a LeNet trained on real Fashion-MNIST, and evaluate.py."""

import json
import shutil

import pandas as pd
import pytest
import torch

from advfit.data import FashionMNISTDataModule, to_unit_range
from advfit.errors import RunError
from advfit.locks import file_lock
from advfit.models import LeNet
from advfit.rundir import RunDir
from advfit.tasks import evaluate, train
from tests.conftest import compose_cfg, evaluate_cfg, run_cli, session_dir

pytestmark = pytest.mark.slow


#: Sources the module's run crafts its attacks on (evaluate's own test replays 50).
SOURCES = 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fmnist_dir):
    """The module's run, trained once for the session: pytest-xdist may split this module
    between its workers, and the second waits for the first's run (the tests only read it;
    those that evaluate it copy it first)."""
    out = session_dir(tmp_path_factory, "replay")
    cfg = compose_cfg(
        [
            "regime=overfit",
            "trainer.max_epochs=3",
            "data.train_subset=6000",
            "data.test_subset=1000",
            f"replay.n_images={SOURCES}",
            "metrics.clever.n_images=4",
            "metrics.clever.pool_factor=2",
            "metrics.robust_accuracy.nb_iter=3",
            "logger=none",
        ],
        out,
        data_dir=fmnist_dir,
    )
    run = RunDir(cfg.paths.output_dir)
    with file_lock(out / ".lock", wait=True):
        if not run.is_done():
            train(cfg)
    return run, cfg


def test_replay_writes_the_contract(trained):
    run, cfg = trained
    assert run.is_done()
    epochs = pd.read_csv(run.epochs_csv)
    assert list(epochs.columns) == [
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "test_acc",
        *(
            column
            for a in ("fgsm", "pgd", "cw")
            for column in (f"asr_{a}", f"asr_{a}_given_correct", f"n_correct_{a}")
        ),
        "loss_sensitivity",
        "empirical_robustness",
        "clever",
        "robust_accuracy",
    ]
    assert (
        epochs["test_acc"].between(0.6, 1).all()
        and epochs[["asr_fgsm", "asr_pgd", "asr_cw"]].notna().all().all()
    )
    # The best snapshot classifies every source correctly (they were chosen so): there the
    # conditional ASR is the paper's; elsewhere it reads the sources that snapshot gets right.
    best = json.loads(run.summary_json.read_text())["best_epoch"]
    at = epochs.set_index("epoch")
    for a in ("fgsm", "pgd", "cw"):
        assert at.loc[best, f"n_correct_{a}"] == SOURCES
        given, paper = at.loc[best, f"asr_{a}_given_correct"], at.loc[best, f"asr_{a}"]
        assert given == pytest.approx(paper, abs=1e-6)  # float32 sums in another order
        assert at[f"n_correct_{a}"].between(0, SOURCES).all()
    distances = pd.read_csv(run.distances_csv).set_index("attack")
    assert list(distances.index) == ["fgsm", "pgd", "cw"] and (distances["n"] == SOURCES).all()
    summary = json.loads(run.summary_json.read_text())
    classes = {
        "fgsm": "advertorch.attacks.one_step_gradient.GradientSignAttack",
        "pgd": "advertorch.attacks.iterative_projected_gradient.LinfPGDAttack",
        "cw": "advfit.attacks.cw.CarliniWagnerL2Attack",  # advertorch's, without device reads
    }
    for name, cls in classes.items():
        saved = torch.load(run.attack_set(name), weights_only=True)
        assert saved["best_epoch"] == summary["best_epoch"] and len(saved["indices"]) == SOURCES
        assert saved["params"]["attack"] == cls


def test_attacks_fool_the_best_snapshot(trained):
    run, _ = trained
    best = run.best_epoch()
    epochs = pd.read_csv(run.epochs_csv).set_index("epoch")
    distances = pd.read_csv(run.distances_csv).set_index("attack")
    assert epochs.loc[best, "asr_fgsm"] >= 0.5
    assert epochs.loc[best, "asr_cw"] >= 0.9
    assert distances.loc["cw", "l2_mean"] < 0.5 * distances.loc["fgsm", "l2_mean"]
    assert distances.loc["fgsm", "linf_mean"] == pytest.approx(0.3, abs=1e-6)
    assert distances.loc["fgsm", "n_fooled"] == round(epochs.loc[best, "asr_fgsm"] * SOURCES)


def test_asr_equals_one_minus_accuracy_recomputed_from_the_saved_set(trained, fmnist_dir):
    run, cfg = trained
    best = run.best_epoch()
    net = LeNet((1, 28, 28), 10)
    net.load_state_dict(torch.load(run.snapshot(best), weights_only=True))
    net.eval()
    test = FashionMNISTDataModule(data_dir=str(fmnist_dir), download=False)
    test.setup()
    epochs = pd.read_csv(run.epochs_csv).set_index("epoch")
    for name in ("fgsm", "pgd", "cw"):
        saved = torch.load(run.attack_set(name), weights_only=True)
        # The sources are test images the best snapshot classified correctly.
        originals = to_unit_range(test.x_test[saved["indices"]])
        with torch.no_grad():
            assert (net(originals).argmax(1) == saved["labels"]).all()
            accuracy = (net(saved["x_adv"]).argmax(1) == saved["labels"]).float().mean().item()
        assert epochs.loc[best, f"asr_{name}"] == pytest.approx(1 - accuracy, abs=1e-7)


def test_evaluate_reproduces_the_callbacks_numbers(trained, tmp_path):
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run.root, copy)
    for path in (copy / "adversarial").glob("*.pt"):
        path.unlink()  # craft again from scratch, not reuse
    (copy / "epochs.csv").write_text(pd.read_csv(run.epochs_csv).iloc[:, :5].to_csv(index=False))
    (copy / "DONE").unlink()  # as a run stopped before its replay: DONE vouches for no replay
    result = run_cli("evaluate.py", f"run_dir={copy}", "progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(copy / "epochs.csv"), pd.read_csv(run.epochs_csv))
    pd.testing.assert_frame_equal(
        pd.read_csv(copy / "distances.csv"), pd.read_csv(run.distances_csv)
    )
    assert (copy / "DONE").is_file()


def test_evaluate_with_other_attacks_and_n(trained, tmp_path):
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run.root, copy)
    result = run_cli(
        "evaluate.py",
        f"run_dir={copy}",
        "attack=[fgsm]",
        "replay.n_images=50",
        "progress=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = pd.read_csv(copy / "epochs.csv")
    assert [c for c in epochs.columns if c.startswith("asr_")] == [
        "asr_fgsm",
        "asr_fgsm_given_correct",
    ]
    assert pd.read_csv(copy / "distances.csv")["n"].tolist() == [50]
    assert json.loads((copy / "summary.json").read_text())["replay"]["n_crafted"] == 50


def test_evaluate_bad_run_directories(trained, tmp_path):
    run, _ = trained
    result = run_cli("evaluate.py", f"run_dir={tmp_path / 'nothing'}", cwd=tmp_path)
    assert result.returncode == 2 and "is not a run directory" in result.stderr + result.stdout
    # No run_dir at all: what to pass, not a traceback.
    result = run_cli("evaluate.py", cwd=tmp_path)
    said = result.stderr + result.stdout
    assert result.returncode == 2 and "evaluate.py needs run_dir=<a run directory>" in said
    assert "Traceback" not in said
    # An empty attack list is refused, not read as "the run's own attacks".
    result = run_cli("evaluate.py", f"run_dir={run.root}", "attack=[]", cwd=tmp_path)
    said = result.stderr + result.stdout
    assert result.returncode == 2 and "attack is empty: choose one or more attacks" in said
    # A key evaluate.py does not have: Hydra's refusal, exit 2 as well.
    result = run_cli("evaluate.py", f"run_dir={run.root}", "attak=[fgsm]", cwd=tmp_path)
    said = result.stderr + result.stdout
    assert result.returncode == 2 and "Could not override 'attak'" in said, said

    # The other refusals in-process (the exit status and the message's path are above).
    copy = tmp_path / "corrupt"
    shutil.copytree(run.root, copy)
    snapshot = copy / "checkpoints" / "epoch_002.pt"
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    with pytest.raises(RunError, match="epoch_002.pt changed after the run finished"):
        evaluate(evaluate_cfg(copy))
    assert (copy / "DONE").exists()  # a failed check leaves the run as it was
    (copy / "DONE").unlink()  # an unfinished run: nothing vouched for, the load itself refuses
    with pytest.raises(RunError, match="epoch_002.pt is corrupt"):
        evaluate(evaluate_cfg(copy))

    empty = tmp_path / "empty"
    shutil.copytree(run.root, empty)
    shutil.rmtree(empty / "checkpoints")
    with pytest.raises(RunError, match="0 snapshots"):
        evaluate(evaluate_cfg(empty))


def test_robustness_scores_per_snapshot_match_a_direct_computation(trained, fmnist_dir):
    from advfit.metrics.robustness import RobustAccuracy, empirical_robustness, loss_sensitivity

    run, _ = trained
    epochs = pd.read_csv(run.epochs_csv).set_index("epoch")
    test = FashionMNISTDataModule(data_dir=str(fmnist_dir), download=False)
    test.setup()
    x, y = to_unit_range(test.x_test[:1000]), test.y_test[:1000]
    for epoch in (1, 3):
        net = LeNet((1, 28, 28), 10)
        net.load_state_dict(torch.load(run.snapshot(epoch), weights_only=True))
        assert epochs.loc[epoch, "loss_sensitivity"] == pytest.approx(
            loss_sensitivity(net, x, y), rel=1e-5
        )
        assert epochs.loc[epoch, "empirical_robustness"] == pytest.approx(
            empirical_robustness(net, x), rel=1e-5
        )
        assert epochs.loc[epoch, "robust_accuracy"] == RobustAccuracy(nb_iter=3)(net, x, y)
    summary = json.loads(run.summary_json.read_text())
    assert set(summary["metrics_seconds_per_snapshot"]) == {
        "loss_sensitivity",
        "empirical_robustness",
        "clever",
        "robust_accuracy",
    }
    # CLEVER: per-image scores in clever.csv; the column is their mean; same seed, same value.
    from advfit.metrics.clever import Clever

    per_image = pd.read_csv(run.root / "clever.csv")
    assert per_image.groupby("epoch").size().tolist() == [4, 4, 4]
    assert per_image["runaway_fits"].between(0, 9).all()  # classes per image, pred excluded
    for epoch in (1, 3):
        scores = per_image[per_image["epoch"] == epoch]["clever"]
        assert epochs.loc[epoch, "clever"] == pytest.approx(scores.mean(), rel=1e-6)
    net = LeNet((1, 28, 28), 10)
    net.load_state_dict(torch.load(run.snapshot(3), weights_only=True))
    again = Clever(pool_factor=2, seed=0)(net, x[:4])
    expected = per_image[per_image["epoch"] == 3]["clever"].tolist()
    assert again.tolist() == pytest.approx(expected, rel=1e-6)


def test_the_replay_runs_on_the_trainers_device_not_where_teardown_left_the_module(
    monkeypatch, tmp_path
):
    """Lightning calls on_fit_end after its teardown has moved the module to the CPU: the
    replay must take the trainer's device (a GPU's, stood in for here), not the module's."""
    from types import SimpleNamespace

    from advfit.callbacks import AdversarialReplay
    from advfit.callbacks import replay as replay_callback

    asked = {}

    class Recorded:
        @classmethod
        def for_run(cls, *args, device, **kwargs):
            asked["device"] = device
            return lambda: None

    monkeypatch.setattr(replay_callback, "Replay", Recorded)
    monkeypatch.setattr(replay_callback, "log_replay", lambda *args: None)
    trainer = SimpleNamespace(
        interrupted=False,
        strategy=SimpleNamespace(root_device=torch.device("cuda", 0)),
        datamodule=None,
        progress_bar_callback=None,
        loggers=[],
    )
    module = SimpleNamespace(net=LeNet((1, 28, 28), 10), device=torch.device("cpu"))
    AdversarialReplay(str(tmp_path), {}).on_fit_end(trainer, module)
    assert asked["device"] == torch.device("cuda", 0)
