"""Hydra's basic sweeper, plus integer ranges (``fold=0-4``) and up-front job checks.

Selected by ``hydra/sweeper: advfit`` (conf/train.yaml does). Every job's config is
composed and checked before the first job is launched, so a bad fold, learning rate or a
sweep directory holding another config stops the sweep before anything runs.
No ``from __future__ import annotations`` here: Hydra's plugin scanner loads this module
outside ``sys.modules``, where dataclasses cannot resolve string annotations.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Dict, Optional  # noqa: UP035  (OmegaConf reads these annotations)

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from advfit.config import register_resolvers
from advfit.errors import user_error
from advfit.sweep import check_job, check_run_dir_matches, expand_ranges, job_run_dir


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
        try:
            return super().sweep(expand_ranges(arguments))
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            raise SystemExit(f"error: {cause}") from None

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        loader = self.hydra_context.config_loader
        master = HydraConfig.instance().cfg
        try:
            for overrides in batch:
                job_cfg = loader.load_sweep_config(self.config, list(overrides))
                check_job(job_cfg)
                run_dir = job_run_dir(job_cfg)
                with open_dict(job_cfg):
                    job_cfg.hydra.runtime.output_dir = str(run_dir)
                HydraConfig.instance().set_config(job_cfg)
                task_cfg = OmegaConf.to_container(job_cfg, resolve=True)
                task_cfg.pop("hydra", None)
                check_run_dir_matches(run_dir, task_cfg)
        finally:
            HydraConfig.instance().cfg = master
