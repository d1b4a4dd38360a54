"""Hydra's basic sweeper, plus integer ranges (``fold=0-4``) and up-front job checks.

Selected by ``hydra/sweeper: advfit`` (conf/train.yaml does). Every job's config is
composed and checked before the first job is launched, so a bad fold, learning rate or a
sweep directory holding another config stops the sweep before anything runs.
No ``from __future__ import annotations`` here: Hydra's plugin scanner loads this module
outside ``sys.modules``, where dataclasses cannot resolve string annotations.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional  # noqa: UP035  (OmegaConf reads these annotations)

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from advfit.config import register_resolvers, validate_train_config
from advfit.data.prepare import prepare_all
from advfit.errors import refuse, user_error
from advfit.locks import LockHeld, file_lock
from advfit.rundir import check_run_dir_matches
from advfit.sweep import (
    SWEEP_LOCK,
    SWEPT_ENV,
    check_slurm_launcher,
    expand_ranges,
    job_run_dir,
    not_learned_line,
    write_manifest,
)


@dataclass
class AdvfitSweeperConf:
    _target_: str = "hydra_plugins.advfit_sweeper.advfit_sweeper.AdvfitSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(group="hydra/sweeper", name="advfit", node=AdvfitSweeperConf)


class AdvfitSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None):
        register_resolvers()
        params = dict(params or {})
        expanded = expand_ranges(f"{k}={v}" for k, v in params.items())
        super().__init__(max_batch_size, dict(a.split("=", 1) for a in expanded))

    def sweep(self, arguments: list[str]) -> Any:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            # One launch at a time per sweep directory: a second would rewrite this one's
            # bookkeeping and stop at the first run this one holds.
            with file_lock(sweep_dir / SWEEP_LOCK):
                return self._sweep(expand_ranges(arguments))
        except LockHeld as held:
            refuse(
                f"{sweep_dir} is being swept by {held.holder}; wait for that launch to end, "
                "or sweep into another directory (task_name=...)"
            )
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            refuse(str(cause))

    def _sweep(self, arguments: list[str]) -> Any:
        """BasicSweeper.sweep, but every job is checked before the first is launched, and the
        sweep's runs are recorded (``sweep.json``) so that each job reports, as it completes,
        how many runs are complete and the time left (advfit.sweep.progress)."""
        params = self._parse_config()
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(params)
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        # Each job is told which keys its sweep varies: its W&B group names them first.
        swept = " ".join(o.key_or_group for o in overrides if o.is_sweep_override())
        if swept:
            tell = f"++hydra.job.env_set.{SWEPT_ENV}='{swept}'"
            self.overrides = [[[*job, tell] for job in batch] for batch in self.overrides]
        jobs = [job for batch in self.overrides for job in batch]
        run_dirs, data_cfgs = self.validate_batch_is_legal(jobs)
        check_slurm_launcher(OmegaConf.to_container(self.config.hydra.launcher, resolve=True))
        # On the launching machine (a cluster's login node) before any job starts: jobs that
        # start together then find the data ready instead of each fetching it.
        prepare_all(data_cfgs)

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # Each launch's composed config is kept (multirun.<n>.yaml, named in sweep.json);
        # multirun.yaml, Hydra's name, is the newest.
        kept = write_manifest(sweep_dir, run_dirs, params)
        for path in (kept, sweep_dir / "multirun.yaml"):
            OmegaConf.save(self.config, path)
        # The basic launcher runs jobs one after another: launched one by one, a sweep stops
        # at its first failed job; parallel launchers get whole batches.
        one_by_one = isinstance(self.launcher, BasicLauncher)
        batches = [[job] for job in jobs] if one_by_one else self.overrides
        returns, done = [], 0
        for batch in batches:
            results = self.launcher.launch(batch, initial_job_idx=done)
            for result in results:
                _ = result.return_value  # raises when the job failed
            done += len(batch)
            returns.append(results)
        if (line := not_learned_line(run_dirs)) is not None:
            logging.getLogger("advfit").warning("%s (the report leaves them out)", line)
        return returns

    def validate_batch_is_legal(
        self, batch: Sequence[Sequence[str]]
    ) -> tuple[list[Path], list[DictConfig]]:
        """Compose and check every job; stop before any starts when one is invalid. Returns
        the jobs' run directories and data configs."""
        loader = self.hydra_context.config_loader
        master = HydraConfig.instance().cfg
        run_dirs, data_cfgs = [], []
        try:
            for overrides in batch:
                job_cfg = loader.load_sweep_config(self.config, list(overrides))
                validate_train_config(job_cfg)
                run_dir = job_run_dir(job_cfg)
                with open_dict(job_cfg):
                    job_cfg.hydra.runtime.output_dir = str(run_dir)
                HydraConfig.instance().set_config(job_cfg)
                task_cfg = OmegaConf.to_container(job_cfg, resolve=True)
                task_cfg.pop("hydra", None)
                check_run_dir_matches(run_dir, task_cfg)
                run_dirs.append(run_dir)
                data_cfgs.append(OmegaConf.create(task_cfg["data"]))
        finally:
            HydraConfig.instance().cfg = master
        return run_dirs, data_cfgs
