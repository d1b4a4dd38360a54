"""Every config group composes and instantiates."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from advfit.callbacks import AdversarialReplay
from advfit.config import run_dir_name, run_group, short_keys, validate_train_config
from advfit.errors import ConfigError
from advfit.tasks import build_trainer, instantiate_group, regime_training
from tests.conftest import CONF, compose_cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("data", options("data"))
def test_every_data_config_instantiates(tmp_path, data):
    cfg = compose_cfg([f"data={data}"], tmp_path)
    dm = instantiate(cfg.data)
    assert dm.name == cfg.data.name == data
    assert dm.batch_size == 32 and dm.n_folds == 5


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [([], 250), (["data=stl10"], 50), (["data=stl10", "data.eval_batch_size=64"], 64)],
)
def test_attacks_and_metrics_take_the_datas_eval_batch_size(tmp_path, overrides, expected):
    cfg = compose_cfg(overrides, tmp_path)
    attacks, metrics = instantiate(cfg.attack), instantiate(cfg.metrics)
    assert instantiate(cfg.data).eval_batch_size == expected
    assert attacks["fgsm"].batch_size == attacks["pgd"].batch_size == expected
    assert metrics.metrics["loss_sensitivity"].batch_size == expected
    assert metrics.metrics["empirical_robustness"].batch_size == expected
    # CW's batch changes its examples (abort_early watches the whole batch): it keeps its own
    # and passes the network that many images at a time.
    assert attacks["cw"].batch_size == 500 and attacks["cw"].images_per_pass == expected


def test_the_evaluation_pass_is_written_once_in_the_config():
    """Its one number is in conf/data/base/in_memory.yaml; Python reads it from there."""
    import advfit.data.batches as batches

    assert (
        OmegaConf.load(Path(CONF) / "data/base/in_memory.yaml").eval_batch_size
        == batches.EVAL_BATCH_SIZE
    )
    source = Path(batches.__file__).read_text()
    assert f"= {batches.EVAL_BATCH_SIZE}\n" not in source and "eval_batch_size" in source


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(tmp_path, experiment):
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    validate_train_config(cfg)
    instantiate(cfg.data)
    if experiment.startswith("paper_"):
        assert cfg.data.grayscale is True and cfg.trainer.max_epochs == 35


def test_robust_overfitting_builds_rice_et_als_training(tmp_path):
    cfg = compose_cfg(["experiment=robust_overfitting", "model.net.width=4"], tmp_path)
    net = instantiate(cfg.model.net, input_shape=[3, 32, 32], num_classes=10)
    model = instantiate(cfg.model, net=net, **regime_training(cfg))
    built = model.configure_optimizers()
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["weight_decay"] == 5e-4
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR)
    assert sorted(scheduler.milestones) == [100, 150] and scheduler.gamma == 0.1
    assert model.pgd.params["eps"] == pytest.approx(8 / 255) and model.pgd.params["nb_iter"] == 10
    assert cfg.trainer.max_epochs == 200 and cfg.data.batch_size == 128


@pytest.mark.parametrize("regime", options("regime"))
@pytest.mark.parametrize("logger", options("logger"))
def test_model_trainer_callbacks_loggers_instantiate(tmp_path, regime, logger):
    cfg = compose_cfg([f"regime={regime}", f"logger={logger}", "debug=fast"], tmp_path)
    net = instantiate(cfg.model.net, input_shape=[1, 28, 28], num_classes=10)
    model = instantiate(cfg.model, net=net, **regime_training(cfg))
    optimizer = model.configure_optimizers()
    lrs = {"normal": 1e-5, "overfit": 0.0024, "normal_demo": 1e-4, "overfit_demo": 0.006}
    lrs |= {"adversarial": 1e-3, "adversarial_demo": 3e-3}
    assert optimizer.param_groups[0]["lr"] == lrs[regime]
    assert (model.pgd is not None) == regime.startswith("adversarial")
    loggers = instantiate_group(cfg.logger)
    trainer = build_trainer(cfg, loggers)
    assert isinstance(trainer, pl.Trainer) and trainer.max_epochs == 2
    replay = next(c for c in trainer.callbacks if isinstance(c, AdversarialReplay))
    assert sorted(replay.attacks) == ["cw", "fgsm", "pgd"]
    assert len(loggers) == {"none": 0, "csv": 1, "wandb": 2}[logger]


def test_regime_sets_epochs_and_users_override_with_known_names(tmp_path):
    cfg = compose_cfg(["regime=overfit"], tmp_path)
    assert cfg.trainer.max_epochs == 35 and cfg.regime.lr == 0.0024
    cfg = compose_cfg(["trainer.max_epochs=3", "regime.lr=0.01", "data.batch_size=64"], tmp_path)
    assert cfg.trainer.max_epochs == 3 and cfg.model.optimizer.lr == 0.01
    assert cfg.data.batch_size == 64


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fold=5", r"fold=5 is invalid: accepted values are 0..4"),
        ("n_folds=1", r"n_folds=1 is invalid"),
        ("regime.lr=-0.1", r"regime.lr=-0.1 is invalid"),
        ("model.optimizer.lr=-1", r"model.optimizer.lr=-1 is invalid: the learning rate must"),
        ("trainer.max_epochs=0", r"trainer.max_epochs=0 is invalid"),
    ],
)
def test_bad_values_name_the_value(tmp_path, override, message):
    cfg = compose_cfg([override], tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate_train_config(cfg)


def test_run_dir_name_keeps_only_result_changing_overrides():
    name = run_dir_name(
        "cifar10-overfit-fold2-seed0",
        "data=cifar10|fold=2|logger=csv|regime.lr=0.001|hydra/launcher=joblib|trainer.max_epochs=5",
    )
    assert name == "cifar10-overfit-fold2-seed0_lr=0.001_max_epochs=5"
    assert run_dir_name("a", "") == "a"


def test_groups_name_the_swept_value_first_in_short_keys():
    # Two learning rates beside a few size overrides: the groups once ended alike up to a
    # hash, the 128-character cap having cut off regime.lr.
    fixed = (
        "attack.fgsm.eps=0.1|attack.pgd.eps=0.1|data.test_subset=500|data.train_subset=3000|"
        "metrics.clever.n_images=1|metrics.n_images=100|replay.n_images=100"
    )
    for lr in ("0.001", "0.0024"):
        name = run_group(
            "barw", "fashion_mnist", "overfit", 0, f"{fixed}|regime.lr={lr}", "regime.lr"
        )
        assert len(name) <= 128 and name.startswith(f"barw/fashion_mnist-overfit-seed0_lr={lr}_")
        assert "_fgsm.eps=0.1_pgd.eps=0.1_test_subset=500_train_subset=3000_" in name
    assert short_keys(["metrics.clever.n_images", "metrics.n_images", "replay.n_images"]) == {
        "metrics.clever.n_images": "clever.n_images",
        "metrics.n_images": "metrics.n_images",
        "replay.n_images": "replay.n_images",
    }


def test_a_long_run_dir_name_is_capped_and_stays_distinct():
    overrides = "|".join(f"data.path=/a/very/long/path/{'x' * 150}/set{i}.npz" for i in range(2))
    a = run_dir_name("custom-overfit-fold0-seed0", overrides.split("|")[0])
    b = run_dir_name("custom-overfit-fold0-seed0", overrides.split("|")[1])
    assert len(a) <= 200 and len(b) <= 200 and a != b
    assert a.startswith("custom-overfit-fold0-seed0_path=")


def test_local_config_is_optional_and_ignored_by_git():
    assert (CONF / "local").is_dir()
    assert "conf/local/*" in (Path(CONF).parent / ".gitignore").read_text()


@pytest.mark.parametrize(("data", "expected"), [("fashion_mnist", 250), ("stl10", 50)])
def test_evaluate_replays_new_attacks_at_the_runs_eval_batch_size(tmp_path, data, expected):
    from advfit.config import replay_attacks

    run_cfg = compose_cfg([f"data={data}"], tmp_path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        given = compose("evaluate", overrides=["run_dir=x", "attack=[fgsm,pgd,cw]"]).attack
    attacks = instantiate(replay_attacks(given, run_cfg))
    assert attacks["fgsm"].batch_size == attacks["pgd"].batch_size == expected
    assert attacks["cw"].images_per_pass == expected
    # Without attack=[...] the run's own attacks, as it ran them.
    own = instantiate(replay_attacks(None, run_cfg))
    assert own["pgd"].batch_size == expected
    # Their radius is the run's: its threat.eps, or, saved before that key, its attacks'.
    for threat, radius in ((0.1, 0.1), (None, 0.2)):
        saved = OmegaConf.to_container(run_cfg, resolve=True)
        if threat is None:  # a config of an earlier version
            del saved["threat"]
            saved["attack"]["pgd"]["eps"] = radius
        else:
            saved["threat"]["eps"] = threat
        attacks = instantiate(replay_attacks(given, OmegaConf.create(saved)))
        assert attacks["fgsm"].params["eps"] == radius


def test_the_wandb_start_up_wait_has_one_number():
    """conf/logger/wandb.yaml's init_timeout and the runs advfit opens itself (evaluate,
    report) wait the same: advfit.tracking.runs.INIT_TIMEOUT."""
    from advfit.tracking.runs import INIT_TIMEOUT

    assert OmegaConf.load(Path(CONF) / "logger/wandb.yaml").wandb.init_timeout == INIT_TIMEOUT


#: The L-inf attacks that read the threat radius.
LINF = ("fgsm", "pgd", "apgd", "autoattack")


@pytest.mark.parametrize("experiment", [None, *options("experiment")])
def test_the_threat_radius_is_set_once_and_read_by_every_linf_attack(tmp_path, experiment):
    overrides = [f"experiment={experiment}"] if experiment else []
    cfg = compose_cfg([*overrides, "attack=[fgsm,pgd,cw,apgd,autoattack]"], tmp_path)
    eps = cfg.threat.eps
    assert {name: cfg.attack[name].eps for name in LINF} == dict.fromkeys(LINF, eps)
    if experiment in ("resnet_cifar10", "robust_overfitting"):
        assert eps == pytest.approx(8 / 255)
        assert cfg.metrics.robust_accuracy.eps == eps  # white-box robustness at the same radius
    if experiment == "robust_overfitting":
        assert cfg.regime.adversarial.eps == eps  # trained at the radius it is attacked at
    moved = compose_cfg([*overrides, "attack=[fgsm,pgd,apgd]", "threat.eps=0.1"], tmp_path)
    assert {moved.attack[name].eps for name in ("fgsm", "pgd", "apgd")} == {0.1}


def test_the_threat_radius_is_written_once_per_experiment():
    """8/255 and the paper's 0.3 each stand in one line per file that sets a radius."""
    texts = {p: p.read_text() for p in CONF.rglob("*.yaml")}
    eight = [p.name for p, text in texts.items() for _ in range(text.count("0.0313725"))]
    assert sorted(eight) == ["resnet_cifar10.yaml", "robust_overfitting.yaml"]
    attacks = [p for p in texts if p.parent.name == "attack"]
    assert not [p.name for p in attacks if "eps: 0.3" in texts[p]]


def test_a_run_saved_before_the_threat_key_reads_its_attacks_radius():
    """Saved configs of earlier versions have no threat.eps: their attacks' radius stands in,
    so they are the same run as today's config and still resume."""
    from advfit.identity import config_differences, flat_config

    old = {"attack": {"fgsm": {"eps": 8 / 255}, "cw": {"confidence": 0}}, "regime": {"name": "x"}}
    assert flat_config(old)["threat.eps"] == 8 / 255
    new = {**old, "threat": {"eps": 8 / 255}}
    assert config_differences(old, new) == []
    assert flat_config({"attack": {"cw": {"confidence": 0}}})["threat.eps"] == 0.3


def test_the_training_runs_job_type_is_its_kind_of_job():
    from advfit.tracking.runs import TRAIN_JOB

    assert OmegaConf.load(Path(CONF) / "logger/wandb.yaml").wandb.job_type == TRAIN_JOB
