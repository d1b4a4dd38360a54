"""Train one run of the study (or a sweep with -m). See README.md.

    python train.py                                   # Fashion-MNIST, normal regime, fold 0
    python train.py -m regime=normal,overfit fold=0-4
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from advfit.config import register_resolvers
from advfit.errors import UserError
from advfit.tasks import train

register_resolvers()
log = logging.getLogger("advfit")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except UserError as err:
        log.error("%s", err)
        sys.exit(2)
    return summary.get("best_val_acc")


if __name__ == "__main__":
    main()
