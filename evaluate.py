"""Replay a run directory's adversarials on its snapshots, reusing the run's own config.

python evaluate.py run_dir=multirun/demo/fashion_mnist-normal-fold0-seed0
python evaluate.py run_dir=<dir> attack=[fgsm,cw] replay.n_images=500
"""

import sys

import hydra
from omegaconf import DictConfig

from advfit.cli import normalize_argv, reports_user_errors
from advfit.tasks import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    sys.argv = normalize_argv(sys.argv)
    main()
