"""The protocol benchmark at toy size, so it cannot rot: every stage in its table."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from benchmarks import protocol


@pytest.mark.slow
def test_protocol_benchmark_times_every_stage_at_toy_size(tmp_path, fmnist_dir, capsys):
    out = tmp_path / "bench"
    argv = [
        "--shapes", "cifar10", "--regimes", "overfit",
        "--train-size", "400", "--test-size", "150",
        "--epochs", "4", "--measure-epochs", "2", "--sources", "40", "--measure-sources", "20",
        "--folds", "5", "--run-folds", "2", "--jobs", "2", "--threads", "1",
        "--data-dir", str(fmnist_dir), "--out", str(out),
        "--set", "metrics.n_images=60", "--set", "metrics.clever.n_images=2",
        "--set", "metrics.clever.pool_factor=2", "--set", "data.eval_batch_size=200",
    ]  # fmt: skip
    assert protocol.main(argv) == 0
    table = pd.read_csv(out / "protocol.csv")
    stages = {"train", "validate", "attack fgsm", "attack pgd", "attack cw",
              "classify snapshots", "loss_sensitivity", "empirical_robustness", "clever",
              "robust_accuracy", "other (start-up, data, files)", "run",
              "metrics / training"}  # fmt: skip
    assert stages <= set(table.columns)
    assert table["shape"].tolist() == ["cifar10"] * 2 and table["fold"].tolist() == [0, 1]
    for column in stages - {"other (start-up, data, files)"}:
        assert (table[column] > 0).all(), column
    parts = table[sorted(stages - {"run", "metrics / training"})].sum(axis=1)
    assert table["run"].to_numpy() == pytest.approx(parts.to_numpy())
    text = (out / "protocol.md").read_text()
    assert "folds 0-1 of each regime, extrapolated from 2 epochs and 20 sources to 4 and 40" in text
    total = table["run"].sum() * 5 / 2 / 2  # 2 of 5 folds run, 2 jobs at once
    assert f"{total:,.0f} s" in text
    # Each run's stages are printed as it finishes (a benchmark stopped early still tells).
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("finished")]
    assert sorted(x[: x.index(" in ")] for x in lines) == [
        f"finished cifar10 / overfit / fold {fold} on cpu" for fold in (0, 1)
    ]
    # Each run's summary holds every epoch's and every scored snapshot's seconds.
    for summary in out.rglob("summary.json"):
        s = json.loads(summary.read_text())
        assert len(s["seconds"]["train_epochs"]) == 2
        assert sum(s["seconds"]["train_epochs"]) == pytest.approx(s["seconds"]["train"])
        assert len(s["metrics_seconds_by_snapshot"]["clever"]) == 2
    (line,) = [x for x in lines if "fold 0" in x]
    assert f"train {table['train'][0]:,.1f}" in line and "attack cw " in line and "clever " in line
    assert "; measured training epochs " in line  # the first epoch's one-off costs show


def test_extrapolation_counts_the_first_epochs_one_off_costs_once():
    """Training and each metric: the first epoch (snapshot) as measured, the others' mean for
    the rest; a total alone is scaled."""
    assert protocol.per_item([5.0, 1.0, 2.0], 8.0, 3, 35) == pytest.approx(5 + 34 * 1.5)
    assert protocol.per_item([5.0, 1.0, 2.0], 8.0, 3, 3) == pytest.approx(8.0)  # as measured
    assert protocol.per_item(None, 8.0, 2, 35) == pytest.approx(140.0)
    assert protocol.per_item([8.0], 8.0, 1, 35) == pytest.approx(280.0)  # one: nothing to tell
    summary = {
        "seconds": {"train": 12.0, "validate": 1.0, "train_epochs": [6.0, 3.0, 3.0]},
        "replay": {"seconds": {"craft_cw": 4.0, "replay": 9.0}},
        "metrics_seconds_per_snapshot": {"clever": 2.0},
        "metrics_seconds_by_snapshot": {"clever": [4.0, 1.0, 1.0]},
    }
    row = protocol.stages(summary, 40.0, 3, 100, {"epochs": 35, "sources": 1000})
    assert row["train"] == pytest.approx(6 + 34 * 3)
    assert row["clever"] == pytest.approx(4 + 34 * 1)
    assert row["classify snapshots"] == pytest.approx((9 - 6) * 35 / 3)
    assert row["attack cw"] == pytest.approx(40.0)
    # Every metric the run scored is a stage of its own and counts in the run's total (the
    # robust accuracy once went uncounted: subtracted from classifying, never added).
    summary["metrics_seconds_per_snapshot"]["robust_accuracy"] = 0.5
    row = protocol.stages(summary, 40.0, 3, 100, {"epochs": 35, "sources": 1000})
    assert row["robust_accuracy"] == pytest.approx(0.5 * 35)
    assert row["classify snapshots"] == pytest.approx((9 - 7.5) * 35 / 3)
    parts = [v for k, v in row.items() if k not in ("run", "metrics / training")]
    assert row["run"] == pytest.approx(sum(parts))


@pytest.mark.parametrize("shape, side", [("cifar10", 32), ("stl10", 96)])
def test_standins_have_the_papers_shapes_from_real_images(shape, side, fmnist_dir, tmp_path):
    path = protocol.standin(protocol.SHAPES[shape], 400, 150, fmnist_dir, tmp_path)
    x_train, *_ = protocol.fashion_mnist(fmnist_dir)
    with np.load(path) as npz:
        assert npz["x_train"].shape == (400, 1, side, side)
        assert npz["x_test"].shape == (150, 1, side, side)
        assert npz["x_train"].dtype == np.uint8
        assert sorted(set(npz["y_train"].tolist())) == list(range(10))
        first = npz["x_train"][0, 0].astype(float)
    source = x_train[0, 0].numpy().astype(float)
    if shape == "cifar10":  # padded: the image itself in the middle, zeros around
        assert np.array_equal(first[2:30, 2:30], source) and first.sum() == source.sum()
    else:  # resized: the same picture, brightness kept
        back = F.interpolate(torch.tensor(first)[None, None], size=(28, 28), mode="area")
        assert np.corrcoef(back.numpy().ravel(), source.ravel())[0, 1] > 0.95
        assert abs(first.mean() - source.mean()) < 5
    assert protocol.standin(protocol.SHAPES[shape], 400, 150, fmnist_dir, tmp_path) == path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--train-size", "70000"], "70,000 training images cannot be built"),
        (["--shapes", "stl10", "--test-size", "20000"], "20,000 test images cannot be built"),
        (["--shapes", "imagenet"], "accepted are cifar10, stl10"),
        (["--measure-epochs", "0"], "--measure-epochs=0: must be >= 1"),
        (["--run-folds", "6"], "--run-folds=6: a regime has 5 folds (--folds); accepted: 1 to 5"),
        (["--folds", "1"], "--folds=1: n_folds=1 is invalid: cross-validation needs n_folds >= 2"),
    ],
)
def test_protocol_benchmark_refuses_what_it_cannot_build(argv, message, tmp_path, capsys):
    assert protocol.main([*argv, "--data-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.npz"))


def test_device_benchmark_runs_every_section_at_toy_size(capsys):
    """`python -m benchmarks.on_device` is what a GPU session runs first: it must not rot on
    machines without one (here on the CPU, at toy size)."""
    import logging

    from benchmarks import on_device

    lightning_log = logging.getLogger("pytorch_lightning")
    level, deterministic = lightning_log.level, torch.are_deterministic_algorithms_enabled()
    try:  # main() quietens Lightning's log and leaves deterministic algorithms on: restored
        on_device.main(
            ["--sides", "32", "--steps", "5", "--clever-images", "1", "--cw-iterations", "2"]
        )
    finally:
        lightning_log.setLevel(level)
        torch.use_deterministic_algorithms(deterministic)
    out = capsys.readouterr().out
    assert out.startswith("CPU, torch ")
    for line in (
        "clever 32x32 deterministic=True points_per_pass=100",
        "clever 32x32 deterministic=False points_per_pass=500",
        "clever 32x32 random points for 1 images: drawn on the CPU and copied",
        "plain training step 32x32 batch 32 Adam:",
        "lightning training step 32x32 batch 32 deterministic=True metric checks off:",
        "lightning training step 32x32 batch 32 deterministic=False metric checks off:",
        "lightning training step 32x32 batch 32 deterministic=True metric checks on:",
        "cw 32x32 deterministic=True 50 images:",
        "cw 32x32 deterministic=False 250 images:",
    ):
        assert line in out, line


def test_standins_run_with_their_data_sets_eval_batch_size():
    # STL-10's 96x96 images classify and differentiate faster in batches of 100 (its config).
    assert protocol.data_settings("stl10") == ["data.eval_batch_size=50"]
    assert protocol.data_settings("cifar10") == []


def test_kernel_and_batch_benchmarks_run_at_toy_size(capsys):
    """`python -m benchmarks.kernels` and `benchmarks.eval_batch` must not rot, and the
    first convolution's contenders must differ only by float rounding."""
    from benchmarks import eval_batch, kernels

    threads = torch.get_num_threads()
    try:
        kernels.main(["--sides", "32", "--channels", "1", "--repeats", "1", "--steps", "1",
                      "--threads", "1"])  # fmt: skip
        eval_batch.main(["--sides", "96", "--repeats", "1", "--images", "50", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("32x32")] == [
        "32x32 first pool (250, 6, 28, 28)",
        "32x32 second pool (250, 16, 10, 10)",
        "32x32 LeNet classifying 250 images",
    ]
    conv = next(line for line in lines if line.startswith("1x32x32, 250 images: oneDNN "))
    assert float(conv.rsplit(" ", 1)[1]) < 1e-5
    assert [line.split(":")[0] for line in lines if line.startswith("96x96")] == [
        "96x96 classifying",
        "96x96 input gradients",
    ]
    assert "100: " in lines[-1] and "250: " in lines[-1]


def test_gpu_sharing_benchmark_runs_its_processes_at_toy_size(capsys):
    """`python -m benchmarks.gpu_sharing` (processes stepping LeNet at once) must not rot: each
    mode's row, with a positive step time, from one worker process each (``--jobs`` workers
    run the same code side by side); the CUDA graph is refused where there is no GPU."""
    from benchmarks import gpu_sharing

    modes = ["plain", "lightning"]
    assert gpu_sharing.main(["--jobs", "1", "--steps", "20", "--modes", ",".join(modes)]) == 0
    rows = [
        r
        for r in capsys.readouterr().out.splitlines()
        if r.split("|")[1:2] in ([f" {m} "] for m in modes)
    ]
    assert [r.split("|")[1:3] for r in rows] == [[f" {m} ", " 1 "] for m in modes]
    for row in rows:
        assert float(row.split("|")[3].split()[0]) > 0
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_sharing.main(["--modes", "plain,graph"])
        assert "graph captures a CUDA graph and needs a CUDA GPU" in capsys.readouterr().err
