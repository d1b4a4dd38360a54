"""Shared run directories: nothing in one runs code, a failed evaluate.py changes nothing, and a
copied sweep is counted once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from advfit.report.__main__ import main as report
from advfit.rundir import RunDir
from advfit.trust import check_targets
from tests.conftest import TINY_RUN, run_cli
from tests.test_report import distances, trend, write_run

pytestmark = pytest.mark.slow


class Payload:
    """A pickle that touches ``marker`` when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path (locks, logs and Hydra's record of
    each launch, ``.hydra/launch``, which every launch writes, aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.name != ".lock"
        and p.suffix != ".log"
        and ".hydra/launch" not in p.relative_to(root).as_posix()
    }


def train_shared(tmp_path: Path, fmnist_dir: Path):
    """The tiny run's train.py command, as a user types it again."""
    return run_cli(
        "train.py",
        *TINY_RUN,
        "task_name=shared",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        cwd=tmp_path,
    )


@pytest.fixture(scope="module")
def module_data(tmp_path_factory, fmnist_dir) -> Path:
    """The module's own copy of Fashion-MNIST, which its run trains on: a test may change a
    file there to check that evaluate.py notices, and puts it back."""
    data = tmp_path_factory.mktemp("data")
    shutil.copytree(fmnist_dir / "FashionMNIST", data / "FashionMNIST")
    return data


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, module_data) -> Path:
    """A finished tiny run (2 epochs, FGSM), trained once for the module."""
    out = tmp_path_factory.mktemp("shared")
    result = train_shared(out, module_data)
    assert result.returncode == 0, result.stderr[-3000:]
    (root,) = (out / "multirun" / "shared").iterdir()
    return root


@pytest.fixture
def run(trained_once, tmp_path) -> RunDir:
    """A copy of the finished tiny run where this test's train.py command finds it (its paths
    are result-neutral: the copy is the same run)."""
    root = tmp_path / "multirun" / "shared" / trained_once.name
    shutil.copytree(trained_once, root, ignore=shutil.ignore_patterns(".lock"))
    return RunDir(root)


def rerun_and_evaluate(run: RunDir, tmp_path: Path, fmnist_dir: Path):
    """(script, output, exit status) of the run's own train.py command run again, then of
    evaluate.py on it."""
    for script, result in (
        ("train.py", train_shared(tmp_path, fmnist_dir)),
        ("evaluate.py", run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)),
    ):
        yield script, result.stdout + result.stderr, result.returncode


def test_a_planted_resume_point_is_not_loaded(run, tmp_path, fmnist_dir):
    before = pd.read_csv(run.epochs_csv)
    marker = tmp_path / "ran"
    run.unmark_done()
    torch.save({"state_dict": Payload(marker), "loops": {}, "epoch": 1}, run.last_checkpoint)
    result = train_shared(tmp_path, fmnist_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists()
    output = result.stdout + result.stderr
    assert "last.ckpt is unreadable (it holds objects other than weights" in output
    # Moved aside, and the run trained again from its start to the same numbers.
    assert (run.root / "checkpoints" / "last.ckpt.corrupt").is_file() and run.is_done()
    pd.testing.assert_frame_equal(before, pd.read_csv(run.epochs_csv))


@pytest.mark.parametrize(
    ("key", "node"),
    [
        ("metrics", "pickle"),  # torch.load of a pickle beside the run
        ("attack.fgsm.attack", "os.system"),  # an attack class that is not one
    ],
)
def test_a_planted_target_in_the_runs_config_is_not_built(run, tmp_path, key, node):
    marker = tmp_path / "ran"
    config = yaml.safe_load(run.config.read_text())
    if node == "pickle":
        torch.save(Payload(marker), run.root / "notes.pt")
        config["metrics"] = {
            "_target_": "torch.load",
            "_args_": [str(run.root / "notes.pt")],
            "weights_only": False,
        }
        expected = "metrics._target_='torch.load' is not a target advfit builds"
    else:
        config["attack"]["fgsm"]["attack"] = node
        expected = "attack.fgsm.attack='os.system' is not a target advfit builds"
    run.config.write_text(yaml.safe_dump(config))
    before = digests(run.root)
    result = run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and expected in said, said[-3000:]
    assert "Traceback" not in said and not marker.exists()
    assert digests(run.root) == before


def test_targets_of_ones_own_are_built_when_trusted():
    config = {"metrics": {"mine": {"_target_": "mypackage.metrics.sharpness"}}}
    with pytest.raises(Exception, match="metrics.mine._target_='mypackage.metrics.sharpness'"):
        check_targets(config, "config.yaml")
    check_targets(config, "config.yaml", ["mypackage.metrics.sharpness"])
    check_targets(config, "config.yaml", ["mypackage."])


def test_a_failed_evaluate_leaves_the_run_as_it_was(run, tmp_path):
    snapshot = run.root / "checkpoints" / "epoch_002.pt"
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    # DONE's digests catch the truncated snapshot first ...
    result = run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "epoch_002.pt changed after the run finished" in said
    # ... and in a run of an earlier version, which recorded none, loading it does, before
    # anything changes.
    summary = json.loads(run.summary_json.read_text())
    del summary["digests"]
    run.summary_json.write_text(json.dumps(summary))
    before = digests(run.root)
    result = run_cli(
        "evaluate.py", f"run_dir={run.root}", "attack=[pgd]", "wandb=false", cwd=tmp_path
    )
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "epoch_002.pt is corrupt" in said, said[-3000:]
    assert run.is_done() and digests(run.root) == before


def test_a_copied_sweep_is_counted_once(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    for fold in (0, 1, 2):
        write_run(sweep, "cifar10", "overfit", fold, trend("overfit", fold), distances(50, 8, 0.5))
    shutil.copytree(sweep, tmp_path / "copy")
    assert report([str(sweep), str(tmp_path / "copy"), "--wandb", "disabled"]) == 0
    out = sweep / "report"
    assert pd.read_csv(out / "verdict.csv")["folds"].tolist() == [3]
    assert pd.read_csv(out / "distances.csv")["folds"].tolist() == [3]
    md = (out / "report.md").read_text()
    assert (
        "Finished runs: 3; left out (no DONE): 0; counted once (the same config, fold and "
        "seed found twice): 3." in md
    )
    name = "cifar10-overfit-fold0-seed0"
    assert f"{tmp_path / 'copy' / name} is the same run as {sweep / name}" in caplog.text


def test_a_finished_runs_edited_results_are_refused_everywhere(run, tmp_path, fmnist_dir):
    epochs = pd.read_csv(run.epochs_csv)
    epochs.loc[0, "val_acc"] = 0.99  # an epoch that now claims to be the best
    epochs.to_csv(run.epochs_csv, index=False)
    before = digests(run.root)
    expected = f"{run.epochs_csv} changed after the run finished"
    for script, said, status in rerun_and_evaluate(run, tmp_path, fmnist_dir):
        assert status == 2 and expected in said, (script, said[-2000:])
    assert report([str(run.root.parent), "--wandb", "disabled"]) == 2
    assert digests(run.root) == before and run.is_done()


def test_done_without_results_is_not_a_finished_run(run, tmp_path, fmnist_dir):
    run.epochs_csv.unlink()
    result = run_cli(
        "train.py",
        *TINY_RUN,
        "task_name=shared",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        cwd=tmp_path,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "holds DONE but no epochs.csv" in said, said[-2000:]


def test_an_adversarial_set_crafted_on_other_weights_is_not_reused(run, tmp_path):
    from advfit.replay.crafting import AdversarialSet
    from advfit.rundir import sha256_file

    path = run.attack_set("fgsm")
    foreign = AdversarialSet.load(path)
    foreign.snapshot = "0" * 64  # another fold's set: same epoch, parameters and sources
    foreign.x_adv = foreign.x_adv.flip(-1)
    foreign.save(path)
    run.unmark_done()
    result = run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said[-3000:]
    assert "reusing" not in said
    crafted = AdversarialSet.load(path)
    best = run.read_summary()["best_epoch"]
    assert crafted.snapshot == sha256_file(run.snapshot(best))
    assert not torch.equal(crafted.x_adv, foreign.x_adv)


def test_a_name_that_leaves_the_sweep_directory_writes_nothing(tmp_path):
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    for name in ("task_name=../../escaped", "run_name=../../escaped"):
        result = run_cli("train.py", name, f"paths.root_dir={root}", cwd=root)
        said = result.stdout + result.stderr
        assert result.returncode == 2 and "is invalid: it names a directory inside" in said
    assert not list(tmp_path.rglob("*.log")) and not list(tmp_path.rglob(".hydra"))


def test_a_custom_data_file_rewritten_under_the_same_path_is_refused(tmp_path, fmnist_dir):
    import numpy as np

    from advfit.data import FashionMNISTDataModule

    source = FashionMNISTDataModule(data_dir=str(fmnist_dir), download=False)
    source.setup()
    npz = tmp_path / "set.npz"
    x, y = source.x_train.numpy(), source.y_train.numpy()
    np.savez(npz, x_train=x[:600], y_train=y[:600], x_test=x[600:800], y_test=y[600:800])
    args = [
        "data=custom",
        f"data.path={npz}",
        "data.name=mine",
        "regime=overfit",
        "trainer.max_epochs=2",
        "attack=[fgsm]",
        "replay.n_images=20",
        "metrics=none",
        "logger=none",
        "task_name=custom",
        f"paths.root_dir={tmp_path}",
    ]
    assert run_cli("train.py", *args, cwd=tmp_path).returncode == 0
    (root,) = (tmp_path / "multirun" / "custom").iterdir()
    np.savez(npz, x_train=x[:600], y_train=y[:600], x_test=x[800:1000], y_test=y[800:1000])
    before = digests(root)
    result = run_cli("evaluate.py", f"run_dir={root}", "wandb=false", cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2, said[-3000:]
    assert f"data.path={npz} is not the file {root.name} was trained on" in said
    assert digests(root) == before


def test_a_garbage_summary_is_one_line_and_changes_nothing(run, tmp_path, fmnist_dir):
    run.summary_json.write_text("{not json")
    before = digests(run.root)
    for script, said, status in rerun_and_evaluate(run, tmp_path, fmnist_dir):
        assert status == 2, (script, said[-2000:])
        assert "summary.json is not readable JSON" in said and "Traceback" not in said
    assert digests(run.root) == before and run.is_done()


def test_a_list_valued_key_that_differs_between_runs_splits_the_groups(tmp_path):
    for fold in (0, 1):
        for attacks in (["fgsm"], ["fgsm", "pgd"]):
            root = tmp_path / "-".join(attacks)
            run = write_run(root, "cifar10", "overfit", fold, trend("overfit", fold))
            run.config.write_text(run.config.read_text() + f"order: {attacks}\n")
            run.mark_done()
    assert report([str(tmp_path), "--wandb", "disabled"]) == 0
    verdict = pd.read_csv(tmp_path / "report" / "verdict.csv")
    assert len(verdict) == 2 and verdict["folds"].tolist() == [2, 2]


def test_a_full_disk_is_one_line_and_exit_2(tmp_path, fmnist_dir, monkeypatch, caplog):
    import errno

    from advfit.cli import reports_user_errors
    from advfit.tasks import train
    from tests.conftest import compose_cfg

    def full(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.epochs_csv))

    monkeypatch.setattr(RunDir, "write_epochs", full)
    cfg = compose_cfg(TINY_RUN, tmp_path, data_dir=fmnist_dir)
    with pytest.raises(SystemExit) as stop:
        reports_user_errors(train)(cfg)
    assert stop.value.code == 2
    assert "no space left on the device writing " in caplog.text
    assert "epochs.csv: free some space and run the same command again" in caplog.text
    assert not list(tmp_path.rglob("DONE"))


def test_a_really_full_disk_stops_the_run_with_one_line(tmp_path, fmnist_dir):
    """A 1 MB tmpfs as the sweep's root: torch's writer fails mid-file (its error's context
    is the OSError ENOSPC). Needs root to mount; skipped elsewhere."""
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(full)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = run_cli(
            "train.py",
            *TINY_RUN,
            f"paths.root_dir={full}",
            f"paths.data_dir={fmnist_dir}",
            cwd=tmp_path,
        )
        said = result.stdout + result.stderr
        assert result.returncode == 2, said[-3000:]
        assert "no space left on the device" in said and "Traceback" not in said
        assert not list(full.rglob("DONE"))
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_a_torchvision_file_replaced_after_training_is_refused(run, tmp_path, module_data):
    recorded = json.loads(run.summary_json.read_text())["data_sha256"]
    assert sorted(recorded) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    ]  # fmt: skip
    labels = module_data / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    raw = labels.read_bytes()
    changed = bytearray(raw)
    changed[8:12] = bytes((b + 1) % 10 for b in raw[8:12])  # four test labels changed
    before = digests(run.root)
    try:
        labels.write_bytes(bytes(changed))
        result = run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)
    finally:
        labels.write_bytes(raw)
    said = result.stdout + result.stderr
    assert result.returncode == 2, said[-3000:]
    assert "t10k-labels-idx1-ubyte under " in said and "differ from the files" in said
    assert digests(run.root) == before
