"""Train one run of the study (or a sweep with -m). See README.md.

python train.py                                   # Fashion-MNIST, normal regime, fold 0
python train.py -m regime=normal,overfit fold=0-4
"""

import hydra
from omegaconf import DictConfig

from advfit.cli import reports_user_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    # Lightning takes seconds to import, and a sweep's launching process (-m) needs none of
    # it: each job imports it where it runs, after its config passed the checks that need
    # no Lightning (a bad value is refused at once).
    from advfit.config import validate_train_config

    validate_train_config(cfg)
    from advfit.tasks import train

    train(cfg)


if __name__ == "__main__":
    run_entry(main)
