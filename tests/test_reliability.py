"""What a skeptical user tries: bad values, killed and doubled launches, damaged run
directories, and reports over odd inputs. Every test asserts the outcome itself (exit status,
the value the message names, files unchanged byte for byte, where training resumed)."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from advfit.config import run_dir_name
from advfit.data import CustomDataModule, DataError
from advfit.errors import ConfigError, RunError
from advfit.files import atomic_write_text
from advfit.identity import config_differences
from advfit.report.collect import ReportError, collect
from advfit.rundir import RunDir
from advfit.tasks import evaluate, train
from tests.conftest import TINY_RUN as TINY
from tests.conftest import compose_cfg, evaluate_cfg, run_cli
from tests.test_data import write_npz
from tests.test_report import distances, trend, write_run


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("attack.fgsm.eps=2", "attack.fgsm.eps=2 is invalid: accepted are numbers in (0, 1]"),
        ("attack.fgsm.eps=2.0", "attack.fgsm.eps=2.0 is invalid: accepted are numbers in (0, 1]"),
        ("attack=[pgd]", None),
        ("replay.n_images=0", "replay.n_images=0 is invalid: it must be >= 1"),
        ("replay.n_images=-3", "replay.n_images=-3 is invalid: it must be >= 1"),
        ("cpu_threads=0", "cpu_threads=0 is invalid: null (all cores) or an integer >= 1"),
        ("task_name=../../etc", "task_name='../../etc' is invalid"),
        ("run_name=../../x", "run_name='../../x' is invalid"),
        ("fold=0-4", "fold=0-4 is a range of runs: sweeping it needs -m"),
        ("data.train_subset=3", "data.train_subset=3 is invalid: a stratified subset"),
        (
            "regime.claim=robustness",
            "regime.claim='robustness' in regime=overfit is not a claim the verdict knows: "
            "one of generalization, overfitting, robust_overfitting",
        ),
        ("~regime.claim", "regime.claim is missing in regime=overfit: a regime declares"),
    ],
)
def test_bad_values_stop_before_training(tmp_path, fmnist_dir, override, message):
    extra = ["attack.pgd.nb_iter=0"] if override == "attack=[pgd]" else []
    message = message or "attack.pgd.nb_iter=0 is invalid: an integer >= 1 is required"
    cfg = compose_cfg([*TINY, override, *extra], tmp_path, data_dir=fmnist_dir)
    with pytest.raises((ConfigError, DataError)) as err:
        train(cfg)
    assert message in str(err.value)
    assert not list(tmp_path.rglob("epoch_*.pt")) and not list(tmp_path.rglob("DONE"))


def test_an_empty_attack_list_is_a_config_error(tmp_path):
    cfg = compose_cfg([*TINY, "attack=[]"], tmp_path)
    with pytest.raises(ConfigError, match=r"attack is empty: choose one or more attacks"):
        train(cfg)


def test_data_problems_are_reported_at_load_time(tmp_path, caplog):
    cases = {
        "one_class.npz": ({"y_train": np.zeros(60, dtype=np.int64)}, "a single class"),
        "shapes.npz": (
            {"x_test": np.zeros((20, 8, 8, 3), dtype=np.uint8)},
            "training images have shape (3, 12, 10) but test images (3, 8, 8)",
        ),
    }
    for name, (changes, message) in cases.items():
        write_npz(tmp_path / name, **changes)
        module = CustomDataModule(path=str(tmp_path / name), data_dir=str(tmp_path), n_folds=3)
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            module.setup()
    write_npz(tmp_path / "unseen.npz", y_test=np.arange(20) % 4)  # label 3: not in training
    module = CustomDataModule(path=str(tmp_path / "unseen.npz"), data_dir=str(tmp_path), n_folds=3)
    module.setup()
    assert "test labels [3] never occur in the training set" in caplog.text
    (tmp_path / "text.npz").write_text("x_train,y_train\n1,2\n")
    module = CustomDataModule(path=str(tmp_path / "text.npz"), data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"text.npz is not an .npz file: an .npz is a zip archive"):
        module.setup()


def test_a_second_launch_of_a_running_run_stops_at_once(tmp_path, fmnist_dir):
    cfg = compose_cfg(TINY, tmp_path, data_dir=fmnist_dir)
    run = RunDir(cfg.paths.output_dir)
    with run.lock(), pytest.raises(RunError) as err:
        train(cfg)
    assert f"is being run by pid {os.getpid()} on " in str(err.value)
    assert f"{run.root / '.lock'} is locked" in str(err.value)
    assert not run.snapshots() and not run.epochs_csv.exists()


def test_results_honour_the_umask(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            atomic_write_text(tmp_path / f"{mode:o}.csv", "a\n")
        finally:
            os.umask(old)
        assert (tmp_path / f"{mode:o}.csv").stat().st_mode & 0o777 == mode


def test_result_neutral_keys_never_rename_or_refuse_a_run():
    name = run_dir_name("a", "cpu_threads=1|trainer.accelerator=cpu|data.eval_batch_size=10")
    assert name == "a"
    assert config_differences({"cpu_threads": None}, {"cpu_threads": 1}) == []
    # Runs made with the earlier batch sizes resume under the new defaults ...
    old = {"attack": {"pgd": {"batch_size": 500}}, "metrics": {"clever": {"points_per_pass": 500}}}
    new = {"attack": {"pgd": {"batch_size": 250}}, "metrics": {"clever": {"points_per_pass": 100}}}
    assert config_differences(old, new) == []
    # ... but not CW's: abort_early watches the whole batch.
    assert config_differences(
        {"attack": {"cw": {"batch_size": 500}}}, {"attack": {"cw": {"batch_size": 250}}}
    )


# -- evaluate.py on damaged runs: checks first, changes nothing -------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory, fmnist_dir):
    """A finished tiny run, in a directory named as runs with overriding keys are."""
    out = tmp_path_factory.mktemp("finished")
    cfg = compose_cfg(TINY, out, data_dir=fmnist_dir)
    train(cfg)
    named = out / "fashion_mnist-overfit-fold0-seed0_attack=[fgsm]_lr=0.0024"
    shutil.move(cfg.paths.output_dir, named)
    return named


def snapshot_of(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def run_copy(finished, tmp_path):
    copy = tmp_path / finished.name
    shutil.copytree(finished, copy)
    return copy


def test_evaluate_refuses_bad_values_through_any_run_dir_name(run_copy, tmp_path):
    before = snapshot_of(run_copy)
    result = run_cli("evaluate.py", f"run_dir={run_copy}", "replay.n_images=0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "replay.n_images=0 is invalid" in result.stdout + result.stderr
    assert snapshot_of(run_copy) == before  # DONE kept, nothing rewritten


def test_evaluate_refuses_epochs_that_disagree_with_the_snapshots(run_copy):
    """In an unfinished run (a finished one's epochs.csv is refused by DONE's digests)."""
    run = RunDir(run_copy)
    run.unmark_done()
    run.epochs_csv.write_text("\n".join(run.epochs_csv.read_text().splitlines()[:2]) + "\n")
    before = snapshot_of(run_copy)
    with pytest.raises(RunError, match=r"lists epochs 1-1 but .* snapshots of epochs 1-2"):
        evaluate(evaluate_cfg(run_copy))
    run.epochs_csv.write_bytes(b"\x00\x01\x02garbage")
    before = snapshot_of(run_copy)
    with pytest.raises(RunError, match=r"epochs.csv is malformed"):
        evaluate(evaluate_cfg(run_copy))
    assert snapshot_of(run_copy) == before


def test_evaluate_refuses_a_corrupt_config(run_copy):
    """In an unfinished run (a finished one's config is refused by DONE's digests)."""
    RunDir(run_copy).unmark_done()
    RunDir(run_copy).config.write_text("data: [unclosed\n  : :")
    before = snapshot_of(run_copy)
    with pytest.raises(RunError, match=r"config.yaml is not a readable config"):
        evaluate(evaluate_cfg(run_copy))
    assert snapshot_of(run_copy) == before


def test_the_report_never_pools_replays_with_other_attack_settings(run_copy, finished, tmp_path):
    result = run_cli(
        "evaluate.py",
        f"run_dir={run_copy}",
        "attack=[fgsm]",
        "attack.fgsm.eps=0.1",
        "progress=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(RunDir(run_copy).summary_json.read_text())
    assert summary["replay"]["attacks"]["fgsm"]["eps"] == 0.1 and RunDir(run_copy).is_done()
    other = tmp_path / "other" / finished.name
    shutil.copytree(finished, other)
    sweep = collect([tmp_path])
    assert len(sweep.runs) == 2 and "attack.fgsm.eps" in sweep.group_keys
    assert sorted(k[-1] for k in sweep.groups()) == [0.1, 0.3]


# -- the report on odd inputs ---------------------------------------------------------


def test_a_run_given_twice_counts_once(tmp_path):
    for fold in (0, 1):
        write_run(tmp_path, "cifar10", "normal", fold, trend("normal", fold), distances(50, 8, 0.5))
    sweep = collect([tmp_path, tmp_path / "cifar10-normal-fold0-seed0", tmp_path])
    assert len(sweep.runs) == 2


def test_runs_with_other_attack_sets_are_split_and_named(tmp_path):
    write_run(tmp_path, "cifar10", "normal", 0, trend("normal", 0))
    two = write_run(tmp_path, "cifar10", "normal", 1, trend("normal", 1))
    epochs = two.read_epochs()
    two.write_epochs(epochs.assign(asr_pgd=epochs["asr_fgsm"]))
    for run, attacks in (
        (RunDir(tmp_path / "cifar10-normal-fold0-seed0"), ["fgsm"]),
        (two, ["fgsm", "pgd"]),
    ):
        summary = json.loads(run.summary_json.read_text())
        summary["replay"] = {"attacks": {a: {"eps": 0.3} for a in attacks}, "n_requested": 100}
        run.summary_json.write_text(json.dumps(summary))
        run.mark_done()  # as evaluate.py leaves a run it replayed
    from advfit.report.__main__ import main as report

    assert report([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    sweep = collect([tmp_path])
    assert len(sweep.groups()) == 2 and any(k.startswith("attack.pgd") for k in sweep.group_keys)


def test_an_epochs_csv_cut_mid_row_is_a_one_line_error(tmp_path):
    run = write_run(tmp_path, "cifar10", "normal", 0, trend("normal", 0))
    text = run.epochs_csv.read_text()
    run.epochs_csv.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 12])
    with pytest.raises(ReportError, match=r"epochs.csv changed after the run finished"):
        collect([tmp_path])
    run.mark_done()  # DONE vouching for the cut file (written by a version without digests)
    with pytest.raises(ReportError, match=r"epochs.csv is corrupt: its rows are not epochs"):
        collect([tmp_path])
    from advfit.report.__main__ import main as report

    assert report([str(tmp_path)]) == 2
