"""What makes a run the run it is: its config but for the keys that cannot change its results.

The one home of that fact, at the bottom layer: run naming and the sweep (``advfit.config``,
``advfit.sweep``), the check that a run directory holds the same run
(``advfit.rundir.check_run_dir_matches``), the record of a run's inputs
(``advfit.provenance``) and the report's grouping (``advfit.report.collect``) all read it here.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from advfit.files import sha256_json


class Claim(str, Enum):
    """What a regime claims, which the verdict judges its runs by (``regime.claim``):
    ``generalization``, ASR rises with test accuracy (the paper's normal regime);
    ``overfitting``, ASR does not rise as the network overfits (its overfitting regime);
    ``robust_overfitting``, robust validation accuracy falls after its peak (adversarial
    training, Rice et al. 2020)."""

    GENERALIZATION = "generalization"
    OVERFITTING = "overfitting"
    ROBUST_OVERFITTING = "robust_overfitting"


CLAIMS = tuple(c.value for c in Claim)

#: The claim of each regime of an earlier version, whose saved config names no
#: ``regime.claim``: read from the regime's name (:func:`flat_config` fills it in).
EARLIER_CLAIMS = {
    "normal": Claim.GENERALIZATION.value,
    "overfit": Claim.OVERFITTING.value,
    "adversarial": Claim.ROBUST_OVERFITTING.value,
}

#: Keys that never change a run's results: where things go, how they are shown, how many
#: threads compute them. The one list behind run naming, the check that a run directory
#: holds the same run, and the report's grouping. A key matches an entry equal to it or
#: nested under it.
RESULT_NEUTRAL = (
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "task_name",
    "run_name",
    "cpu_threads",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.enable_progress_bar",
    "trainer.default_root_dir",
    "data.data_dir",
    "data.download",
    "data.system_dir",
    "data.eval_batch_size",
    # Batch sizes of per-image computations (equal results up to float rounding: bit for bit
    # in batches of at least 16 images; PGD's random start is drawn in image order). Not
    # CW's batch_size: its abort_early watches the whole batch; its images_per_pass only
    # splits the network's passes (advfit.attacks.base.InPasses).
    "attack.fgsm.batch_size",
    "attack.pgd.batch_size",
    "attack.cw.images_per_pass",
    "metrics.loss_sensitivity.batch_size",
    "metrics.empirical_robustness.batch_size",
    "metrics.clever.points_per_pass",
)
#: Keys that differ between the folds of one configuration.
PER_FOLD = ("fold", "data.fold")


def is_result_neutral(key: str) -> bool:
    """True when the dotted config ``key`` cannot change a run's results."""
    return any(key == k or key.startswith(k + ".") for k in RESULT_NEUTRAL)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


#: Keys added after run directories were first written, each with the value that matches what
#: those runs did: a saved config that has the key's section but not the key reads as holding
#: it, so that older runs still resume, and pool in a report with new runs at the default.
ADDED_KEYS = {"model.net.init": "torch", "model.optimizer.eps": 1e-8}


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config flattened to dotted keys, with :data:`ADDED_KEYS` filled in, and
    where an earlier version's config lacks them, ``threat.eps`` from its attacks
    (:func:`earlier_threat_eps`) and ``regime.claim`` from :data:`EARLIER_CLAIMS`."""
    flat = flatten(config)
    for key, value in ADDED_KEYS.items():
        section = key.rsplit(".", 1)[0] + "."
        if key not in flat and any(k.startswith(section) for k in flat):
            flat[key] = value
    if "threat.eps" not in flat and any(k.startswith("attack.") for k in flat):
        flat["threat.eps"] = earlier_threat_eps(flat)
    if "regime.claim" not in flat and flat.get("regime.name") in EARLIER_CLAIMS:
        flat["regime.claim"] = EARLIER_CLAIMS[flat["regime.name"]]
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


#: The L-inf attacks whose radius stood in their own configs before ``threat.eps`` held it.
LINF_ATTACKS = ("pgd", "fgsm", "apgd", "autoattack")
#: The paper's radius, ``threat.eps``'s default (conf/train.yaml) where no attack gives one.
PAPER_EPS = 0.3


def earlier_threat_eps(flat: dict[str, Any]) -> float:
    """The threat radius of a config saved before ``threat.eps`` existed: its first L-inf
    attack's ``eps`` (they all read one radius), else the paper's."""
    for name in LINF_ATTACKS:
        if f"attack.{name}.eps" in flat:
            return flat[f"attack.{name}.eps"]
    return PAPER_EPS


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config's keys that can change results, flattened (:func:`flat_config`)."""
    return {k: v for k, v in flat_config(config).items() if not is_result_neutral(k)}


def config_digest(config: dict[str, Any]) -> str:
    """The sha256 of :func:`result_config`: equal for two configs of the same run, wherever
    their directories lie and however many threads computed them."""
    return sha256_json(result_config(config))
