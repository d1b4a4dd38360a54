"""python -m advfit.summarize: each finished run's epochs, the best epoch marked."""

import json

import pandas as pd

from advfit.summarize import main


def test_each_finished_run_is_printed_with_its_best_epoch_marked(tmp_path, capsys):
    for name, best in (("a", 2), ("b", 3)):
        run = tmp_path / name
        run.mkdir()
        pd.DataFrame(
            {
                "epoch": [1, 2, 3],
                **{c: [1.0, 0.9, 0.8] for c in ("train_loss", "train_acc", "val_loss", "val_acc")},
                "test_acc": [0.5, 0.6, 0.7],
                "asr_cw": [0.4, 0.95, 0.5],
                # Scored at the last epoch only (metrics.every_k): "-" where not scored.
                "clever": [None, None, 0.25],
            }
        ).to_csv(run / "epochs.csv", index=False)
        (run / "summary.json").write_text(json.dumps({"best_epoch": best}))
        (run / "DONE").write_text("")
    unfinished = tmp_path / "c"
    unfinished.mkdir()
    (unfinished / "epochs.csv").write_text("epoch,test_acc\n1,0.5\n")

    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n== ")[1:]
    assert [b.split()[0] for b in blocks] == [str(tmp_path / "a"), str(tmp_path / "b")]
    first = blocks[0].splitlines()
    assert "best epoch 2, marked *" in first[0]
    rows = {line.split()[0]: line.split()[1:] for line in first[3:6]}
    assert list(rows) == ["1", "2*", "3"] and rows["2*"][-3:] == ["0.6", "0.95", "-"]
    assert rows["3"][-1] == "0.25" and "NaN" not in out
    assert [line.split()[0] for line in blocks[1].splitlines()[3:6]] == ["1", "2", "3*"]
    assert "2 finished run(s)" in out and "; 1 unfinished:\n  c: 1 epochs trained\n" in out


def test_unfinished_runs_of_a_sweep_say_where_they_stand(tmp_path, capsys):
    """The sweep's own list of runs (sweep.json) names the runs not started yet too."""
    from advfit.sweep import write_manifest

    epochs = "epoch,train_loss,train_acc,val_loss,val_acc,test_acc\n"
    for name, trained in (("a", 3), ("c", 2), ("d", 3)):
        run = tmp_path / name
        run.mkdir()
        rows = "".join(f"{e},1,0.5,1,0.5,0.5\n" for e in range(1, trained + 1))
        (run / "epochs.csv").write_text(epochs + rows)
        (run / ".hydra").mkdir()
        (run / ".hydra" / "config.yaml").write_text("trainer:\n  max_epochs: 3\n")
        (run / "summary.json").write_text(json.dumps({"best_epoch": 1}))
    (tmp_path / "a" / "DONE").write_text("")
    write_manifest(tmp_path, [tmp_path / n for n in ("a", "c", "d", "e")])

    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        "1 finished run(s) under " + str(tmp_path.resolve()) + "; 3 unfinished:\n"
        "  c: 2 of 3 epochs trained\n"
        "  d: 3 of 3 epochs trained, replay not finished\n"
        "  e: not started\n"
    )


def test_a_missing_sweep_is_an_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unfinished_runs_outside_the_sweeps_list_are_still_shown(tmp_path, capsys):
    """A run directory of an earlier launch that the newest sweep.json does not name."""
    from advfit.sweep import write_manifest

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "epochs.csv").write_text("epoch,test_acc\n1,0.5\n2,0.6\n")
    write_manifest(tmp_path, [tmp_path / "new"])
    assert main([str(tmp_path)]) == 1  # no finished run
    out = capsys.readouterr().out
    assert out.endswith("; 2 unfinished:\n  new: not started\n  old: 2 epochs trained\n")
