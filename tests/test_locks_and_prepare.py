"""Locks and data preparation: any number of jobs on one data folder, file systems
without flock, and the launch path from an empty data folder."""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advfit import locks
from advfit.errors import RunError
from advfit.locks import LockHeld, file_lock
from advfit.rundir import RunDir

from . import zygote
from .conftest import FMNIST_SYSTEM, run_cli, user_env


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def system_fmnist() -> Path:
    if not FMNIST_SYSTEM.is_dir():
        pytest.skip("Fashion-MNIST is not installed (make install puts it there on Debian)")
    return FMNIST_SYSTEM


def test_four_processes_prepare_an_empty_data_folder_at_once(tmp_path, system_fmnist):
    data = tmp_path / "data"
    command = [sys.executable, "-m", "advfit.data", "prepare", "data=fashion_mnist"]
    jobs = [
        zygote.popen(
            [*command, f"paths.data_dir={data}"],
            cwd=tmp_path,
            env=user_env(OMP_NUM_THREADS="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0, 0], outputs
    raw = data / "FashionMNIST" / "raw"
    expected = {}
    for gz in sorted(system_fmnist.glob("*-ubyte.gz")):
        with gzip.open(gz, "rb") as src:
            expected[gz.name[: -len(".gz")]] = hashlib.sha256(src.read()).hexdigest()
    assert {p.name: sha256(p) for p in raw.iterdir()} == expected  # no temporary file left
    assert sum("unpacked fashion_mnist" in out for out in outputs) == 1
    assert all("fashion_mnist: ready under" in out for out in outputs)


def test_prepare_names_a_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = zygote.run(
        [sys.executable, "-m", "advfit.data", "prepare", f"paths.data_dir={blocker / 'data'}"],
        env=user_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert f"error: data.data_dir={blocker / 'data'} cannot be created" in result.stderr


def test_a_held_lock_names_its_holder(tmp_path):
    path = tmp_path / "x.lock"
    with file_lock(path):
        probe = (
            "import sys; from advfit.locks import file_lock, LockHeld\n"
            "try:\n    file_lock(sys.argv[1]).__enter__()\n"
            "except LockHeld as held:\n    print(held.holder); sys.exit(3)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True
        )
    assert result.returncode == 3
    assert result.stdout.strip() == f"pid {os.getpid()} on {os.uname().nodename}"


def test_a_file_system_without_flock_gets_a_warning_and_a_lock_file(tmp_path, monkeypatch, caplog):
    def no_flock(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    path = tmp_path / "run" / ".lock"
    with file_lock(path):
        held = path.with_name(".lock.held")
        assert held.read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(LockHeld) as err:
            with file_lock(path):
                pass
        assert err.value.holder.startswith(f"pid {os.getpid()}")
    assert "has no working flock" in caplog.text
    assert not held.exists()
    # A run directory on such a file system is locked, not refused as "in use".
    run = RunDir(tmp_path / "run")
    with run.lock():
        with pytest.raises(RunError, match=f"is being run by pid {os.getpid()}"):
            with run.lock():
                pass
    # A lock file left by a process of this host that no longer runs is taken over.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    held.write_text(f"pid {dead} on {os.uname().nodename}\n")
    with file_lock(path):
        assert held.read_text().startswith(f"pid {os.getpid()} ")
    assert "which no longer runs; taking it over" in caplog.text


def test_other_lock_errors_are_not_taken_for_a_missing_flock(tmp_path, monkeypatch):
    def broken(handle, operation):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError, match="I/O error"):
        with file_lock(tmp_path / "x.lock"):
            pass
    assert locks.NO_FLOCK.isdisjoint({errno.EIO, errno.EAGAIN, errno.EWOULDBLOCK})


@pytest.mark.slow
def test_a_parallel_sweep_starts_from_an_empty_data_folder(tmp_path, system_fmnist):
    """The newcomer's path: make demo's joblib launch with no data/ and no multirun/ (each
    job used to unpack Fashion-MNIST into the same folder under the same name)."""
    result = run_cli(
        "train.py",
        "experiment=demo",
        "hydra.sweeper.params.fold=0",
        "hydra.launcher.n_jobs=2",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={tmp_path / 'data'}",
        "trainer.max_epochs=1",
        "data.train_subset=500",
        "data.test_subset=100",
        "attack=[fgsm]",
        "replay.n_images=20",
        "metrics=none",
        "logger=none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "multirun" / "demo").glob("*/DONE"))
    assert len(runs) == 2
    assert "unpacked fashion_mnist" in result.stdout + result.stderr
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
