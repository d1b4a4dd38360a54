"""Sweeps that scale and survive: ranges, stable directories, resume after a kill, launchers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from advfit.errors import ConfigError
from advfit.identity import config_differences
from advfit.sweep import expand_range, progress, write_manifest
from tests import zygote
from tests.conftest import ROOT, run_cli, user_env
from tests.wandb_history import history, offline_runs

TINY = [
    "debug=fast",
    "data.train_subset=1000",
    "data.test_subset=200",
    "replay.n_images=30",
    "metrics.n_images=50",
    "metrics.clever=null",
    "metrics.robust_accuracy=null",
    "attack=[fgsm]",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def test_integer_ranges_expand_inclusively():
    assert expand_range("fold=0-4") == "fold=range(0,5)"
    assert expand_range("seed=3-3") == "seed=range(3,4)"
    for unchanged in ("fold=0,1,2", "fold=range(5)", "regime.lr=1e-5", "data=cifar10", "fold=2"):
        assert expand_range(unchanged) == unchanged
    with pytest.raises(ConfigError, match=r"fold=4-0 is an empty range.*fold=0-4"):
        expand_range("fold=4-0")


def test_config_differences_name_the_keys():
    old = {"regime": {"lr": 0.1}, "paths": {"root_dir": "/a"}, "attack": {"fgsm": {"eps": 0.3}}}
    new = {"regime": {"lr": 0.2}, "paths": {"root_dir": "/b"}, "attack": {"fgsm": {"eps": 0.3}}}
    assert config_differences(old, new) == ["regime.lr: 0.1 -> 0.2"]


def test_keys_added_later_read_as_what_older_runs_did():
    old = {"model": {"net": {"pool": "max"}, "optimizer": {"lr": 0.1}}}
    same = {
        "model": {"net": {"pool": "max", "init": "torch"}, "optimizer": {"lr": 0.1, "eps": 1e-8}}
    }
    assert config_differences(old, same) == []
    keras = {"model": {"net": {"pool": "max", "init": "keras"}, "optimizer": {"lr": 0.1}}}
    assert config_differences(old, keras) == ["model.net.init: 'torch' -> 'keras'"]


def test_progress_counts_complete_runs_and_estimates_the_time_left(tmp_path, monkeypatch):
    runs = [tmp_path / f"run{i}" for i in range(5)]
    for run in runs:
        run.mkdir()
    assert progress(runs[0]) is None  # no sweep.json: a single run says nothing
    monkeypatch.setattr("advfit.sweep.time.time", lambda: 1_000.0)
    write_manifest(tmp_path, runs[:4])
    assert progress(tmp_path / "elsewhere") is None
    # run0 was complete before this launch (it counts, but not in the rate); run1 and run2
    # completed during it, the second 400 s after it started; 600 s in, the 1 run left is
    # estimated at 600 s / 2 runs = 300 s.
    for run, when in ((runs[0], 500.0), (runs[1], 1_200.0), (runs[2], 1_400.0)):
        (run / "DONE").touch()
        os.utime(run / "DONE", (when, when))
    monkeypatch.setattr("advfit.sweep.time.time", lambda: 1_600.0)
    assert progress(runs[2]) == "sweep: 3 of 4 runs complete; about 5m00s left"
    # Three jobs side by side: no estimate before three runs of this launch are complete.
    assert progress(runs[2], at_once=3) == "sweep: 3 of 4 runs complete"
    assert progress(runs[2], at_once=2) == "sweep: 3 of 4 runs complete; about 5m00s left"
    # Nothing completed in this launch yet: no estimate.
    os.utime(runs[1] / "DONE", (900.0, 900.0))
    os.utime(runs[2] / "DONE", (900.0, 900.0))
    assert progress(runs[2]) == "sweep: 3 of 4 runs complete"
    (runs[3] / "DONE").touch()
    monkeypatch.setattr("advfit.sweep.time.time", lambda: 1_000.0 + 3 * 3600 + 120)
    assert progress(runs[3]) == "sweep: 4 of 4 runs complete (3h02m this launch)"
    (tmp_path / "sweep.json").write_text("{not json")
    assert progress(runs[3]) is None


def sweep_dirs(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in (root / "multirun" / "debug").iterdir()
        if p.is_dir() and not p.name.startswith(".")
    )


@pytest.mark.slow
def test_the_users_literal_command_makes_ten_runs_and_a_rerun_skips_them(tmp_path, fmnist_dir):
    args = [
        "-m",
        "regime=normal,overfit",
        "fold=0-4",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        *TINY,
    ]
    result = run_cli("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    names = sweep_dirs(tmp_path)
    assert len(names) == 10
    assert {n.split("_attack=")[0] for n in names} == {
        f"fashion_mnist-{r}-fold{k}-seed0" for r in ("normal", "overfit") for k in range(5)
    }
    assert all((tmp_path / "multirun" / "debug" / n / "DONE").is_file() for n in names)
    again = run_cli("train.py", *args, cwd=tmp_path)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("skipping") == 10
    assert sweep_dirs(tmp_path) == names
    # Both launches stay recorded, each with its composed config.
    sweep = tmp_path / "multirun" / "debug"
    launches = json.loads((sweep / "sweep.json").read_text())["launches"]
    assert [len(launch["runs"]) for launch in launches] == [10, 10]
    assert all((sweep / launch["config"]).is_file() for launch in launches)

    # The report reads the sweep's run directories: two groups of five folds.
    from advfit.report.__main__ import main as report

    assert report([str(tmp_path / "multirun" / "debug")]) == 0
    text = (tmp_path / "multirun" / "debug" / "report" / "report.md").read_text()
    assert "Finished runs: 10; left out (no DONE): 0" in text
    for regime in ("normal", "overfit"):
        for reading in ("paper's", "given correct"):
            assert text.count(f"fashion_mnist, {regime}, fgsm ({reading} ASR): ") == 1
    assert (tmp_path / "multirun" / "debug" / "report" / "fig4.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fold=4-0"], "fold=4-0 is an empty range"),
        (["fold=3-5"], "fold=5 is invalid: accepted values are 0..4"),
        # A later job's bad value stops the sweep before its first job: the sweeper checks
        # every job with train()'s own checks (each value of those: test_reliability.py).
        (["regime.lr=0.1,-1"], "regime.lr=-1 is invalid"),
        (["regime.lr=0.1", "replay.n_images=0,20"], "replay.n_images=0 is invalid"),
    ],
)
def test_bad_sweeps_stop_before_any_job_starts(tmp_path, args, message):
    result = run_cli("train.py", "-m", f"paths.root_dir={tmp_path}", *TINY, *args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not list(tmp_path.rglob("epochs.csv")) and not list(tmp_path.rglob("*.log"))


def kill_when(
    args: list[str], cwd: Path, marker: str, sig: int = signal.SIGKILL, timeout: float = 240
) -> str:
    """Start train.py, send ``sig`` as soon as a file matching ``marker`` appears; returns
    the launch's output."""
    log = cwd / f"launch-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        proc = zygote.popen(
            [sys.executable, str(ROOT / "train.py"), *args],
            cwd=cwd,
            stdout=out,
            stderr=out,
            env=user_env(),
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if list(cwd.rglob(marker)):
                    os.kill(proc.pid, sig)
                    break
                time.sleep(0.02)
        finally:
            proc.wait(timeout=60)
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 128 + sig
    assert proc.returncode == expected, (
        f"the run ended ({proc.returncode}) before {marker} appeared: {log.read_text()[-2000:]}"
    )
    return log.read_text()


def completed_epochs(run_root: Path) -> int:
    """The last epoch the resume point holds (Lightning saves the 0-based epoch index)."""
    checkpoint = torch.load(run_root / "checkpoints" / "last.ckpt", weights_only=False)
    return int(checkpoint["epoch"]) + 1


def trained_epochs(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"epoch (\d+) trained", output)]


@pytest.mark.slow
def test_sigkill_in_training_and_in_replay_then_rerun_equals_an_uninterrupted_run(
    tmp_path, fmnist_dir
):
    common = [
        "regime=overfit",
        "trainer.max_epochs=4",
        "data.train_subset=6000",
        "data.test_subset=300",
        "replay.n_images=100",
        "metrics.n_images=100",
        "metrics.clever.n_images=2",
        "metrics.clever.pool_factor=2",
        "attack=[fgsm,cw]",
        "trainer.enable_progress_bar=false",
        f"paths.data_dir={fmnist_dir}",
        "task_name=kill",
    ]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    assert (
        run_cli("train.py", *common, "logger=none", f"paths.root_dir={whole}", cwd=whole).returncode
        == 0
    )

    args = [*common, "logger=wandb", f"paths.root_dir={killed}"]
    first = kill_when(args, killed, "epoch_003.pt")  # during training
    (run,) = (killed / "multirun" / "kill").iterdir()
    done = completed_epochs(run)
    # Killed as epoch 3's snapshot appeared: the resume point holds epoch 2, or 3 when the
    # kill came after it was written; never the start. "epoch N trained" is logged just after
    # the resume point is saved, so a kill between the two leaves epoch N unlogged.
    assert done in (2, 3)
    assert trained_epochs(first) in (list(range(1, done + 1)), list(range(1, done)))
    assert not list(killed.rglob("DONE"))
    second = kill_when(args, killed, "fgsm.pt")  # during the replay, crafting cw
    assert f"after epoch {done} (last.ckpt)" in second
    assert trained_epochs(second) == list(range(done + 1, 5))  # it trained the rest only
    assert not list(killed.rglob("DONE")) and not list(killed.rglob("distances.csv"))
    result = run_cli("train.py", *args, cwd=killed)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "after epoch 4 (last.ckpt)" in output and trained_epochs(output) == []
    assert "reusing" in output  # the complete fgsm set was not crafted again

    (a,) = (whole / "multirun" / "kill").iterdir()
    assert a.name == run.name and (run / "DONE").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(a / "epochs.csv"), pd.read_csv(run / "epochs.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(a / "distances.csv"), pd.read_csv(run / "distances.csv")
    )
    # Every launch continued the same W&B run, and the last launch's offline run holds every
    # epoch's row on its own (wandb sync does not merge the killed launches' fragments).
    ids = {p.name.rsplit("-", 1)[1] for p in (run / "wandb").glob("offline-run-*")}
    assert len(list((run / "wandb").glob("offline-run-*"))) == 3 and len(ids) == 1
    rows = history(run, offline_runs(run)[-1])
    epochs = pd.read_csv(run / "epochs.csv")
    for column in epochs.columns.drop("epoch"):
        assert [r["epoch"] for r in rows if column in r] == [1, 2, 3, 4], column


@pytest.mark.slow
def test_sigterm_and_sigint_stop_with_their_status_and_each_next_launch_resumes(
    tmp_path, fmnist_dir
):
    """SIGTERM (a scheduler's stop, exit 143) in the first launch, SIGINT (Ctrl-C, exit 130)
    in the second: each writes no DONE, the next launch resumes after the last finished
    epoch, and the third trains the rest and finishes."""
    args = [
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        *TINY,
        "trainer.max_epochs=5",
        "data.train_subset=3000",
    ]
    done = 0
    # The first stop between epochs 1 and 2; the second once the resumed launch has written a
    # snapshot two epochs on (one the first launch cannot have left behind).
    for sig, marker in ((signal.SIGTERM, "last.ckpt"), (signal.SIGINT, None)):
        output = kill_when(args, tmp_path, marker or f"epoch_{done + 2:03d}.pt", sig=sig)
        assert f"stopped by {signal.Signals(sig).name}; no DONE written" in output
        if done:
            assert f"after epoch {done} (last.ckpt)" in output
        (run,) = (tmp_path / "multirun" / "debug").iterdir()
        assert not (run / "DONE").exists()
        stopped_after = completed_epochs(run)
        assert stopped_after > done  # it trained on after each resume
        done = stopped_after
    assert done < 5
    result = run_cli("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"after epoch {done} (last.ckpt)" in output
    assert trained_epochs(output) == list(range(done + 1, 6)) and (run / "DONE").is_file()


@pytest.mark.slow
def test_a_corrupt_last_checkpoint_falls_back_with_a_warning(tmp_path, fmnist_dir):
    args = [f"paths.root_dir={tmp_path}", f"paths.data_dir={fmnist_dir}", *TINY]
    assert run_cli("train.py", *args, cwd=tmp_path).returncode == 0
    (run,) = (tmp_path / "multirun" / "debug").iterdir()
    before = pd.read_csv(run / "epochs.csv")
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (run / "DONE").unlink()
    result = run_cli("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "last.ckpt is unreadable" in output and "Traceback" not in output
    pd.testing.assert_frame_equal(before, pd.read_csv(run / "epochs.csv"))
    assert (run / "DONE").is_file() and (run / "checkpoints" / "last.ckpt.corrupt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_job_sweeps_through_the_launchers(tmp_path, fmnist_dir, launcher):
    extra = (
        ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    )
    # Progress bars left on: jobs that run side by side drop theirs by themselves.
    tiny = [a for a in TINY if not a.startswith("trainer.enable_progress_bar")]
    if launcher == "joblib":  # offline W&B, whose groups name the swept key first
        tiny = [a for a in tiny if a != "logger=none"] + ["logger=wandb"]
    result = run_cli(
        "train.py",
        "-m",
        f"hydra/launcher={launcher}",
        *extra,
        "fold=0-1" if launcher != "joblib" else "regime.lr=0.0024,0.003",
        "regime=overfit",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        *tiny,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if launcher == "joblib":
        out = result.stdout + result.stderr
        # One line per epoch and the sweep's progress as each job completes; no bars.
        assert out.count("epoch 2 trained") == 2
        assert "Epoch 0:" not in out and "it/s]" not in out
        # Two jobs side by side: no estimate from the first run alone (it would double it).
        lines = re.findall(r"sweep: (\d) of 2 runs complete(.*)", out)
        assert lines and all(tail == "" for k, tail in lines if k == "1"), lines
        assert re.fullmatch(r" \(\d+m\d\ds this launch\)", lines[-1][1]), lines
        # Many fixed overrides and a swept one: the W&B group names the swept value first.
        groups = [
            yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["logger"]["wandb"]["group"]
            for run in (tmp_path / "multirun" / "debug").iterdir()
            if (run / ".hydra" / "config.yaml").is_file()
        ]
        swept = sorted(g.split("seed0_")[1].split("_")[0] for g in groups)
        assert swept == ["lr=0.0024", "lr=0.003"], groups
        assert all(g.startswith("debug/fashion_mnist-overfit-seed0_lr=0.") for g in groups)
    runs = [tmp_path / "multirun" / "debug" / n for n in sweep_dirs(tmp_path)]
    assert len(runs) == 2
    for run in runs:
        assert (run / "DONE").is_file()
        epochs = pd.read_csv(run / "epochs.csv")
        assert len(epochs) == 2 and epochs["asr_fgsm"].notna().all()
        assert pd.read_csv(run / "distances.csv")["n"].tolist() == [30]


@pytest.mark.parametrize("entry", ["train.py", "evaluate.py"])
def test_the_launching_process_does_not_import_lightning(entry):
    """A sweep's launching process only composes configs and starts jobs; Lightning (about
    10 s to import here) is imported by each job where it runs, not first by the launcher."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('entry', {str(ROOT / entry)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted({'pytorch_lightning', 'torch'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("command", "checked", "refused"),
    [
        (["train.py", "-m", "fold=0,5"], {"advfit.data.folds", "advertorch"}, "fold=5 is invalid"),
        (
            ["train.py", "attack.fgsm.eps=0"],
            {"advfit.data.folds", "advertorch"},
            "eps=0 is invalid",
        ),
        (["evaluate.py", "run_dir=nowhere"], {"advfit.trust"}, "nowhere is not a run directory"),
    ],
    ids=["sweep", "run", "evaluate"],
)
def test_up_front_checks_do_not_import_lightning(command, checked, refused):
    """The launching process checks every job's config before starting any, and a single run
    checks its own before it trains: folds (numpy, scikit-learn) and attacks (advertorch,
    torch), not Lightning, which a job imports where it runs. In the sweep job fold=0 passes
    every check and fold=5 is refused; the run's folds pass and its attack is refused.
    evaluate.py checks the run directory it is given before it imports Lightning."""
    script, *args = command
    out = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 2 and refused in out.stdout + out.stderr
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert checked <= imported  # the checks ran ...
    assert not {"pytorch_lightning", "torchmetrics"} & imported  # ... without Lightning


def test_every_launch_of_a_sweep_stays_in_its_manifest(tmp_path, monkeypatch):
    from advfit.sweep import read_manifest

    # A manifest of an earlier version (one launch, rewritten each time) reads as one launch.
    (tmp_path / "sweep.json").write_text(json.dumps({"started": 5.0, "runs": ["old"]}))
    monkeypatch.setattr("advfit.sweep.time.time", lambda: 10.0)
    kept = write_manifest(tmp_path, [tmp_path / "a", tmp_path / "b"], ["fold=0,1"])
    monkeypatch.setattr("advfit.sweep.time.time", lambda: 20.0)
    second = write_manifest(tmp_path, [tmp_path / "c"], ["fold=2"])
    launches = json.loads((tmp_path / "sweep.json").read_text())["launches"]
    assert [(x["started"], x["runs"], x.get("overrides")) for x in launches] == [
        (5.0, ["old"], None),
        (10.0, ["a", "b"], ["fold=0,1"]),
        (20.0, ["c"], ["fold=2"]),
    ]
    assert (kept.name, second.name) == ("multirun.1.yaml", "multirun.2.yaml")
    assert read_manifest(tmp_path) == (20.0, ["c"])  # progress reads the newest launch


def test_a_refused_launch_leaves_no_run_folder(tmp_path):
    """Hydra makes the run's folder (its log, .hydra/launch) before the checks refuse fold=9:
    the refusal takes it away again, and the sweep folder it made, now empty."""
    result = zygote.run(
        [sys.executable, str(ROOT / "train.py"), "fold=9", "task_name=refused"],
        cwd=tmp_path,
        env={**os.environ, "ADVFIT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 2 and "fold=9 is invalid" in result.stdout + result.stderr
    assert not (tmp_path / "multirun" / "refused").exists()
