"""Config checks and the OmegaConf resolvers the configs use."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advfit.data.folds import check_folds
from advfit.errors import ConfigError, user_error
from advfit.identity import CLAIMS, PAPER_EPS, flat_config, flatten, is_result_neutral

#: The project's Hydra configs (the package is installed from its checkout, editable).
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

#: Overrides already in the run's name (``run_name``) or in its sweep's (``task_name``).
_NAMED_ELSEWHERE = ("data", "regime", "fold", "seed", "experiment", "debug", "local")


def run_dir_name(run_name: str, override_dirname: str = "", first: str = "") -> str:
    """``run_name`` plus every override that changes results, e.g. ``..._lr=0.001``.

    ``override_dirname`` is Hydra's ``key=value`` list joined by ``|`` (see conf/hydra);
    overrides of the run's identity (already in ``run_name``) or of result-neutral keys are
    left out.
    """
    pairs = []
    for item in filter(None, str(override_dirname or "").split("|")):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key in _NAMED_ELSEWHERE or is_result_neutral(key.replace("/", ".")):
            continue
        pairs.append((key, value))
    # The keys a sweep varies first (``first``: space-separated), the others in Hydra's order.
    swept = str(first or "").split()
    pairs.sort(key=lambda kv: swept.index(kv[0]) if kv[0] in swept else len(swept))
    names = short_keys([key for key, _ in pairs])
    extra = [f"{names[key]}={value}".replace("/", "-").replace(" ", "") for key, value in pairs]
    return capped("_".join([run_name, *extra]), 200)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its shortest ending that no other key shares (``regime.lr`` -> ``lr``;
    ``attack.fgsm.eps`` -> ``fgsm.eps`` beside ``attack.pgd.eps``), so that a name's values
    stay visible within its length cap."""
    parts = {key: re.split(r"[./]", key) for key in keys}
    out = {}
    for key, split in parts.items():
        for n in range(1, len(split) + 1):
            ending = split[-n:]
            if not any(o != key and other[-n:] == ending for o, other in parts.items()):
                break
        out[key] = ".".join(ending)
    return out


def capped(name: str, limit: int) -> str:
    """``name`` when it fits ``limit`` characters; else its start and a hash of the whole,
    so distinct names stay distinct (file names stop at 255 bytes, W&B groups at 128)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def run_group(
    task: str, dataset: str, regime: str, seed: int, override_dirname: str = "", swept: str = ""
) -> str:
    """The W&B group of a run: its run directory's identity without the fold, so the folds of
    one configuration share a group and two configurations never do. The keys its sweep
    varies (``swept``, space-separated: ``ADVFIT_SWEPT``, which the sweeper sets) come first,
    so the 128-character cap of W&B's groups (longer ones end in a hash of the whole) never
    hides them."""
    name = run_dir_name(f"{dataset}-{regime}-seed{seed}", override_dirname, first=swept)
    return capped(f"{task}/{name}", 128)


def signal_delay(timeout_min: int) -> int:
    """Seconds before a SLURM job's time limit at which it is signalled to requeue: a quarter
    of the limit, at most 120 s, so that short limits still leave time to train."""
    return max(1, min(120, int(float(timeout_min) * 60) // 4))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("advfit.run_dir"):
        OmegaConf.register_new_resolver("advfit.run_dir", run_dir_name)
    if not OmegaConf.has_resolver("advfit.run_group"):
        OmegaConf.register_new_resolver("advfit.run_group", run_group)
    if not OmegaConf.has_resolver("advfit.signal_delay"):
        OmegaConf.register_new_resolver("advfit.signal_delay", signal_delay)
    if not OmegaConf.has_resolver("advfit.abspath"):
        OmegaConf.register_new_resolver(
            "advfit.abspath", lambda path: str(Path(str(path)).expanduser().absolute())
        )


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


#: An integer range of runs, ``0-4`` (both ends included): the value part; advfit.sweep
#: expands ``key=0-4`` with it, and a single run refuses it.
RANGE = r"(?P<start>\d+)-(?P<stop>\d+)"
_RANGE = re.compile(f"^{RANGE}$")


def _int(cfg: DictConfig, key: str) -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, str) and _RANGE.match(value):
        raise ConfigError(
            f"{key}={value} is a range of runs: sweeping it needs -m "
            f"(python train.py -m {key}={value})"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} is invalid: an integer is required")
    return value


def check_name(key: str, value: object) -> None:
    """A directory name must stay inside its parent: no separators, no ``..``."""
    name = str(value)
    if not name or "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise ConfigError(
            f"{key}={value!r} is invalid: it names a directory inside the sweep directory, "
            "so it may not be empty, start with '.', or hold '/', '\\' or '..'"
        )


def _positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def check_finite(cfg: DictConfig) -> None:
    """No number in the config is infinite or NaN (``regime.lr=inf`` would train on NaN
    gradients; ``attack.cw.learning_rate=inf`` would write NaN results)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    for key in flatten({k: v for k, v in raw.items() if k != "hydra"}):
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} is invalid: a finite number is required")


def validate_train_config(cfg: DictConfig) -> None:
    """Check the values a run stands on before anything is written."""
    try:
        check_folds(_int(cfg, "n_folds"), _int(cfg, "fold"))
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None
    seed = _int(cfg, "seed")
    _require(seed >= 0, f"seed={seed} is invalid: an integer >= 0 is required")
    grayscale = OmegaConf.select(cfg, "data.grayscale")
    _require(
        grayscale is None or isinstance(grayscale, bool),
        f"data.grayscale={grayscale!r} is invalid: true or false",
    )
    lr = OmegaConf.select(cfg, "regime.lr")
    _require(
        _positive_number(lr),
        f"regime.lr={lr!r} is invalid: the learning rate must be a positive number",
    )
    # The optimizer takes regime.lr unless it is overridden itself.
    opt_lr = OmegaConf.select(cfg, "model.optimizer.lr")
    if opt_lr is not None:
        _require(
            _positive_number(opt_lr),
            f"model.optimizer.lr={opt_lr!r} is invalid: the learning rate must be a positive "
            "number (it is regime.lr unless set)",
        )
    check_finite(cfg)
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator")).lower()
    if accelerator in ("gpu", "cuda"):
        import torch  # here: the up-front checks import torch only to look for a GPU

        _require(
            torch.cuda.is_available(),
            f"trainer.accelerator={accelerator} is invalid here: this machine has no CUDA GPU "
            "(trainer.accelerator=auto takes a GPU when there is one, else the CPU)",
        )
    epochs = _int(cfg, "trainer.max_epochs")
    _require(epochs >= 1, f"trainer.max_epochs={epochs} is invalid: it must be >= 1")
    regime = OmegaConf.select(cfg, "regime.name")
    _require(bool(regime), "regime.name is missing: choose regime=normal or regime=overfit")
    check_claim(OmegaConf.select(cfg, "regime.claim"), f"regime={regime}")
    check_name("task_name", OmegaConf.select(cfg, "task_name"))
    check_name("run_name", OmegaConf.select(cfg, "run_name"))
    check_cpu_threads(cfg)
    check_replay_images(_int(cfg, "replay.n_images"))
    for key in ("data.batch_size", "data.eval_batch_size"):
        if OmegaConf.select(cfg, key) is not None:
            size = _int(cfg, key)
            _require(size >= 1, f"{key}={size} is invalid: an integer >= 1 is required")
    for key in ("data.train_subset", "data.test_subset"):
        if OmegaConf.select(cfg, key) is not None:
            check_subset(key, _int(cfg, key))
    check_replay_parts(cfg)


def check_claim(claim: object, where: str) -> None:
    """``regime.claim``: one of :data:`advfit.identity.CLAIMS`, the one check, for train.py
    (before training) and the report (runs whose saved config holds one)."""
    names = ", ".join(CLAIMS)
    _require(
        claim is not None,
        f"regime.claim is missing in {where}: a regime declares the claim the verdict judges "
        f"its runs by, one of {names} (conf/regime/normal.yaml, say)",
    )
    _require(
        claim in CLAIMS,
        f"regime.claim={claim!r} in {where} is not a claim the verdict knows: one of {names}",
    )


def check_cpu_threads(cfg: DictConfig) -> None:
    """``cpu_threads``: null or an integer >= 1; the one check, for train.py and evaluate.py."""
    threads = OmegaConf.select(cfg, "cpu_threads")
    _require(
        threads is None
        or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1),
        f"cpu_threads={threads!r} is invalid: null (all cores) or an integer >= 1",
    )


def check_subset(key: str, value: object) -> None:
    """``data.train_subset`` / ``data.test_subset``: null (all) or at least 1 image; the one
    check, for a sweep's up-front checks and the data modules alike."""
    _require(
        value is None or (not isinstance(value, bool) and int(value) >= 1),
        f"{key}={value} is invalid: use null (all) or an integer >= 1",
    )


def check_replay_images(n_images: object) -> None:
    """``replay.n_images``: the one check, for train.py and evaluate.py alike."""
    _require(
        isinstance(n_images, int) and not isinstance(n_images, bool) and n_images >= 1,
        f"replay.n_images={n_images} is invalid: it must be >= 1",
    )


def check_attacks_given(attacks: object) -> None:
    """At least one attack: the one check, for train.py and evaluate.py alike."""
    _require(
        bool(attacks), "attack is empty: choose one or more attacks, e.g. attack=[fgsm,pgd,cw]"
    )


def check_replay_parts(cfg: DictConfig) -> None:
    """Build the attacks and metrics once, so that their own checks run before training."""
    check_attacks_given(OmegaConf.select(cfg, "attack"))
    try:
        instantiate(cfg.attack)
        if OmegaConf.select(cfg, "metrics"):
            instantiate(cfg.metrics)
    except Exception as err:  # Hydra wraps what a constructor raises
        cause = user_error(err)
        if cause is None:
            raise
        raise cause from None


def replay_attacks(given: DictConfig | None, run_cfg: DictConfig) -> DictConfig:
    """The attacks ``evaluate.py`` replays: ``given`` (its ``attack=[...]``) resolved against
    the run's own data config and threat radius, so that their batch sizes follow the run's
    data (``${data.eval_batch_size}``: STL-10's 50) and their ``eps`` the run's
    ``threat.eps`` (of a run saved before that key: its attacks' radius), else the run's own
    attacks."""
    if not given:
        return run_cfg.get("attack") or OmegaConf.create({})
    saved = OmegaConf.to_container(run_cfg, resolve=True)
    threat = {"eps": flat_config(saved)["threat.eps"] if saved.get("attack") else PAPER_EPS}
    run_side = {"data": run_cfg.get("data") or {}, "threat": threat}
    return OmegaConf.merge(run_side, {"attack": given}).attack
