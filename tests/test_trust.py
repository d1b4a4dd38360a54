"""Shared run directories: nothing in one runs code, a failed evaluate.py changes nothing, and a
copied sweep is counted once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from advfit.report.__main__ import main as report
from advfit.rundir import RunDir
from advfit.trust import check_targets
from tests import zygote
from tests.conftest import ROOT, TINY_RUN, run_cli, user_env
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


def evaluate_refuses_planted(
    run: RunDir, config: dict, tmp_path: Path, expected: str, marker: Path
) -> str:
    """Write ``config`` as the run's saved config and run evaluate.py on it: exit 2 with
    ``expected`` said, the planted payload never ran (no ``marker``), and no file of the run
    changed. Returns what evaluate.py said."""
    run.config.write_text(yaml.safe_dump(config))
    before = digests(run.root)
    result = run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and expected in said, said[-3000:]
    assert not marker.exists() and digests(run.root) == before
    return said


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
    """In an unfinished run (a finished one's config is refused by DONE's digests first)."""
    run.unmark_done()
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
    said = evaluate_refuses_planted(run, config, tmp_path, expected, marker)
    assert "Traceback" not in said


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
    del summary["digests"], summary["learned"]  # both came the same day
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
    from advfit.files import sha256_file
    from advfit.replay.crafting import AdversarialSet

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


def wait_for_file(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_a_data_file_rewritten_between_a_kill_and_a_resume_is_never_mixed_in(tmp_path, fmnist_dir):
    """SIGKILL after epoch 2, the .npz rewritten under the same path: the resume is refused
    (so are an edited epochs.csv row and, once the run is complete and its DONE removed, a
    relaunch or evaluate.py that would replay the cached sets on the new file); on the file
    it was trained on, the same command resumes after its last epoch."""
    import numpy as np

    from advfit.data import FashionMNISTDataModule

    source = FashionMNISTDataModule(data_dir=str(fmnist_dir), download=False)
    source.setup()
    x, y = source.x_train.numpy(), source.y_train.numpy()
    npz = tmp_path / "big.npz"

    def write(first_test: int) -> None:
        test = slice(first_test, first_test + 200)
        np.savez(npz, x_train=x[:1200], y_train=y[:1200], x_test=x[test], y_test=y[test])

    write(2000)
    old = hashlib.sha256(npz.read_bytes()).hexdigest()
    args = [
        "data=custom",
        f"data.path={npz}",
        "data.name=mine",
        "regime=overfit",
        "trainer.max_epochs=15",
        "attack=[fgsm]",
        "replay.n_images=20",
        "metrics=none",
        "logger=none",
        "task_name=custom",
        f"paths.root_dir={tmp_path}",
    ]
    job = zygote.popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=tmp_path,
        env=user_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    (root,) = wait_for_dir(tmp_path / "multirun" / "custom", job)
    run = RunDir(root)
    wait_for_file(run.snapshot(2), job)
    job.kill()
    job.wait()
    assert run.inputs_json.is_file() and not run.summary_json.exists()
    write(2200)  # other test images under the same name
    new = hashlib.sha256(npz.read_bytes()).hexdigest()
    before = digests(root)
    result = run_cli("train.py", *args, cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2, said[-3000:]
    assert f"{root.name} was trained on other data than it would read now" in said
    assert f"sha256 {old[:12]}... in inputs.json" in said and f"{new[:12]}... now" in said
    assert "Traceback" not in said and digests(root) == before and not run.is_done()

    write(2000)  # the file it was trained on, but an epochs.csv row edited meanwhile
    epochs = pd.read_csv(run.epochs_csv)
    edited = epochs.copy()
    edited.loc[0, "val_acc"] = 0.999
    edited.to_csv(run.epochs_csv, index=False)
    result = run_cli("train.py", *args, cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "says val_acc=0.999 at epoch 1" in said, said[-3000:]
    run.write_epochs(epochs)

    result = run_cli("train.py", *args, cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 0 and run.is_done(), said[-3000:]
    resumed = int(re.search(r"resuming \S+ after epoch (\d+)", said)[1])
    # SIGKILL came after epoch 2's snapshot, so at most epoch 2 is trained again.
    assert resumed >= 1 and f"epoch {resumed + 1} trained:" in said
    assert f"epoch {resumed} trained:" not in said

    run.unmark_done()  # a finished run relaunched on a rewritten file
    write(2200)
    before = digests(root)
    for script, extra in (("train.py", args), ("evaluate.py", [f"run_dir={root}", "wandb=false"])):
        result = run_cli(script, *extra, cwd=tmp_path)
        said = result.stdout + result.stderr
        assert result.returncode == 2, (script, said[-3000:])
        assert "was trained on other data than it would read now" in said
        assert "reusing" not in said
    assert digests(root) == before


def wait_for_dir(parent: Path, process: subprocess.Popen, seconds: float = 60) -> list[Path]:
    deadline = time.monotonic() + seconds
    while not (parent.is_dir() and list(parent.iterdir())):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"nothing appeared under {parent}"
        time.sleep(0.05)
    return list(parent.iterdir())


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
        assert "no space left on the device writing " in said and "Traceback" not in said
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
    assert f"{run.root.name} was trained on other data than it would read now" in said
    assert "(t10k-labels-idx1-ubyte changed): sha256 {t10k-labels-idx1-ubyte: " in said
    assert digests(run.root) == before


@pytest.mark.parametrize("done", [True, False], ids=["done", "unfinished"])
@pytest.mark.parametrize("loader", ["pandas.read_pickle", "torch.load"])
def test_a_resolver_in_a_saved_config_runs_nothing(run, tmp_path, loader, done):
    """``${oc.create:{_target_: ...}}`` in a run's saved config would build a target while the
    config resolves, before any target check: refused before anything is built, DONE or not."""
    marker = tmp_path / "ran"
    pickle = tmp_path / "evil.pkl"
    torch.save(Payload(marker), pickle)  # a pickle that pandas.read_pickle and torch.load run
    path = "filepath_or_buffer" if loader.startswith("pandas") else "f"
    extra = "" if loader.startswith("pandas") else ", weights_only: false"
    evil = f"${{oc.create:{{_target_: {loader}, {path}: {pickle}{extra}}}}}"
    config = yaml.safe_load(run.config.read_text())
    if done:
        config["metrics"] = evil
        expected = "config.yaml changed after the run finished"
    else:
        run.unmark_done()
        config["model"]["net"]["evil"] = evil
        expected = "model.net.evil calls the resolver oc.create (${oc.create:...})"
    said = evaluate_refuses_planted(run, config, tmp_path, expected, marker)
    assert len(said.strip().splitlines()) == 1


def test_only_advfits_own_resolvers_are_read_from_a_run_directory():
    from advfit.trust import check_resolvers

    check_resolvers({"a": "${advfit.abspath:x}", "b": ["${data.name}", 1.0], "c": "plain"}, "f")
    for text, name in [
        ("${oc.env:HOME}", "oc.env"),
        ("x ${oc.decode:'{a: 1}'}", "oc.decode"),
        ("${ oc.create : {a: 1}}", "oc.create"),
        ("${advfit.abspath:${oc.env:HOME}}", "oc.env"),  # nested inside one of advfit's
        ("${mine.resolver:1}", "mine.resolver"),
    ]:
        with pytest.raises(Exception, match=rf"x\.y calls the resolver {re.escape(name)} "):
            check_resolvers({"x": {"y": text}}, "f")
    with pytest.raises(Exception, match="calls the resolver oc.env"):
        check_resolvers({"${oc.env:HOME}": 1}, "f")  # a key too


def test_the_config_library_behaviour_the_checks_rely_on(tmp_path):
    """What advfit's checks stand on, pinned (pyproject bounds hydra-core and omegaconf):
    loading a config resolves nothing, so the resolver check sees the calls as written;
    resolving ``oc.create`` builds a node that instantiate would call; Hydra's
    ``run_and_report``, which advfit.cli wraps, is where it was."""
    import hydra._internal.utils as hydra_utils
    from omegaconf import OmegaConf

    path = tmp_path / "config.yaml"
    path.write_text("evil: '${oc.create:{_target_: os.getcwd}}'\nname: ${other}\nother: x\n")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert raw == {"evil": "${oc.create:{_target_: os.getcwd}}", "name": "${other}", "other": "x"}
    resolved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert resolved["evil"] == {"_target_": "os.getcwd"} and resolved["name"] == "x"
    assert callable(hydra_utils.run_and_report)


def test_a_summary_without_digests_vouches_for_nothing(run, tmp_path, fmnist_dir):
    """summary.json's digests deleted and epochs.csv edited: nothing vouches for the numbers,
    so the report and evaluate.py refuse the run (an earlier version's run, which recorded no
    learning record either, still reads: test_a_failed_evaluate_leaves_the_run_as_it_was)."""
    summary = json.loads(run.summary_json.read_text())
    del summary["digests"]
    run.summary_json.write_text(json.dumps(summary))
    epochs = pd.read_csv(run.epochs_csv)
    epochs["asr_fgsm"] = 0.999
    epochs.to_csv(run.epochs_csv, index=False)
    refused_everywhere(
        run, tmp_path, "summary.json records no digests of its files, so nothing vouches for"
    )


def refused_everywhere(run: RunDir, tmp_path: Path, expected: str) -> None:
    """evaluate.py and the report of the run's sweep each exit 2 with ``expected``, one line
    and no traceback, and no file of the run changes."""
    before = digests(run.root)
    result = run_cli("evaluate.py", f"run_dir={run.root}", "wandb=false", cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and expected in said, said[-2000:]
    result = zygote.run(
        [sys.executable, "-m", "advfit.report", str(run.root.parent), "--wandb", "disabled"],
        cwd=run.root.parent,
    )
    assert result.returncode == 2 and expected in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and digests(run.root) == before


def test_an_edited_summary_is_refused_by_the_report_and_evaluate(run, tmp_path):
    summary = json.loads(run.summary_json.read_text())
    summary["best_epoch"], summary["fold"] = 1, 4
    run.summary_json.write_text(json.dumps(summary, indent=2))
    refused_everywhere(run, tmp_path, "summary.json changed after the run finished")


def test_evaluate_never_seals_an_edited_epochs_csv(run, tmp_path):
    """An unfinished run's epochs.csv with an edited val_acc would move the best epoch, craft
    there and write DONE with fresh digests: its rows are checked against the record training
    kept in last.ckpt first."""
    run.unmark_done()
    epochs = pd.read_csv(run.epochs_csv)
    epochs.loc[0, "val_acc"] = 0.99
    epochs.to_csv(run.epochs_csv, index=False)
    before = digests(run.root)
    result = run_cli(
        "evaluate.py", f"run_dir={run.root}", "wandb=false", "cpu_threads=1", cwd=tmp_path
    )
    said = result.stdout + result.stderr
    assert result.returncode == 2, said[-3000:]
    assert "epochs.csv says val_acc=0.99 at epoch 1, but training wrote " in said
    assert "using 1 CPU threads" in said  # evaluate.py takes cpu_threads as train.py does
    assert digests(run.root) == before and not run.is_done()
