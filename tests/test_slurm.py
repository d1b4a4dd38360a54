"""The SLURM launcher on a real single-node SLURM cluster (tests/slurm_cluster.py).

Skipped, with the reason, where the cluster cannot be started (no root, no Debian packages:
``make install`` installs slurm-wlm and munge on Debian as root).

SLURM keeps a requeued job pending for about two minutes (its EligibleTime is the requeue plus
120 s). A cluster's operator may start it sooner; these tests do so (``scontrol update
StartTime=now``) to keep the suite short. The requeue itself, the restart and the resume are
SLURM's and advfit's own.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from advfit.locks import file_lock
from tests import slurm_cluster, zygote
from tests.conftest import ROOT, run_cli, session_dir, user_env
from tests.test_sweeps import TINY

pytestmark = pytest.mark.slow


# One run longer than a one-minute time limit (SLURM signals it after 45 s): 24 epochs on
# 12,000 images (about 2 s each on one core here), with CLEVER on two images every sixth
# snapshot, so that every file the resume must reproduce (epochs.csv, distances.csv,
# clever.csv) is written. One thread wherever it runs: CPU results are bit-identical at a
# fixed thread count.
EPOCHS = 24
LONG = [
    "regime=overfit",
    "fold=0",
    f"trainer.max_epochs={EPOCHS}",
    "data.train_subset=12000",
    "data.test_subset=300",
    "replay.n_images=50",
    "metrics.n_images=50",
    "metrics.clever.n_images=2",
    "metrics.clever.pool_factor=2",
    "metrics.every_k=6",
    "attack=[fgsm,pgd]",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "cpu_threads=1",
    "task_name=long",
]
COMPARED = ("epochs.csv", "distances.csv", "clever.csv")


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """The environment that reaches the tests' own cluster, started for this module (it stays
    whole on one pytest-xdist worker) and stopped after it: the daemons it started, only."""
    slurm_cluster.HOME.mkdir(parents=True, exist_ok=True)
    try:
        with file_lock(slurm_cluster.HOME / "start.lock", wait=True):
            env = slurm_cluster.start()
    except slurm_cluster.Unavailable as why:
        pytest.skip(f"SLURM cannot run here: {why}")
    yield env
    with file_lock(slurm_cluster.HOME / "start.lock", wait=True):
        slurm_cluster.stop()


def squeue(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(job id, state, reason) of the cluster's jobs."""
    out = subprocess.run(
        ["squeue", "--noheader", "--format=%i %T %r"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return [tuple(line.split()[:3]) for line in out.stdout.splitlines() if line.strip()]


def start_held_jobs(env: dict[str, str], jobs: set[str], held: dict[str, float]) -> None:
    """Start those of ``jobs`` SLURM holds after a requeue (reason BeginTime) now, once they
    have been held for 2 s (``held``: when each was first seen held). A requeue revokes the
    job's credentials up to the second it happened: a job started again within that second
    is killed as "non-startable" and never runs again."""
    now = time.monotonic()
    waiting = {
        job
        for job, state, reason in squeue(env)
        if job in jobs and state == "PENDING" and reason == "BeginTime"
    }
    for job in set(held) - waiting:
        del held[job]
    for job in waiting:
        if now - held.setdefault(job, now) >= 2:
            subprocess.run(
                ["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True
            )
            del held[job]


def job_ids(sweep: Path) -> set[str]:
    """The SLURM ids of a sweep's jobs (array tasks, ``<array>_<task>``): submitit names a
    folder after each job it submitted."""
    return {p.parent.name for p in (sweep / ".submitit").glob("*/*_submitted.pkl")}


def launch(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    log = (cwd / "launch.log").open("w")
    return zygote.popen(
        [sys.executable, str(ROOT / "train.py"), "-m", *args],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=user_env(**env),
    )


def wait_for(
    proc: subprocess.Popen, cwd: Path, sweep: Path, env: dict[str, str], on_poll=None
) -> str:
    """Wait for a launch to end, starting its held jobs; returns its output."""
    deadline = time.monotonic() + 480
    held: dict[str, float] = {}
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the launch did not end in 480 s: {squeue(env)}")
        if on_poll is not None:
            on_poll()
        start_held_jobs(env, job_ids(sweep), held)
        time.sleep(1)
    return (cwd / "launch.log").read_text()


def job_log(sweep: Path) -> str:
    """Everything the sweep's jobs printed, over every start."""
    logs = sorted((sweep / ".submitit").rglob("*_log.*"))
    return "\n".join(p.read_text() for p in logs)


def uninterrupted(tmp_path_factory, data_dir: Path) -> Path:
    """The long run trained in one go on this machine, what every interrupted run must equal:
    trained once for the whole session (pytest-xdist workers share it through a lock)."""
    root = session_dir(tmp_path_factory, "slurm-uninterrupted")
    with file_lock(root / ".lock", wait=True):
        runs = list((root / "multirun" / "long").glob("*/DONE"))
        if not runs:
            result = run_cli(
                "train.py", *LONG, f"paths.root_dir={root}", f"paths.data_dir={data_dir}", cwd=root
            )
            assert result.returncode == 0, result.stderr[-3000:]
            runs = list((root / "multirun" / "long").glob("*/DONE"))
    (done,) = runs
    return done.parent


def assert_equal_files(run: Path, reference: Path) -> None:
    assert run.name == reference.name and (run / "DONE").is_file()
    for name in COMPARED:
        pd.testing.assert_frame_equal(pd.read_csv(run / name), pd.read_csv(reference / name))


def test_a_two_by_two_sweep_runs_on_slurm_and_its_report_builds(slurm, tmp_path, fmnist_dir):
    result = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=10",
        "regime=normal,overfit",
        "fold=0,1",
        "trainer.max_epochs=2",
        "task_name=cluster",
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
        *TINY,
        cwd=tmp_path,
        env=slurm,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    sweep = tmp_path / "multirun" / "cluster"
    runs = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 4 and all((run / "DONE").is_file() for run in runs)
    # Each job ran under SLURM (its logs are under .submitit, one folder per job) with the
    # one CPU it asked for.
    assert len(job_ids(sweep)) == 4
    assert job_log(sweep).count("using 1 CPU threads") == 4
    for run in runs:
        epochs = pd.read_csv(run / "epochs.csv")
        assert len(epochs) == 2
        if "overfit" in run.name:  # lr 0.0024 learns in two epochs (chance: 0.1)
            assert epochs["test_acc"].iloc[-1] > 0.5 and epochs["asr_fgsm"].notna().all()
    out = zygote.run(
        [sys.executable, "-m", "advfit.report", str(sweep)],
        cwd=tmp_path,
        env=user_env(),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = (sweep / "report" / "report.md").read_text()
    assert "Finished runs: 4; left out (no DONE): 0" in report
    verdict = pd.read_csv(sweep / "report" / "verdict.csv")
    # A row per regime and reading of the ASR (the paper's, and among correct sources).
    assert sorted(zip(verdict["regime"], verdict["asr"], strict=True)) == [
        ("normal", "given correct"), ("normal", "paper's"),
        ("overfit", "given correct"), ("overfit", "paper's"),
    ] and set(verdict["folds"]) == {2}  # fmt: skip


def test_a_job_past_its_time_limit_and_requeued_by_hand_resumes_after_its_last_epoch(
    slurm, tmp_path, tmp_path_factory, fmnist_dir
):
    """One job meets both ways a cluster stops a run: its time limit (one minute, shorter
    than the run; SLURM signals it, submitit requeues it), and then, once it has resumed and
    trained an epoch, an operator's ``scontrol requeue``. Each start resumes after the last
    epoch finished before it, and the run ends with the files of an uninterrupted one."""
    args = [
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=1",
        *LONG,
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={fmnist_dir}",
    ]
    sweep = tmp_path / "multirun" / "long"
    requeued: list[int] = []  # the last epoch logged when the operator requeued the job

    def requeue_once_it_has_resumed_and_trained() -> None:
        log = job_log(sweep)
        resumed = re.findall(r"after epoch (\d+) \(last\.ckpt\)", log)
        trained = [int(n) for n in re.findall(r"epoch (\d+) trained", log)]
        if requeued or not resumed or not trained or trained[-1] <= int(resumed[-1]):
            return
        (job,) = job_ids(sweep)
        subprocess.run(["scontrol", "requeue", job], env=slurm, check=True)
        requeued.append(trained[-1])

    proc = launch(args, tmp_path, slurm)
    with ThreadPoolExecutor(1) as pool:  # the reference trains while the job runs
        reference = pool.submit(uninterrupted, tmp_path_factory, fmnist_dir)
        output = wait_for(
            proc, tmp_path, sweep, slurm, on_poll=requeue_once_it_has_resumed_and_trained
        )
    assert proc.returncode == 0, output[-3000:]
    assert requeued and requeued[0] < EPOCHS, "the job finished before it could be requeued"
    (run,) = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    log = job_log(sweep)
    resumed = [int(n) for n in re.findall(r"after epoch (\d+) \(last\.ckpt\)", log)]
    # SLURM signalled the first start before its limit and submitit requeued it; the second
    # start trained on until the operator's requeue (after epoch requeued[0] was logged; the
    # next may have finished before SLURM stopped it). Every start resumed after a strictly
    # later epoch, and the last trained only the epochs after its resume point.
    assert log.count("timed-out") >= 1, log[-3000:]
    assert len(resumed) >= 2 and resumed == sorted(set(resumed)), resumed
    assert resumed[1] in (requeued[0], requeued[0] + 1), (resumed, requeued)
    trained = [int(n) for n in re.findall(r"epoch (\d+) trained", log)]
    last = trained[len(trained) - (EPOCHS - resumed[-1]) :]
    assert last == list(range(resumed[-1] + 1, EPOCHS + 1)), (resumed, trained)
    assert_equal_files(run, reference.result())


def test_the_tests_stop_only_the_daemons_they_started(tmp_path, monkeypatch):
    """stop() ends the processes whose pid files start() listed, and nothing else: a daemon
    that ran before the tests (here, a stand-in process) is left running."""
    ours, theirs = (subprocess.Popen(["sleep", "300"]) for _ in range(2))
    try:
        for name, process in (("ours.pid", ours), ("theirs.pid", theirs)):
            (tmp_path / name).write_text(f"{process.pid}\n")
        started = tmp_path / "started"
        started.write_text(f"{tmp_path / 'ours.pid'}\n")
        monkeypatch.setattr(slurm_cluster, "STARTED", started)
        assert slurm_cluster.stop() == ["ours.pid"]
        assert ours.wait(timeout=30) == -15 and theirs.poll() is None
        assert not started.exists() and slurm_cluster.stop() == []
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait()
