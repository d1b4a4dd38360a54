"""Sweeps: integer ranges on the command line, checks of every job before any starts, and
how far a sweep has got."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from advfit.config import RANGE, run_dir_name
from advfit.errors import ConfigError, RunError
from advfit.files import atomic_write_text
from advfit.rundir import RunDir

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


#: The environment variable that tells a sweep's jobs which keys it varies (space-separated):
#: their W&B group names them first (``advfit.config.run_group``).
SWEPT_ENV = "ADVFIT_SWEPT"


def job_run_dir(job_cfg: DictConfig) -> Path:
    """The run directory a sweep job will write, as Hydra will name it."""
    sweep = job_cfg.hydra.sweep
    return Path(str(sweep.dir)) / run_dir_name(job_cfg.run_name, job_cfg.hydra.job.override_dirname)


def duration(seconds: float) -> str:
    """``1h02m`` or ``4m05s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _launches(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every launch ``sweep.json`` records, oldest first ([] without a readable one); a file of
    an earlier version, one launch's ``{"started", "runs"}``, reads as that one launch."""
    try:
        manifest = json.loads((Path(sweep_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(manifest, dict):
        return []
    launches = manifest.get("launches", [manifest] if "started" in manifest else [])
    return [launch for launch in launches if isinstance(launch, dict)]


def write_manifest(
    sweep_dir: Path, run_dirs: Iterable[Path], overrides: Iterable[str] = ()
) -> Path:
    """Append this launch to ``sweep.json``: when it starts, its command line's overrides and
    the runs it holds; earlier launches of the same sweep directory stay listed. Returns the
    name under which this launch's composed config (``multirun.yaml``) is kept beside it."""
    launches = _launches(sweep_dir)
    config = f"multirun.{len(launches)}.yaml"
    launches.append(
        {
            "started": time.time(),
            "overrides": list(overrides),
            "runs": [Path(d).name for d in run_dirs],
            "config": config,
        }
    )
    atomic_write_text(Path(sweep_dir) / MANIFEST, json.dumps({"launches": launches}, indent=1))
    return Path(sweep_dir) / config


def read_manifest(sweep_dir: Path) -> tuple[float, list[str]] | None:
    """The newest launch's start and its run names, or None without a readable manifest."""
    try:
        launch = _launches(sweep_dir)[-1]
        return float(launch["started"]), [str(n) for n in launch["runs"]]
    except (IndexError, KeyError, TypeError, ValueError):
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
