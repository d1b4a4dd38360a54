"""Where a job computes: the cores it may use, its CPU threads, and its GPU when jobs share a
machine's GPUs. The launching process of a sweep reads the cores too, without torch."""

from __future__ import annotations

import ctypes
import logging
import os

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity (taskset, cpusets, a scheduler's
    binding), and no more than SLURM allotted the job (``SLURM_CPUS_PER_TASK``), which a
    cluster without CPU binding does not enforce: torch would take every core of the node."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        cores = os.cpu_count() or 1
    allotted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allotted.isdigit() and int(allotted) >= 1:
        cores = min(cores, int(allotted))
    return max(1, cores)


def threads_per_job(jobs: int) -> int:
    """CPU threads for each of ``jobs`` jobs running at once: usable cores // jobs, at least 1."""
    return max(1, usable_cores() // max(1, int(jobs)))


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once: the launcher's n_jobs (-1: one per core);
    1 outside a sweep or with the basic launcher."""
    try:
        n_jobs = int(OmegaConf.select(HydraConfig.get(), "launcher.n_jobs", default=1) or 1)
    except (ValueError, TypeError):
        return 1
    return usable_cores() if n_jobs == -1 else max(1, n_jobs)


def job_number() -> int:
    """This job's index in its sweep (Hydra's ``job.num``); 0 outside a sweep."""
    try:
        return int(OmegaConf.select(HydraConfig.get(), "job.num", default=0) or 0)
    except (ValueError, TypeError):
        return 0


def assigned_gpu(job: int, jobs_at_once: int, gpus: int) -> int | None:
    """The GPU of job ``job`` when ``jobs_at_once`` jobs share ``gpus`` visible GPUs on one
    machine: job k takes GPU k mod n. None when there is nothing to spread (one GPU, one job
    at a time, or a scheduler that gives each job its own GPUs, as SLURM does)."""
    if gpus <= 1 or jobs_at_once <= 1:
        return None
    return job % gpus


def spread_over_gpus(cfg: DictConfig) -> None:
    """Point ``trainer.devices`` at this job's GPU when jobs run side by side on a machine with
    several (by default every job would take GPU 0). An explicit device choice is kept."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    devices = cfg.trainer.get("devices", "auto")
    if accelerator not in ("auto", "gpu", "cuda") or str(devices) not in ("auto", "1"):
        return
    import torch  # here: a sweep's launching process reads the cores without torch

    gpu = assigned_gpu(job_number(), parallel_jobs(), torch.cuda.device_count())
    if gpu is not None:
        with open_dict(cfg):
            cfg.trainer.devices = [gpu]
        log.info("job %d of jobs side by side: GPU %d", job_number(), gpu)


def set_cpu_threads(cfg: DictConfig) -> None:
    """Set torch's CPU threads: ``cpu_threads`` when given; else each of n jobs running side by
    side gets usable cores // n; else ``OMP_NUM_THREADS`` when set; else the usable cores
    (:func:`usable_cores`: the affinity, capped by SLURM's allotment). Torch on
    its own takes every core of a node SLURM gave two of; beside busy processes each extra
    thread costs (BENCHMARKS.md, "Training on a shared machine")."""
    import torch  # here: a sweep's launching process reads the cores without torch

    threads = cfg.get("cpu_threads")
    if threads is None:
        n_jobs = parallel_jobs()
        if n_jobs == 1 and os.environ.get("OMP_NUM_THREADS", "").isdigit():
            threads = torch.get_num_threads()
        else:
            threads = threads_per_job(n_jobs)
    torch.set_num_threads(int(threads))
    log.info("using %d CPU threads", int(threads))


#: Set to 1 by Lightning as it loads: torch's CUDA check then asks NVML first, so that it
#: does not start CUDA in a process that may fork.
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
#: The library that check loads (torch.cuda's name for it).
NVML_LIBRARY = "libnvidia-ml.so.1"


def keep_nvml_check_only_with_nvml() -> None:
    """Drop ``PYTORCH_NVML_BASED_CUDA_CHECK`` where NVML cannot load (no NVIDIA driver).

    torch's optimizers check for CUDA at every step. With the variable set, each check tries
    to load NVML again, fails, and falls back to the CUDA runtime's device count, the check
    torch makes without the variable: on a CPU machine 0.1-0.6 ms a step (BENCHMARKS.md,
    "Training loop"). Without NVML both give the same answer, so the variable is dropped
    there; where NVML loads (a GPU machine) it is kept. Call it after Lightning is imported.
    """
    import torch

    if os.environ.get(NVML_CHECK) != "1" or torch.version.cuda is None or torch.version.hip:
        return
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        del os.environ[NVML_CHECK]
        log.debug("%s cannot load: torch checks CUDA without it", NVML_LIBRARY)
