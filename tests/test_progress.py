"""Progress where a researcher waits: a bar on a terminal; in a file, a line at least every
30 s with how far the stage is and the time left, and none for stages that end in seconds."""

from __future__ import annotations

import io
import logging

import torch

from advfit import progress as progress_module
from advfit.attacks import Attack
from advfit.models import LeNet
from advfit.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_stage_in_a_file_says_how_far_it_is_every_30_s(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    stream = io.StringIO()  # a file, not a terminal: no bar
    with caplog.at_level(logging.INFO, logger="advfit.progress"):
        with Progress("replaying snapshots", 35, "snapshot", stream=stream) as p:
            for _ in range(35):
                clock.now += 4.0  # 4 s a snapshot: 140 s in all
                p.step()
    lines = [r.getMessage() for r in caplog.records]
    assert stream.getvalue() == ""
    assert lines[0] == "replaying snapshots: 8 of 35 snapshots, 0m32s so far, about 1m48s left"
    assert len(lines) == 5 and lines[-1].startswith("replaying snapshots: 35 of 35 snapshots")
    assert all("left" in line for line in lines[:-1])


def test_one_long_step_is_not_silent_and_a_short_stage_says_nothing(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    with caplog.at_level(logging.INFO, logger="advfit.progress"):
        with Progress("crafting cw", 1, "batch", stream=io.StringIO()) as p:
            for _ in range(100):
                clock.now += 0.5  # 100 passes of 0.5 s inside one batch
                p.beat()
            p.step()
        assert caplog.records[0].getMessage() == (
            "crafting cw: 0 of 1 batches, 60 network passes, 0m30s so far"
        )
        caplog.clear()
        with Progress("crafting fgsm", 1, "batch", stream=io.StringIO()) as p:
            clock.now += 2.0
            p.step()
    assert caplog.records == []


def test_a_bar_only_on_a_terminal_and_crafting_counts_network_passes(monkeypatch, caplog):
    terminal = Terminal()
    with caplog.at_level(logging.INFO, logger="advfit.progress"):
        with Progress("replaying snapshots", 3, "snapshot", stream=terminal) as p:
            for _ in range(3):
                p.step()
    assert "replaying snapshots" in terminal.getvalue() and caplog.records == []

    beats = []
    monkeypatch.setattr(Progress, "beat", lambda self: beats.append(1))
    net = LeNet((1, 28, 28), 10).eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        y = net(x).argmax(1)
    attack = Attack("pgd", "advertorch.attacks.LinfPGDAttack", batch_size=8, eps=0.1, nb_iter=5)
    attack(net, x, y, progress=True)
    assert len(beats) >= 5  # one per pass of PGD's iterations
