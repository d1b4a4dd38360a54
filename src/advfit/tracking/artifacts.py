"""A run's files on W&B as artifacts, with their lineage: snapshots, then adversarial sets,
then a replay, then the report.

- The training run logs, once its run directory is sealed (``DONE``), three kinds:
  ``<run>-snapshots`` (type ``snapshots``: the best epoch's snapshot as a file, the other
  epochs' as ``file://`` references, so 35 files are not uploaded), ``<run>-<attack>``
  (type ``adversarial-set``: one per attack, crafted on the best snapshot, which its metadata
  names) and ``<run>-replay`` (type ``replay``: ``epochs.csv``, ``distances.csv``, per-image
  scores and ``summary.json``).
- ``evaluate.py``'s run uses the snapshots and the sets it replays, and logs a new version of
  the replay.
- The report's run uses the replay of every run it reads, and logs the report.

Every artifact's metadata carries the sha256 of each of its files, as ``summary.json``'s
digests record them: a number on W&B can be followed back to the bytes on disk.

W&B's ``use_artifact`` refuses to run offline (wandb 0.31), and offline is advfit's
default. An artifact built again from the same files has the same digest, so it *is* the
version the producing run logged. Offline, :func:`use` records it in the consuming run as
"used once committed": the record W&B's own ``use_artifact`` writes for a new artifact
object, and what ``wandb sync`` then uploads as a use. That goes through W&B's
``Run._log_artifact``. pyproject.toml bounds wandb below 1.0, and
``tests/test_wandb.py::test_the_wandb_behaviour_the_lineage_relies_on`` fails when it moves.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from advfit.errors import first_line
from advfit.files import sha256_file
from advfit.rundir import SUMMARY, RunDir

SNAPSHOTS, ADVERSARIAL_SET, REPLAY = "snapshots", "adversarial-set", "replay"

log = logging.getLogger(__name__)


#: W&B's longest artifact name.
MAX_NAME = 128


def artifact_name(run: RunDir, task: str | None, what: str) -> str:
    """``<task>-<run directory>-<what>`` in the characters W&B allows in a name; a name over
    W&B's 128 characters (a run named after many overrides) keeps its start and ``what``,
    with 8 hex digits of the whole name's sha256 between them, so it stays unique."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(p for p in (task, run.root.name) if p))
    name = f"{stem}-{what}"
    if len(name) <= MAX_NAME:
        return name
    tag = hashlib.sha256(stem.encode()).hexdigest()[:8]
    return f"{stem[: MAX_NAME - len(what) - len(tag) - 2]}-{tag}-{what}"


def _digests(run: RunDir, paths: list[Path], recorded: dict[str, str]) -> dict[str, str]:
    """The sha256 of each file, as summary.json's digests ``recorded`` it where they do (DONE
    checked them), else read now; summary.json's own bytes always (DONE records its
    contents' digest, not its bytes')."""
    out = {}
    for path in paths:
        key = str(path.relative_to(run.root))
        out[key] = (recorded.get(key) if key != SUMMARY else None) or sha256_file(path)
    return out


def _recorded(run: RunDir) -> dict[str, str]:
    return run.read_summary().get("digests") or {}


def snapshots_artifact(run: RunDir, task: str | None, best: int, recorded: dict[str, str]):
    """Every snapshot: the best epoch's as a file, the others as references."""
    import wandb

    snapshots = run.snapshots()
    digests = _digests(run, list(snapshots.values()), recorded)
    artifact = wandb.Artifact(
        artifact_name(run, task, SNAPSHOTS),
        type=SNAPSHOTS,
        description=f"{run.root.name}: the network after every epoch; epoch {best} is the best",
        metadata={
            "run": run.root.name,
            "best_epoch": best,
            "epochs": len(snapshots),
            "sha256": digests,
        },
    )
    for epoch, path in snapshots.items():
        name = str(path.relative_to(run.root))
        if epoch == best:
            artifact.add_file(str(path), name=name)
        else:
            artifact.add_reference(path.resolve().as_uri(), name=name)
    return artifact


def adversarial_artifacts(
    run: RunDir, task: str | None, best: int, recorded: dict[str, str]
) -> list:
    """One artifact per adversarial set, naming the snapshot it was crafted on."""
    import wandb

    crafted_on = run.snapshot(best)
    snapshot = _digests(run, [crafted_on], recorded) if crafted_on.is_file() else {}
    out = []
    for path in sorted(run.adversarial.glob("*.pt")):
        artifact = wandb.Artifact(
            artifact_name(run, task, path.stem),
            type=ADVERSARIAL_SET,
            description=f"{run.root.name}: {path.stem} examples crafted on epoch {best}'s snapshot",
            metadata={
                "run": run.root.name,
                "attack": path.stem,
                "crafted_on": {
                    "artifact": artifact_name(run, task, SNAPSHOTS),
                    "epoch": best,
                    "sha256": next(iter(snapshot.values()), None),
                },
                "sha256": _digests(run, [path], recorded),
            },
        )
        artifact.add_file(str(path), name=str(path.relative_to(run.root)))
        out.append(artifact)
    return out


def replay_artifact(run: RunDir, task: str | None):
    """The replay's results: epochs.csv, distances.csv, per-image scores, summary.json."""
    import wandb

    files = sorted(run.root.glob("*.csv")) + [run.summary_json]
    summary = run.read_summary()
    recorded = summary.get("digests") or {}
    artifact = wandb.Artifact(
        artifact_name(run, task, REPLAY),
        type=REPLAY,
        description=f"{run.root.name}: every snapshot's numbers on the best epoch's adversarials",
        metadata={
            "run": run.root.name,
            "best_epoch": summary.get("best_epoch"),
            "learned": (summary.get("learned") or {}).get("learned"),
            "sha256": _digests(run, files, recorded),
        },
    )
    for path in files:
        artifact.add_file(str(path), name=path.name)
    return artifact


def _task(run: RunDir) -> str | None:
    return run.read_config().get("task_name") if run.config.is_file() else None


@contextlib.contextmanager
def _or_warning(run: RunDir) -> Iterator[None]:
    """Artifacts go on W&B after the run directory is sealed: a failure to log them is a
    warning that says the run is complete, not a failed job."""
    try:
        yield
    except Exception as err:
        log.warning(
            "%s: its W&B artifacts were not logged (%s); the run directory is complete",
            run.root,
            first_line(err),
        )


def log_training_run(wandb_run, run: RunDir) -> None:
    """The training run's outputs, once its directory is sealed: snapshots, sets, replay."""
    if wandb_run is None:
        return
    with _or_warning(run):
        task, best, recorded = _task(run), run.best_epoch(), _recorded(run)
        for artifact in [
            snapshots_artifact(run, task, best, recorded),
            *adversarial_artifacts(run, task, best, recorded),
            replay_artifact(run, task),
        ]:
            wandb_run.log_artifact(artifact)


def log_evaluate_artifacts(wandb_run, run: RunDir) -> None:
    """``evaluate.py``'s inputs, the snapshots it replayed on and the sets it replayed, and
    its output, a new version of the replay."""
    if wandb_run is None:
        return
    with _or_warning(run):
        task, best, recorded = _task(run), run.best_epoch(), _recorded(run)
        use(wandb_run, snapshots_artifact(run, task, best, recorded))
        for artifact in adversarial_artifacts(run, task, best, recorded):
            use(wandb_run, artifact)
        wandb_run.log_artifact(replay_artifact(run, task))


def use_replays(wandb_run, roots: list[Path]) -> None:
    """The report's inputs: the replay of every run it reads."""
    for root in roots:
        run = RunDir(root)
        use(wandb_run, replay_artifact(run, _task(run)))


def use(wandb_run, artifact) -> None:
    """Declare ``artifact`` (built from the files read) an input of ``wandb_run``: W&B's
    ``use_artifact`` online; offline, the same record it writes for a new artifact object,
    which ``wandb sync`` uploads as a use (this module's docstring)."""
    if wandb_run.settings.mode == "offline" or getattr(wandb_run.settings, "_offline", False):
        wandb_run._log_artifact(artifact, is_user_created=True, use_after_commit=True)
    else:
        wandb_run.use_artifact(artifact)
