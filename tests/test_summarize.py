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
    assert list(rows) == ["1", "2*", "3"] and rows["2*"][-2:] == ["0.6", "0.95"]
    assert [line.split()[0] for line in blocks[1].splitlines()[3:6]] == ["1", "2", "3*"]
    assert "2 finished run(s)" in out and "; 1 unfinished" in out


def test_a_missing_sweep_is_an_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
