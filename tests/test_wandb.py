"""W&B as a researcher meets it, read back from the offline files of real tiny runs."""

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image as PILImage
from torchvision.datasets import FashionMNIST

from advfit.report.__main__ import main as report_main
from advfit.rundir import RunDir
from advfit.tasks import evaluate, train
from advfit.tracking import dashboard
from tests.conftest import compose_cfg, run_cli
from tests.wandb_history import artifacts, history, logged_value, offline_runs, records

TINY = [
    "regime=overfit",
    "trainer.max_epochs=3",
    "data.train_subset=600",
    "data.test_subset=100",
    "logger=wandb",
    "attack=[fgsm]",
    "replay.n_images=20",
    "metrics.n_images=40",
    "metrics.clever.n_images=2",
    "metrics.clever.pool_factor=2",
]


class OwnMetric(pl.Callback):
    """A researcher's own callback, defined here alone: it logs with Lightning's self.log."""

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            pl_module.log("mine/ten_times_epoch", 10.0 * (trainer.current_epoch + 1))


@pytest.fixture(scope="module")
def logged(tmp_path_factory, fmnist_dir):
    out = tmp_path_factory.mktemp("wandb")
    mine = "+callbacks.mine._target_=tests.test_wandb.OwnMetric"
    cfg = compose_cfg([*TINY, mine], out, data_dir=fmnist_dir)
    train(cfg)
    return RunDir(cfg.paths.output_dir), cfg


def test_every_per_epoch_quantity_is_logged_against_epoch(logged):
    run, _ = logged
    epochs = run.read_epochs()
    rows = history(run.root)
    assert set(epochs.columns) - {"epoch"} == {
        "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "asr_fgsm",
        "asr_fgsm_given_correct", "n_correct_fgsm",
        "loss_sensitivity", "empirical_robustness", "clever", "robust_accuracy",
    }  # fmt: skip
    for column in epochs.columns.drop("epoch"):
        # NaN is not logged (the conditional ASR below its minimum of correct sources).
        expected = epochs[["epoch", column]].dropna()
        assert len(expected), column
        logged_rows = [r for r in rows if column in r]
        assert [r["epoch"] for r in logged_rows] == expected["epoch"].tolist(), column
        assert [r[column] for r in logged_rows] == pytest.approx(
            expected[column].tolist(), rel=1e-6
        ), column
    # What a callback of one's own logs with self.log reaches W&B on the same axis.
    mine = [(r["epoch"], r["mine/ten_times_epoch"]) for r in rows if "mine/ten_times_epoch" in r]
    assert mine == [(e, 10.0 * e) for e in epochs["epoch"]]
    assert not any("train/loss" in r or "val/acc" in r for r in rows)  # the rows carry those
    # Every key is plotted against epoch: the last definition of "*" names it.
    (path,) = offline_runs(run.root)
    stars = [r.metric for r in records(path) if r.WhichOneof("record_type") == "metric"]
    stars = [m for m in stars if m.glob_name == "*"]
    assert stars and stars[-1].step_metric == "epoch"
    assert not any("trainer/global_step" in r for r in rows)


def test_summary_holds_the_runs_headline_numbers(logged):
    run, _ = logged
    (path,) = offline_runs(run.root)
    summary = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = item.value_json
    best = run.best_epoch()
    epochs = run.read_epochs().set_index("epoch")
    assert int(summary["best_epoch"]) == best
    learned = json.loads((run.root / "summary.json").read_text())["learned"]["learned"]
    assert summary["learned"] == json.dumps(learned) == "true"
    assert float(summary["fgsm/asr_best"]) == pytest.approx(epochs.loc[best, "asr_fgsm"])
    assert float(summary["fgsm/asr_last"]) == pytest.approx(epochs.loc[3, "asr_fgsm"])
    distances = pd.read_csv(run.distances_csv).set_index("attack")
    assert float(summary["fgsm/l2_mean"]) == pytest.approx(distances.loc["fgsm", "l2_mean"])
    assert any(any(k.startswith("distances/") for k in r) for r in history(run.root))


def test_image_panels_show_clean_adversarial_and_perturbation(logged):
    run, cfg = logged
    (path,) = offline_runs(run.root)
    (row,) = [r for r in history(run.root) if logged_value(r, "examples/fgsm")]
    panel = logged_value(row, "examples/fgsm")
    assert row["epoch"] == run.best_epoch()
    assert panel["_type"] == "images/separated" and panel["count"] == 4
    names = FashionMNIST.classes
    for caption in panel["captions"]:
        true, predicted = caption.split(" (")[0].removeprefix("true: ").split(", predicted: ")
        assert true in names and predicted in names, caption
    # The first picture: clean | adversarial | amplified perturbation, as crafted.
    adv = torch.load(run.attack_set("fgsm"), weights_only=True)
    fooled = [i for i, c in enumerate(panel["captions"]) if c.split(", predicted: ")[0][6:]
              != c.split(", predicted: ")[1].split(" (")[0]]  # fmt: skip
    assert fooled, "FGSM at eps 0.3 fools some of the best snapshot's examples"
    picture = np.asarray(PILImage.open(path.parent / "files" / panel["filenames"][0]))
    scale = picture.shape[0] // 28
    assert scale >= 3 and picture.shape[1] == scale * (3 * 28 + 4)
    tiles = [picture[::scale, ::scale][:, j * 30 : j * 30 + 28] for j in range(3)]
    dm = instantiate(cfg.data)
    dm.setup("test")
    labels = adv["labels"].tolist()
    true_name = panel["captions"][0].split(", predicted: ")[0][6:]
    candidates = [i for i, lab in enumerate(labels) if names[lab] == true_name]
    matches = [
        i for i in candidates
        if np.array_equal(tiles[0], dm.x_test[adv["indices"][i], 0].numpy())
        and np.abs(tiles[1].astype(int) - (adv["x_adv"][i, 0] * 255).round().numpy()).max() <= 1
    ]  # fmt: skip
    assert matches, "the first picture's tiles are a crafted example and its clean image"
    delta = tiles[1].astype(int) - tiles[0].astype(int)
    assert np.corrcoef(delta.ravel(), tiles[2].astype(int).ravel())[0, 1] > 0.95


def group_of(tmp_path: Path, *overrides: str) -> str:
    cfg = compose_cfg(["logger=wandb", *overrides], tmp_path)
    return OmegaConf.select(cfg, "logger.wandb.group")


def test_groups_hold_the_folds_of_one_configuration(tmp_path):
    a = group_of(tmp_path, "regime=overfit", "regime.lr=0.001", "fold=0")
    assert group_of(tmp_path, "regime=overfit", "regime.lr=0.001", "fold=3") == a
    assert group_of(tmp_path, "regime=overfit", "regime.lr=0.01", "fold=0") != a
    assert a.startswith("study/fashion_mnist-overfit-seed0_") and "_lr=0.001" in a
    assert "fold" not in a
    assert group_of(tmp_path, "task_name=demo") != group_of(tmp_path, "task_name=study")
    long = group_of(tmp_path, *(f"+x{i}=value{i}" for i in range(30)))
    assert len(long) <= 128


def evaluate_with_wandb(run: RunDir) -> None:
    """evaluate.py's task on the module's run, logging to W&B (offline)."""
    evaluate(
        OmegaConf.create(
            {
                "run_dir": str(run.root),
                "attack": None,
                "replay": {"n_images": None},
                "device": "cpu",
                "progress": False,
                "wandb": True,
                "trust": ["tests.test_wandb."],  # the run's own callback (OwnMetric)
            }
        )
    )


def test_evaluate_logs_its_own_run_and_leaves_the_training_run_alone(logged, tmp_path):
    run, _ = logged
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in offline_runs(run.root)}
    evaluate_with_wandb(run)
    after = offline_runs(run.root)
    assert {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in after if p.name in before
    } == before
    (new,) = [p for p in after if p.name not in before]
    (training,) = [p for p in after if p.name in before]
    runs = {
        path: next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
        for path in (new, training)
    }
    assert runs[new].job_type == "evaluate" and runs[new].run_group == runs[training].run_group
    assert runs[training].job_type == "train"  # W&B's kind of job; the fold is in the name
    assert runs[new].display_name == runs[training].display_name + "-evaluate"
    assert runs[new].run_id != runs[training].run_id
    replayed = [r for r in history(run.root, new) if "asr_fgsm" in r]
    assert [r["epoch"] for r in replayed] == [1, 2, 3]


def test_an_unreachable_wandb_server_stops_the_run_within_seconds(tmp_path, fmnist_dir):
    started = time.monotonic()
    result = run_cli(
        "train.py",
        f"paths.root_dir={tmp_path}",
        "logger.wandb.mode=online",
        "logger.wandb.init_timeout=3",
        f"paths.data_dir={fmnist_dir}",
        "data.train_subset=500",
        cwd=tmp_path,
        env={
            "WANDB_BASE_URL": "http://127.0.0.1:9",
            "WANDB_API_KEY": "x" * 40,
            "WANDB_MODE": "online",
        },
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "W&B could not start an online run at http://127.0.0.1:9" in output
    assert "logger.wandb.mode=offline" in output and "Traceback" not in output
    assert time.monotonic() - started < 60 and not list(tmp_path.rglob("epoch_*.pt"))


def logged_keys(run_dir: Path) -> set[str]:
    """Every history key a run logged, media and tables under their own key."""
    keys = set()
    for row in history(run_dir):
        for key in row:
            keys.add(key)
            if "/" in key:
                keys.add(key.rsplit("/", 1)[0])
    return keys


def test_dashboard_spec_plots_the_papers_figures_from_logged_keys(logged, tmp_path, capsys):
    run, _ = logged
    out = tmp_path / "spec.json"
    assert (
        dashboard.main(["--dry-run", "--attacks", "fgsm", "--task", "study", "--out", str(out)])
        == 0
    )
    spec = json.loads(out.read_text())["spec"]["section"]
    sections = spec["panelBankConfig"]["sections"]
    names = [s["name"] for s in sections]
    for pair in ("3 (normal) and 7 (overfit)", "4 (normal) and 8 (overfit)",
                 "5 (normal) and 9 (overfit)", "6 (normal) and 10 (overfit)"):  # fmt: skip
        assert any(pair in name for name in names), (pair, names)
    lines = [p for s in sections for p in s["panels"] if p["viewType"] == "Run History Line Plot"]
    plotted = {m for p in lines for m in p["config"]["metrics"]}
    assert plotted == {"train_acc", "val_acc", "test_acc", "asr_fgsm", "clever",
                       "asr_fgsm_given_correct",
                       "loss_sensitivity", "empirical_robustness", "robust_accuracy",
                       "val_robust_acc"}  # fmt: skip
    for panel in lines:
        config = panel["config"]
        assert config["xAxis"] == "epoch" and config["groupBy"] == "group"
        assert (config["groupAgg"], config["groupArea"]) == ("mean", "stddev")
    media = [k for s in sections for p in s["panels"] for k in p["config"].get("mediaKeys", [])]
    assert media == ["examples/fgsm"]
    tables = [s for s in sections if any(p["viewType"] == "Weave" for p in s["panels"])]
    assert len(tables) == 1 and "distances" in json.dumps(tables[0])
    # Every key the dashboard reads, the tiny run really logged.
    # Every key is logged by a normal run, but the adversarial regime's robust validation.
    assert plotted - {"val_robust_acc"} | set(media) | {"distances"} <= logged_keys(run.root)
    runset = spec["runSets"][0]
    assert runset["grouping"] == [{"section": "run", "name": "group"}]
    filters = {(f["key"]["name"], f["op"], str(f["value"])) for f in runset["filters"]["filters"]}
    assert ("tags", "IN", "['study']") in filters and ("jobType", "!=", "evaluate") in filters
    assert spec["settings"]["xAxis"] == "epoch"


@pytest.mark.parametrize(
    "argv, env, message",
    [
        ([], {}, "--entity and --project required"),
        (["--entity", "e", "--project", "p"], {"WANDB_API_KEY": ""}, "not logged in to W&B"),
        (
            ["--entity", "e", "--project", "p", "--timeout", "2"],
            {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"},
            "W&B at http://127.0.0.1:9 cannot be reached",
        ),
        (["--dry-run", "--attacks", ","], {}, "names no attack"),
    ],
)
def test_dashboard_refuses_at_once_with_one_line(argv, env, message, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    assert dashboard.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert time.monotonic() - started < 30


def test_report_logs_a_report_run_with_figures_tables_and_the_html(logged, tmp_path):
    run, _ = logged
    out = tmp_path / "report"
    assert report_main([str(run.root.parent), "--out", str(out)]) == 0
    (path,) = offline_runs(out)
    found = {r.WhichOneof("record_type"): r for r in records(path)}
    assert found["run"].run.job_type == "report" and found["run"].run.project == "advfit"
    (row,) = [r for r in history(out) if logged_value(r, "verdict")]
    for name in ("fig7", "fig8", "fig9", "fig10"):  # the overfit regime's figures
        image = logged_value(row, f"figures/{name}")
        assert image["_type"] == "image-file" and image["caption"].startswith(f"Figure {name[3:]}.")
        assert (path.parent / "files" / image["path"]).stat().st_size > 1000
    verdict = json.loads((path.parent / "files" / logged_value(row, "verdict")["path"]).read_text())
    # One attack, FGSM, read both ways: the paper's ASR and the ASR among correct sources.
    assert len(verdict["data"]) == 2 and "verdict" in verdict["columns"]
    folds = json.loads(
        (path.parent / "files" / logged_value(row, "verdict_folds")["path"]).read_text()
    )
    assert folds["columns"][-3:] == ["reads", "fgsm", "fgsm (given correct)"]
    assert len(folds["data"]) == 1  # one fold
    distances = json.loads(
        (path.parent / "files" / logged_value(row, "distances")["path"]).read_text()
    )
    assert [r[distances["columns"].index("attack")] for r in distances["data"]] == ["fgsm"]
    manifest = "\n".join(
        str(r.artifact) for r in records(path) if r.WhichOneof("record_type") == "artifact"
    )
    assert "report.html" in manifest and 'type: "report"' in manifest
    assert (
        report_main([str(run.root.parent), "--out", str(tmp_path / "r2"), "--wandb", "disabled"])
        == 0
    )
    assert not offline_runs(tmp_path / "r2")


def test_artifacts_follow_a_verdict_back_to_its_snapshot_and_adversarial_set(logged, tmp_path):
    """Snapshot -> adversarial set -> replay -> report, read from the offline records: the
    training run logs its snapshots (the best as a file, the others as references), each set
    (naming the snapshot it was crafted on) and its replay, each with every file's sha256;
    evaluate.py uses the snapshots and the set and logs a new replay; the report uses the
    replays. A use is the same artifact (the same digest) as the one logged."""
    run, cfg = logged
    files = {p.name for p in offline_runs(run.root)}
    (training,) = [p for p in offline_runs(run.root) if job_type(p) == "train"]
    logged_out = {a["name"]: a for a in artifacts(training)}
    task = cfg.task_name
    snapshots = logged_out[f"{task}-{run.root.name}-snapshots"]
    fgsm = logged_out[f"{task}-{run.root.name}-fgsm"]
    replay = logged_out[f"{task}-{run.root.name}-replay"]
    assert not any(a["used"] for a in logged_out.values())
    best = run.best_epoch()
    sealed = run.read_summary()["digests"]
    assert snapshots["type"] == "snapshots" and snapshots["metadata"]["best_epoch"] == best
    assert snapshots["metadata"]["sha256"] == {
        str(p.relative_to(run.root)): sealed[str(p.relative_to(run.root))]
        for p in run.snapshots().values()
    }
    kinds = {name: kind for name, kind in snapshots["files"].items()}
    best_name = str(run.snapshot(best).relative_to(run.root))
    assert kinds.pop(best_name) == "file" and len(kinds) == 2
    assert all(ref == (run.root / n).resolve().as_uri() for n, ref in kinds.items())
    assert fgsm["type"] == "adversarial-set" and fgsm["files"] == {"adversarial/fgsm.pt": "file"}
    assert fgsm["metadata"]["crafted_on"] == {
        "artifact": f"{task}-{run.root.name}-snapshots",
        "epoch": best,
        "sha256": sealed[best_name],
    }
    assert fgsm["metadata"]["sha256"] == {"adversarial/fgsm.pt": sealed["adversarial/fgsm.pt"]}
    assert replay["type"] == "replay" and "epochs.csv" in replay["files"]
    assert replay["metadata"]["sha256"]["epochs.csv"] == sealed["epochs.csv"]

    evaluate_with_wandb(run)
    (evaluated,) = [p for p in offline_runs(run.root) if p.name not in files]
    ours = ("snapshots", "adversarial-set", "replay", "report")  # not W&B's table artifacts
    by_use = {(a["name"], a["used"]): a for a in artifacts(evaluated) if a["type"] in ours}
    assert set(by_use) == {
        (snapshots["name"], True),
        (fgsm["name"], True),
        (replay["name"], False),
    }
    assert by_use[(snapshots["name"], True)]["digest"] == snapshots["digest"]
    assert by_use[(fgsm["name"], True)]["digest"] == fgsm["digest"]
    new_replay = by_use[(replay["name"], False)]
    assert (
        new_replay["metadata"]["sha256"]["epochs.csv"]
        == run.read_summary()["digests"]["epochs.csv"]
    )

    out = run.root.parent / "report-lineage"
    assert report_main([str(run.root.parent), "--out", str(out)]) == 0
    (report,) = offline_runs(out)
    # make sync uploads producers before consumers: training, evaluate, then the report.
    synced = subprocess.run(
        ["make", "-s", "-o", "install", "sync", f"SWEEP={run.root.parent}", "WANDB_SYNC=echo"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    order = [Path(p).name for p in synced.stdout.split()]
    assert [n for n in order if n in {p.parent.name for p in (training, evaluated, report)}] == [
        p.parent.name for p in (training, evaluated, report)
    ], synced.stdout + synced.stderr
    found = {(a["name"], a["used"]): a for a in artifacts(report) if a["type"] in ours}
    assert found[(replay["name"], True)]["digest"] == new_replay["digest"]
    assert [a["type"] for (_, used), a in found.items() if not used] == ["report"]


def job_type(path: Path) -> str:
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run").job_type


def test_the_wandb_behaviour_the_lineage_relies_on(tmp_path):
    """advfit.tracking.artifacts records an offline use through W&B's Run._log_artifact
    (use_artifact refuses offline): pinned here, with wandb bounded below 1.0 in pyproject.
    An artifact built twice from the same files has one digest, so the use is that version."""
    import wandb

    from advfit.tracking.artifacts import use

    payload = tmp_path / "set.pt"
    payload.write_bytes(b"adversarial examples")

    def built():
        artifact = wandb.Artifact("a-set", type="adversarial-set")
        artifact.add_file(str(payload))
        return artifact

    produced = wandb.init(dir=str(tmp_path / "p"), mode="offline", project="advfit")
    produced.log_artifact(built())
    produced.finish()
    consumer = wandb.init(dir=str(tmp_path / "c"), mode="offline", project="advfit")
    with pytest.raises(TypeError, match="offline"):
        consumer.use_artifact(built())
    use(consumer, built())
    consumer.finish()
    (logged_out,) = artifacts(offline_runs(tmp_path / "p")[0])
    (used,) = artifacts(offline_runs(tmp_path / "c")[0])
    assert used["used"] and not logged_out["used"] and used["digest"] == logged_out["digest"]


def test_runs_without_a_wandb_logger_never_import_wandb(monkeypatch, tmp_path):
    """logger=none or csv must run where wandb is not installed (a GPU image without it)."""
    from pytorch_lightning.loggers import CSVLogger

    from advfit.tracking.training import finish_loggers, start_loggers

    monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # `import wandb` now fails
    loggers = [CSVLogger(str(tmp_path))]
    start_loggers(loggers)
    finish_loggers(loggers)
    start_loggers([])
    with pytest.raises(ImportError):
        import wandb  # noqa: F401  (the check above is real: the import is blocked)


def test_no_anonymous_setting_reaches_wandb_unless_asked_for(tmp_path):
    from advfit.tracking.training import EpochWandbLogger

    assert "anonymous" not in EpochWandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init
    asked = EpochWandbLogger(save_dir=str(tmp_path), offline=True, anonymous=True)
    assert asked._wandb_init["anonymous"] == "allow"


def test_lightnings_cloud_logger_advert_is_not_printed(caplog):
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    import advfit.cli  # noqa: F401  (installs the filter)

    with caplog.at_level("INFO", logger="pytorch_lightning.utilities.rank_zero"):
        rank_zero_info("Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        rank_zero_info("GPU available: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False"]


def test_torchs_leafspec_notice_about_lightnings_code_is_not_printed():
    """torch warns (FutureWarning) when Lightning builds a ``LeafSpec``, once per job. Checked in
    a fresh process, where Python's default filters would print it."""
    code = (
        "import warnings, advfit.cli\n"
        "from torch.utils._pytree import LeafSpec\n"
        "LeafSpec()\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    LeafSpec()\n"
        "print(len(seen), seen[0].category.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "FutureWarning"]  # torch does warn ...
    assert "LeafSpec" not in out.stderr  # ... and advfit.cli keeps it out of the output


def test_summary_rho_leaves_out_the_best_epochs_white_box_asr():
    """The summary's rho is the verdict's: over the replayed epochs from epoch 5, the best
    epoch (where the attacks were crafted, its ASR white-box) left out."""
    from types import SimpleNamespace

    from scipy.stats import spearmanr

    from advfit.tracking.replay import headline

    epoch = np.arange(1, 13)
    asr = 0.5 + 0.05 * np.sin(3 * epoch)
    asr[epoch == 12] = 1.0  # the best (and most accurate) epoch: white-box
    epochs = pd.DataFrame({"epoch": epoch, "test_acc": 0.3 + 0.04 * epoch, "asr_fgsm": asr})
    distances = pd.DataFrame(
        [{"attack": "fgsm", "l0_mean": 700.0, "l2_mean": 8.0, "linf_mean": 0.3}]
    )
    result = SimpleNamespace(epochs=epochs, summary={"best_epoch": 12}, distances=distances)
    kept = epochs[(epochs["epoch"] >= 5) & (epochs["epoch"] != 12)]
    expected = spearmanr(kept["test_acc"], kept["asr_fgsm"]).statistic
    with_best = spearmanr(epochs["test_acc"][4:], epochs["asr_fgsm"][4:]).statistic
    assert headline(result)["fgsm/rho_from_epoch_5"] == pytest.approx(expected)
    assert abs(expected - with_best) > 0.1  # the white-box epoch would have moved it


def test_auto_mode_stays_offline_where_the_server_cannot_be_reached(monkeypatch, caplog):
    from advfit.tracking.mode import resolve_wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    assert resolve_wandb_mode("auto") == "offline"
    assert "the server cannot be reached" in caplog.text and "make sync" in caplog.text
    assert resolve_wandb_mode("online") == "online"  # asked for explicitly: not overruled
    with socket.socket() as server:  # a server on loopback that accepts connections
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert resolve_wandb_mode("auto") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("HOME", "/nonexistent")
    assert resolve_wandb_mode("auto") == "offline"


def test_artifact_names_fit_wandbs_limit_and_stay_unique():
    """A run named after many overrides gives a name over W&B's 128 characters: it is
    shortened, with a digest of the whole name, and two such runs still differ."""
    from advfit.tracking.artifacts import MAX_NAME, artifact_name

    long = "fashion_mnist-overfit-fold0-seed0_attack=[fgsm,cw]_" + "x=1_" * 40
    names = {
        artifact_name(RunDir(Path("/r") / f"{long}{tail}"), "kill", "snapshots")
        for tail in ("a", "b")
    }
    assert len(names) == 2
    assert all(len(n) <= MAX_NAME and n.endswith("-snapshots") for n in names)
    assert all(
        n.startswith("kill-fashion_mnist-overfit-fold0-seed0_attack__fgsm_cw_") for n in names
    )
    short = artifact_name(RunDir(Path("/r/fashion_mnist-normal-fold0-seed0")), "demo", "cw_fast")
    assert short == "demo-fashion_mnist-normal-fold0-seed0-cw_fast"


def test_artifacts_that_cannot_be_logged_leave_a_sealed_run_complete(logged, caplog):
    """W&B refusing an artifact after DONE (a bad name, a full disk) is one warning naming the
    run and the reason, not a failed job; the run directory is untouched."""
    from advfit.tracking.artifacts import log_evaluate_artifacts, log_training_run

    run, _ = logged

    class Refusing:  # an offline run whose every artifact, logged or used, is refused
        settings = OmegaConf.create({"mode": "offline"})

        def log_artifact(self, artifact, **_):
            raise ValueError(f"Artifact name is longer than 128 characters: {artifact.name}")

        _log_artifact = log_artifact

    before = run.summary_json.read_bytes()
    for log_them in (log_training_run, log_evaluate_artifacts):
        caplog.clear()
        log_them(Refusing(), run)
        assert "its W&B artifacts were not logged (Artifact name is longer" in caplog.text
        assert str(run.root) in caplog.text and "the run directory is complete" in caplog.text
    assert run.summary_json.read_bytes() == before and run.is_done()
