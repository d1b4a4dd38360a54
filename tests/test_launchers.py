"""Every experiment composes with every launcher, with and without the site configs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from advfit.config import signal_delay

from .conftest import CONF

EXPERIMENTS = [None, *sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))]
LAUNCHERS = ["basic", "parallel", "joblib", "slurm", "submitit_slurm", "submitit_local"]


def compose_launch(conf: Path, experiment: str | None, launcher: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        overrides = [f"hydra/launcher={launcher}"]
        if experiment:
            overrides.append(f"experiment={experiment}")
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.fixture(params=[False, True], ids=["fresh-clone", "site-configs"])
def conf(request, tmp_path) -> Path:
    """The project's configs; with ``True``, the local examples copied into place as the
    README says."""
    if not request.param:
        return CONF
    copy = tmp_path / "conf"
    shutil.copytree(CONF, copy)
    for example in (copy / "local").glob("*.example.yaml"):
        shutil.copy(example, example.with_name(example.name.replace(".example", "")))
    return copy


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_experiment_composes_with_every_launcher(conf, experiment, launcher):
    cfg = compose_launch(conf, experiment, launcher)
    resolved = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    expected = {
        "basic": "BasicLauncher",
        "parallel": "JoblibLauncher",
        "joblib": "JoblibLauncher",
        "slurm": "SlurmLauncher",
        "submitit_slurm": "SlurmLauncher",
        "submitit_local": "LocalLauncher",
    }[launcher]
    assert resolved["_target_"].endswith(expected)
    if launcher == "slurm":
        assert resolved["max_num_timeout"] >= 20
        assert resolved["signal_delay_s"] < resolved["timeout_min"] * 60
        site = "debug" if conf != CONF else None
        assert resolved["partition"] == site


def test_the_site_config_reaches_the_slurm_launcher_only(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "local" / "slurm.yaml").write_text("partition: gpu\ntimeout_min: 30\n")
    slurm = compose_launch(conf, "demo", "slurm").hydra.launcher
    assert slurm.partition == "gpu" and slurm.timeout_min == 30
    assert slurm.signal_delay_s == 120
    assert "partition" not in compose_launch(conf, "demo", "parallel").hydra.launcher


def test_the_signal_comes_early_enough_to_train_under_short_limits():
    assert [signal_delay(m) for m in (1, 2, 4, 8, 240)] == [15, 30, 60, 120, 120]


def test_jobs_side_by_side_spread_over_the_visible_gpus(monkeypatch):
    import torch

    from advfit import cores

    assert [cores.assigned_gpu(k, 10, 4) for k in range(6)] == [0, 1, 2, 3, 0, 1]
    assert cores.assigned_gpu(3, 1, 4) is None  # one job at a time: Lightning's choice
    assert cores.assigned_gpu(3, 10, 1) is None  # one GPU (SLURM gives each job its own)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(cores, "parallel_jobs", lambda: 10)
    for job, gpu in ((0, 0), (4, 1), (8, 2)):
        monkeypatch.setattr(cores, "job_number", lambda job=job: job)
        cfg = OmegaConf.create({"trainer": {"accelerator": "auto", "devices": "auto"}})
        OmegaConf.set_struct(cfg, True)
        cores.spread_over_gpus(cfg)
        assert cfg.trainer.devices == [gpu]
    cfg = OmegaConf.create({"trainer": {"accelerator": "gpu", "devices": [2]}})
    cores.spread_over_gpus(cfg)
    assert cfg.trainer.devices == [2]  # a user's own choice is kept
    cfg = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": "auto"}})
    cores.spread_over_gpus(cfg)
    assert cfg.trainer.devices == "auto"


def test_threads_stay_within_the_cores_the_job_was_given(monkeypatch):
    import torch

    from advfit import cores

    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cores.usable_cores() == 16 and cores.threads_per_job(3) == 5
    # SLURM allotted 2 of the node's 16 cores without binding the job to them.
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert cores.usable_cores() == 2 and cores.threads_per_job(4) == 1
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0})  # bound to one core
    assert cores.usable_cores() == 1

    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(cores, "parallel_jobs", lambda: 1)
    before = torch.get_num_threads()
    try:
        for cpu_threads, env, expected in (
            (None, {"SLURM_CPUS_PER_TASK": "2"}, 2),  # the allotment, not the node's 16
            (3, {"SLURM_CPUS_PER_TASK": "2"}, 3),  # the user's own number wins
            (None, {"OMP_NUM_THREADS": "1"}, 1),  # as torch read it at start
        ):
            monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            if "OMP_NUM_THREADS" in env:
                torch.set_num_threads(1)
            cores.set_cpu_threads(OmegaConf.create({"cpu_threads": cpu_threads}))
            assert torch.get_num_threads() == expected, (cpu_threads, env)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("nvml_loads", [False, True])
def test_the_nvml_check_is_dropped_only_where_nvml_cannot_load(monkeypatch, nvml_loads):
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1. Without NVML (no NVIDIA driver), each
    optimizer step then tried to load it again before falling back to CUDA's own count. Where
    it cannot load, the variable is dropped: the steps stop trying and torch's answer stays
    the same. Where it loads, the variable is kept."""
    import ctypes

    import torch

    from advfit import cores

    if torch.version.cuda is None:
        pytest.skip("torch's CPU build makes no CUDA check at a step")

    real_cdll = ctypes.CDLL
    tried: list[str] = []

    def cdll(name, *args, **kwargs):
        if name == cores.NVML_LIBRARY:
            tried.append(name)
            if not nvml_loads:
                raise OSError(f"{name}: cannot open shared object file")
            return object()  # never called: the check under test only loads it
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setenv(cores.NVML_CHECK, "1")
    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(net.parameters())

    def steps() -> int:
        tried.clear()
        for _ in range(3):
            net(torch.ones(1, 2)).sum().backward()
            optimizer.step()
        return len(tried)

    if not nvml_loads:
        available = torch.cuda.is_available()
        assert steps() >= 3  # a load tried at every step
    cores.keep_nvml_check_only_with_nvml()
    assert (cores.NVML_CHECK in os.environ) is nvml_loads
    if not nvml_loads:
        assert steps() == 0 and torch.cuda.is_available() == available
