"""Sweeps: integer ranges on the command line, checks of every job before any starts, and
how far a sweep has got."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from advfit.config import RANGE, is_result_neutral, run_dir_name
from advfit.errors import ConfigError, RunError
from advfit.rundir import RunDir, atomic_write_text

#: In a sweep directory: when this launch of the sweep started and the runs it holds.
MANIFEST = "sweep.json"
#: In a sweep directory: held by the process that launches its jobs, for as long as it runs.
SWEEP_LOCK = ".sweep.lock"


def check_slurm_launcher(launcher: dict[str, Any]) -> None:
    """Refuse a SLURM launch that cannot work before anything is submitted: no ``sbatch``, a
    partition the cluster does not have, or a signal that would come before any training."""
    if not str(launcher.get("_target_", "")).endswith("SlurmLauncher"):
        return
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "hydra/launcher=slurm needs SLURM's sbatch on the PATH, and there is none on this "
            "machine: launch from the cluster's login node, or use hydra/launcher=parallel"
        )
    partition = launcher.get("partition")
    if partition:
        listed = subprocess.run(
            ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=60
        )
        known = sorted(set(listed.stdout.split()))
        if listed.returncode == 0 and known and str(partition) not in known:
            raise ConfigError(
                f"hydra.launcher.partition={partition} is not a partition of this cluster: "
                f"it has {', '.join(known)} (set it in conf/local/slurm.yaml)"
            )
    timeout_s = float(launcher.get("timeout_min") or 0) * 60
    delay = float(launcher.get("signal_delay_s") or 0)
    if timeout_s <= 0 or delay >= timeout_s:
        raise ConfigError(
            f"hydra.launcher.signal_delay_s={delay:g} with timeout_min="
            f"{launcher.get('timeout_min')}: the requeue signal must come after the job starts, "
            "so the delay must be shorter than the time limit (leave it at its default)"
        )


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


_RANGE = re.compile(rf"^(?P<key>[+~]*[\w.\-/@]+)={RANGE}$")


def expand_range(argument: str) -> str:
    """``fold=0-4`` -> ``fold=range(0,5)``; any other argument is returned unchanged.

    An integer range ``a-b`` includes both ends. An empty or reversed range is an error.
    """
    match = _RANGE.match(argument.strip())
    if not match:
        return argument
    start, stop = int(match["start"]), int(match["stop"])
    if stop < start:
        raise ConfigError(
            f"{argument} is an empty range: write the smaller number first, e.g. "
            f"{match['key']}={stop}-{start}"
        )
    return f"{match['key']}=range({start},{stop + 1})"


def expand_ranges(arguments: Iterable[str]) -> list[str]:
    return [expand_range(a) for a in arguments]


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


#: The environment variable that tells a sweep's jobs which keys it varies (space-separated):
#: their W&B group names them first (``advfit.config.run_group``).
SWEPT_ENV = "ADVFIT_SWEPT"

#: Keys added after run directories were first written, each with the value that matches what
#: those runs did: a saved config that has the key's section but not the key reads as holding
#: it, so that older runs still resume, and pool in a report with new runs at the default.
ADDED_KEYS = {"model.net.init": "torch", "model.optimizer.eps": 1e-8}


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config flattened to dotted keys, with :data:`ADDED_KEYS` filled in."""
    flat = flatten(config)
    for key, value in ADDED_KEYS.items():
        section = key.rsplit(".", 1)[0] + "."
        if key not in flat and any(k.startswith(section) for k in flat):
            flat[key] = value
    return flat


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two resolved configs, ignoring where things go."""
    old, new = flat_config(saved), flat_config(current)
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
        for k in keys
        if not is_result_neutral(k) and old.get(k, "<absent>") != new.get(k, "<absent>")
    ]


def check_run_dir_matches(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Stop when ``run_dir`` holds a run of another config, rather than mixing results."""
    run = RunDir(run_dir)
    if not run.config.is_file():
        return
    differences = config_differences(run.read_config(), resolved)
    if differences:
        raise RunError(
            f"{run_dir} holds a run of a different config; differing keys: "
            + "; ".join(differences)
            + ". Use another task_name (a new sweep directory) or remove the old run."
        )


def job_run_dir(job_cfg: DictConfig) -> Path:
    """The run directory a sweep job will write, as Hydra will name it."""
    sweep = job_cfg.hydra.sweep
    return Path(str(sweep.dir)) / run_dir_name(job_cfg.run_name, job_cfg.hydra.job.override_dirname)


def duration(seconds: float) -> str:
    """``1h02m`` or ``4m05s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def write_manifest(sweep_dir: Path, run_dirs: Iterable[Path]) -> None:
    """Record the sweep's runs and the time this launch starts (rewritten by every launch)."""
    names = [Path(d).name for d in run_dirs]
    atomic_write_text(
        Path(sweep_dir) / MANIFEST, json.dumps({"started": time.time(), "runs": names}, indent=1)
    )


def read_manifest(sweep_dir: Path) -> tuple[float, list[str]] | None:
    """This launch's start and the sweep's run names, or None without a readable manifest."""
    try:
        manifest = json.loads((Path(sweep_dir) / MANIFEST).read_text())
        return float(manifest["started"]), [str(n) for n in manifest["runs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def not_learned_line(run_dirs: Iterable[Path]) -> str | None:
    """ "k of n runs did not learn: name (why); ..." over the finished runs among ``run_dirs``
    (their summary.json's ``learned``, advfit.learning), or None when every one learned."""
    finished, dead = 0, []
    for run in map(RunDir, run_dirs):
        if not run.is_done():
            continue
        try:
            learned = run.read_summary().get("learned")
        except RunError:
            continue
        finished += 1
        if isinstance(learned, dict) and learned.get("learned") is False:
            dead.append(f"{run.root.name} ({learned.get('reason')})")
    if not dead:
        return None
    return f"{len(dead)} of {finished} runs did not learn: {'; '.join(dead)}"


def progress(run_dir: Path, at_once: int = 1) -> str | None:
    """How far the sweep that ``run_dir`` belongs to has got, and the time left estimated from
    the runs this launch completed (runs completed by an earlier launch count as complete but
    not in the rate); None outside a sweep.

    Each job calls it as its run completes, so jobs running side by side (the joblib
    launcher) report it too, which Hydra's launchers do not. With ``at_once`` jobs side by
    side the first runs finish together, so there is no estimate before ``at_once`` runs
    of this launch are complete (the first alone would double it)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir.parent)
    if manifest is None or run_dir.name not in manifest[1]:
        return None
    started, names = manifest
    done_files = [RunDir(run_dir.parent / name).done for name in names]
    done_at = [f.stat().st_mtime for f in done_files if f.is_file()]
    now = time.time()
    this_launch = sum(1 for t in done_at if t >= started)
    left = len(names) - len(done_at)
    message = f"sweep: {len(done_at)} of {len(names)} runs complete"
    if this_launch >= max(1, at_once) and left:
        eta = (now - started) / this_launch * left
        message += f"; about {duration(eta)} left"
    elif not left:
        message += f" ({duration(now - started)} this launch)"
    return message
