"""Progress of a long stage (crafting an attack, the pass over the snapshots), where a
researcher waits: a bar on a terminal; wherever output goes to a file (jobs side by side, a
SLURM job, ``train.log``), a log line with how far the stage is and the time left, at least
every :data:`EVERY` seconds, and none for stages that end sooner."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: Seconds between two progress lines in a file.
EVERY = 30.0

T = TypeVar("T")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """A stage of ``total`` steps: :meth:`step` after each, :meth:`beat` as work goes on
    inside a step (each pass through the network while crafting), so that a single long step
    is not silent either."""

    def __init__(self, desc: str, total: int, unit: str, enabled: bool = True, stream=None) -> None:
        self.desc, self.total, self.unit = desc, int(total), unit
        self.enabled = enabled
        stream = stream or sys.stderr
        self.bar = (
            tqdm(total=total, desc=desc, unit=unit, file=stream)
            if enabled and stream.isatty()
            else None
        )
        self.started = self.last = time.monotonic()
        self.done = 0
        self.beats = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        else:
            self._line()

    def beat(self) -> None:
        """One pass through the network inside the current step."""
        self.beats += 1
        if self.bar is None:
            self._line()

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < EVERY):
            return
        self.last = now
        elapsed = now - self.started
        plural = self.unit + ("es" if self.unit.endswith(("s", "sh", "ch", "x")) else "s")
        line = f"{self.desc}: {self.done} of {self.total} {plural}"
        if self.beats:
            line += f", {self.beats:,} network passes"
        line += f", {_duration(elapsed)} so far"
        if 0 < self.done < self.total:
            line += f", about {_duration(elapsed / self.done * (self.total - self.done))} left"
        log.info(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and time.monotonic() - self.started >= EVERY / 3:
            self._line(force=True)  # a stage of more than about 10 s says it ended

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def steps(
    items: Iterable[T], desc: str, total: int, unit: str, enabled: bool = True
) -> Iterator[T]:
    """``items``, one :meth:`Progress.step` after each."""
    with Progress(desc, total, unit, enabled) as progress:
        for item in items:
            yield item
            progress.step()
