"""What a run records of what it was computed on: the machine, the library versions, its
identity, and the data files (their digests, checked before a replay)."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from advfit.errors import RunError
from advfit.files import sha256_file
from advfit.identity import config_digest
from advfit.rundir import RunDir

VERSIONED = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "hydra-core",
    "torchmetrics",
    "advertorch",
    "pyautoattack",
    "scipy",
    "wandb",
    "numpy",
    "scikit-learn",
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def processor_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module says."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: torch.device | str) -> dict[str, str]:
    """Where a run's numbers were computed: its processor and, on a GPU, the GPU's name. The
    same seed gives the same numbers only on the same kind of machine (another summation
    order trains other networks), so the report shows it beside every run."""
    device = torch.device(device)
    found = {"processor": processor_name()}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
    return found


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    return {
        "dataset": cfg.data.name,
        "regime": cfg.regime.name,
        "fold": int(cfg.fold),
        "n_folds": int(cfg.n_folds),
        "seed": int(cfg.seed),
        "lr": float(cfg.regime.lr),
        "max_epochs": int(cfg.trainer.max_epochs),
        "batch_size": int(cfg.data.batch_size),
    }


def data_digest(cfg: DictConfig, datamodule=None) -> str | dict[str, str] | None:
    """What the run's data were read from: the sha256 of a ``data=custom`` run's ``.npz``, or
    each torchvision file's sha256 by its name (None when neither is known)."""
    path = OmegaConf.select(cfg, "data.path")
    if path and Path(str(path)).is_file():
        return sha256_file(Path(str(path)))
    files = getattr(datamodule, "source_files", ())
    return {f.name: sha256_file(f) for f in files} or None


def inputs_record(cfg: DictConfig, datamodule=None) -> dict[str, Any]:
    """What a run trains on: its data files' digests and its result-relevant config's
    (``inputs.json``, :meth:`advfit.rundir.RunDir.check_inputs`)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return {"data_sha256": data_digest(cfg, datamodule), "config_sha256": config_digest(resolved)}


def check_data(run: RunDir, run_cfg: DictConfig, datamodule) -> None:
    """Refuse to replay a run on data other than it was trained on (a custom ``.npz``
    rewritten at the same path, a torchvision file replaced): ``inputs.json``, else, in a run
    of an earlier version, summary.json's ``data_sha256``."""
    if run.check_inputs(inputs_record(run_cfg, datamodule), "Replaying it"):
        return
    recorded = run.read_summary().get("data_sha256")
    if not recorded:
        return
    now = data_digest(run_cfg, datamodule)
    if isinstance(recorded, str):
        if now != recorded:
            raise RunError(
                f"data.path={OmegaConf.select(run_cfg, 'data.path')} is not the file "
                f"{run.root.name} was trained on (sha256 {recorded[:12]}... then): replaying on "
                "it would mix data"
            )
        return
    changed = sorted(k for k in recorded if (now or {}).get(k) != recorded[k])
    if changed:
        where = datamodule.source_files[0].parent if datamodule.source_files else "the data"
        raise RunError(
            f"{', '.join(changed)} under {where} differ from the files {run.root.name} was "
            "trained on (summary.json's data_sha256): replaying on them would mix data"
        )
