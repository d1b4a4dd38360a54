"""Shared fixtures: compose the real configs and shrink them (tiny data, CPU, tmp dirs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from advfit.config import register_resolvers
from advfit.cores import threads_per_job
from advfit.data import FashionMNISTDataModule
from tests import zygote

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_SILENT", "true")
#: Debian's Fashion-MNIST folder, as the config names it.
FMNIST_SYSTEM = Path(OmegaConf.load(CONF / "paths" / "default.yaml").fashion_mnist_system)
os.environ.setdefault("WANDB_MODE", "offline")
register_resolvers()


def _share_the_cores() -> None:
    """Under pytest-xdist (make test: one worker per core, at most 4) each worker and the
    jobs it starts get cores / workers threads, so that workers training at once do not
    oversubscribe the cores (torch takes every core by default; the entry points the tests
    start read OMP_NUM_THREADS)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
        return
    threads = threads_per_job(workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


_share_the_cores()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first. pytest-xdist's worksteal gives each worker a contiguous
    share of this list and lets an idle worker take the end of a busy one's share; with the
    real SLURM tests (they hold a worker for minutes) at the head and the modules that train
    (marked ``slow``) next, every share ends in short tests and the workers finish together.
    Stealing may split a module between the workers; the one module-scoped run that takes
    seconds (test_replay's) is shared through :func:`session_dir`, so it trains once."""
    modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(Path(item.path), []).append(item)

    def rank(path: Path) -> int:
        if path.name == "test_slurm.py":
            return 0
        return 1 if any(item.get_closest_marker("slow") for item in modules[path]) else 2

    items[:] = [item for path in sorted(modules, key=rank) for item in modules[path]]


# A real run in seconds: 2 epochs on 500 Fashion-MNIST images, one attack, no CLEVER.
TINY_RUN = [
    "regime=overfit",
    "trainer.max_epochs=2",
    "data.train_subset=500",
    "data.test_subset=100",
    "logger=none",
    "attack=[fgsm]",
    "replay.n_images=20",
    "metrics.n_images=50",
    "metrics.clever=null",
    "metrics.robust_accuracy=null",
]


def compose_cfg(overrides: list[str], out: Path, data_dir: Path | None = None) -> DictConfig:
    """The train config as Hydra would compose it, with every path under ``out``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.root_dir={out}",
                f"paths.output_dir={out / 'run'}",
                "trainer.enable_progress_bar=false",
                *([f"paths.data_dir={data_dir}"] if data_dir else []),
                *overrides,
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def session_dir(tmp_path_factory, name: str) -> Path:
    """A folder of this test session that every pytest-xdist worker shares (under a single
    process, that process's own), for a run trained once and read by tests on any worker."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-of-<user>/pytest-<n>/, above popen-gw<k>/
    path = base / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory) -> Path:
    """A data directory holding real Fashion-MNIST (Debian's files, or $ADVFIT_DATA's)."""
    if os.environ.get("ADVFIT_DATA"):
        return Path(os.environ["ADVFIT_DATA"])
    if not FMNIST_SYSTEM.is_dir():
        pytest.skip("Fashion-MNIST is not installed (make install puts it there on Debian)")
    data_dir = tmp_path_factory.mktemp("data")
    module = FashionMNISTDataModule(
        data_dir=str(data_dir), download=False, system_dir=str(FMNIST_SYSTEM)
    )
    module.setup()
    return data_dir


def user_env(**extra: str) -> dict[str, str]:
    """The environment of an entry point started from a shell: this process's, without
    ``WANDB_SERVICE``. In-process runs of earlier tests start a W&B service and export its
    address there; a job started with it shares that service, and a SIGKILLed job's run,
    never finished in it, refuses the relaunch ("run ID ... is in use")."""
    environment = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**environment, "HYDRA_FULL_ERROR": "0", **extra}


def run_cli(script: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 600):
    """Run an entry point as a user would; returns the CompletedProcess."""
    return zygote.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=user_env(**(env or {})),
        timeout=timeout,
    )


def evaluate_cfg(run_dir: Path, **changes) -> DictConfig:
    """evaluate.py's config for ``run_dir`` as its defaults compose it, with ``changes``."""
    return OmegaConf.create(
        {
            "run_dir": str(run_dir),
            "attack": None,
            "replay": {"n_images": None},
            "device": "cpu",
            "progress": False,
            "wandb": False,
            **changes,
        }
    )
