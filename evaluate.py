"""Replay a run directory's adversarials on its snapshots, reusing the run's own config.

python evaluate.py run_dir=multirun/demo/fashion_mnist-normal-fold0-seed0
python evaluate.py run_dir=<dir> attack=[fgsm,cw] replay.n_images=500
"""

import hydra
from omegaconf import DictConfig

from advfit.cli import reports_user_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    # Lightning takes seconds to import: the run directory is checked first, without it.
    from advfit.config import check_cpu_threads
    from advfit.trust import open_run_to_evaluate

    check_cpu_threads(cfg)
    opened = open_run_to_evaluate(cfg)
    from advfit.tasks import evaluate, replayed_table

    summary = evaluate(cfg, opened)
    # The CLI's final summary: each snapshot's accuracy and, per attack, the paper's ASR, the
    # ASR among the sources it classifies correctly, and how many those are.
    print(f"\n{replayed_table(opened[0])}\nbest epoch {summary['best_epoch']}: {opened[0].root}")


if __name__ == "__main__":
    run_entry(main)
