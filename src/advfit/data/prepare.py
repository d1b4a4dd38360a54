"""Preparing data sets before any job needs them: ``make data``, and the sweep's launch.

python -m advfit.data prepare data=fashion_mnist,cifar10 [paths.data_dir=...]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advfit.config import CONF_DIR, register_resolvers
from advfit.errors import refuse, user_error

log = logging.getLogger(__name__)

#: Keys of a data config that decide which files it reads (not which fold or subset of them).
FILE_KEYS = ("_target_", "data_dir", "path", "download")


def distinct_data(data_cfgs: Iterable[DictConfig]) -> list[DictConfig]:
    """One data config per set of files: a sweep's folds and regimes share one."""
    seen: dict[tuple, DictConfig] = {}
    for data in data_cfgs:
        key = tuple(str(OmegaConf.select(data, k, default=None)) for k in FILE_KEYS)
        seen.setdefault(key, data)
    return list(seen.values())


def prepare_all(data_cfgs: Iterable[DictConfig]) -> list[Any]:
    """Fetch, unpack and check the files of every distinct data config, one after another,
    on this machine; returns the prepared data modules."""
    prepared = []
    for data in distinct_data(data_cfgs):
        module = instantiate(data)
        log.info("preparing %s under %s", module.name, module.data_dir)
        module.prepare()
        log.info("%s: ready under %s", module.name, module.data_dir)
        prepared.append(module)
    return prepared


def compose_data(choice: str, overrides: list[str]) -> DictConfig:
    """The ``data`` node of the train config composed with ``data=<choice>``."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={choice}", *overrides])
    return cfg.data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m advfit.data",
        description="Fetch or unpack data sets into paths.data_dir before a sweep needs them.",
    )
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument(
        "overrides",
        nargs="*",
        help="data=<name>[,<name>...] (default fashion_mnist) and other config overrides, "
        "e.g. paths.data_dir=/shared/datasets",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    choices, others = ["fashion_mnist"], []
    for item in args.overrides:
        if item.startswith("data="):
            choices = [c for c in item[len("data=") :].split(",") if c]
        else:
            others.append(item)
    try:
        prepare_all([compose_data(choice, others) for choice in choices])
    except Exception as exc:
        cause = user_error(exc)
        if cause is None and type(exc).__module__.startswith(("hydra", "omegaconf")):
            cause = exc
        if cause is None:
            raise
        refuse(cause)
    return 0
