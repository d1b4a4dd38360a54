"""Sweeps: integer ranges on the command line, and checks of every job before any starts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from advfit.config import is_result_neutral, run_dir_name
from advfit.errors import ConfigError, RunError
from advfit.rundir import RunDir


def threads_per_job(jobs: int) -> int:
    """CPU threads for each of ``jobs`` jobs running at once: cores // jobs, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, int(jobs)))


_RANGE = re.compile(r"^(?P<key>[+~]*[\w.\-/@]+)=(?P<start>\d+)-(?P<stop>\d+)$")


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


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two resolved configs, ignoring where things go."""
    old, new = flatten(saved), flatten(current)
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
