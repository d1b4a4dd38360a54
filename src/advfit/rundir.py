"""The run-directory contract (docs/method.md, "The run directory"): where each artifact of a run lives.

Every results file is written atomically (:mod:`advfit.files`), so a run killed at any moment
leaves either the old file or the new one, never a torn one; ``DONE`` is written last.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from advfit.errors import RunError
from advfit.files import atomic_write_text, sha256_file, sha256_json
from advfit.identity import config_differences
from advfit.locks import LockHeld, file_lock

CSV_FLOATS = "%.8g"
TRAIN_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
#: The adversarial regime's extra training columns: validation loss and accuracy on PGD
#: examples crafted on that epoch's network (its train_loss and train_acc are on them too).
ROBUST_TRAIN_COLUMNS = ["val_robust_loss", "val_robust_acc"]


#: The suffix of the conditional ASR's column: ``asr_<attack>_given_correct``, the ASR among
#: the sources the snapshot classifies correctly (docs/method.md), beside the paper's
#: ``asr_<attack>`` and the count ``n_correct_<attack>``.
GIVEN_CORRECT = "_given_correct"


def training_columns(columns) -> list[str]:
    """The training columns among ``columns`` (the adversarial regime's included), in order."""
    return [c for c in TRAIN_COLUMNS + ROBUST_TRAIN_COLUMNS if c in columns]


def training_cells(frame: pd.DataFrame) -> dict[int, dict[str, str]]:
    """Each epoch's training columns as ``epochs.csv`` writes them (:data:`CSV_FLOATS`): what
    training records of each row it writes, to be compared exactly with the file later."""
    columns = [c for c in training_columns(frame.columns) if c != "epoch"]
    return {
        int(row["epoch"]): {c: CSV_FLOATS % float(row[c]) for c in columns}
        for row in frame.to_dict("records")
    }


DISTANCE_COLUMNS = [
    "attack",
    "n",
    "n_fooled",
    "l0_mean",
    "l0_std",
    "l2_mean",
    "l2_std",
    "linf_mean",
    "linf_std",
    "l0_elements_mean",
    "l0_elements_std",
]
#: summary.json's name in its own digests: vouched for by its contents, not its bytes.
SUMMARY = "summary.json"


def summary_digest(summary: dict[str, Any]) -> str:
    """The sha256 of ``summary.json``'s contents but its ``digests`` (canonical JSON): its
    best epoch, identity, learning record and timings, as DONE vouches for them."""
    return sha256_json({k: v for k, v in summary.items() if k != "digests"})


def short(digest: object) -> str:
    """A digest, or a dict of them, shortened for a message."""
    if isinstance(digest, dict):
        return "{" + ", ".join(f"{k}: {short(v)}" for k, v in sorted(digest.items())) + "}"
    return f"{str(digest)[:12]}..." if digest else "none"


class RunDir:
    """Paths and small readers/writers of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- paths --------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        """The resolved config the run started with: the one copy everything reads (Hydra's
        own files of each launch go to ``.hydra/launch/``)."""
        return self.root / ".hydra" / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def adversarial(self) -> Path:
        return self.root / "adversarial"

    @property
    def epochs_csv(self) -> Path:
        return self.root / "epochs.csv"

    @property
    def distances_csv(self) -> Path:
        return self.root / "distances.csv"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    @property
    def inputs_json(self) -> Path:
        """What the run trains on, recorded before its first epoch (:meth:`check_inputs`)."""
        return self.root / "inputs.json"

    @property
    def done(self) -> Path:
        return self.root / "DONE"

    def snapshot(self, epoch: int) -> Path:
        """Weights of the network after 1-based ``epoch``."""
        return self.checkpoints / f"epoch_{epoch:03d}.pt"

    def snapshots(self) -> dict[int, Path]:
        """Every snapshot on disk, by 1-based epoch, in epoch order."""
        found = {}
        for path in self.checkpoints.glob("epoch_*.pt"):
            try:
                found[int(path.stem.split("_")[1])] = path
            except ValueError:
                continue
        return dict(sorted(found.items()))

    def attack_set(self, attack: str) -> Path:
        return self.adversarial / f"{attack}.pt"

    def per_image_csv(self, metric: str) -> Path:
        """Per-image scores of a metric that keeps them (``clever.csv``)."""
        return self.root / f"{metric}.csv"

    # -- state --------------------------------------------------------------------------
    def is_done(self) -> bool:
        return self.done.is_file()

    def mark_done(self, vouch: bool = True) -> None:
        """Write ``DONE``, last; with ``vouch``, first record in ``summary.json`` the sha256 of
        every file it vouches for (:meth:`vouched_files`) and of ``summary.json``'s own contents
        (:func:`summary_digest`), which :meth:`check_digests` compares before the run is
        trusted again. ``vouch=False`` puts back a ``DONE`` that was there."""
        if vouch:
            summary = self.read_summary()
            digests = {
                str(path.relative_to(self.root)): sha256_file(path) for path in self.vouched_files()
            }
            digests[SUMMARY] = summary_digest(summary)
            summary["digests"] = digests
            atomic_write_text(
                self.summary_json, json.dumps(summary, indent=2, sort_keys=True) + "\n"
            )
        atomic_write_text(self.done, "")

    def vouched_files(self) -> list[Path]:
        """What ``DONE`` vouches for: the saved config, the record of the run's inputs, the
        results (``epochs.csv``, ``distances.csv``, per-image scores), every snapshot and every
        adversarial set; ``summary.json`` by its contents (:func:`summary_digest`)."""
        files = [self.config, self.inputs_json, *sorted(self.root.glob("*.csv"))]
        files += list(self.snapshots().values()) + sorted(self.adversarial.glob("*.pt"))
        return [f for f in files if f.is_file()]

    def check_digests(self, results_only: bool = False) -> None:
        """Compare the files ``DONE`` vouches for, and ``summary.json``'s contents, with the
        sha256 recorded when it was written; a RunError naming the first file that is missing
        or changed. A run without digests passes only when it predates them (its summary.json
        has no ``learned`` record, which came the same day). ``results_only``: the config,
        JSON and CSV files alone."""
        if not self.epochs_csv.is_file():
            raise RunError(
                f"{self.root} holds DONE but no epochs.csv: it is not a finished run. Delete "
                "the run directory and train it again."
            )
        summary = self.read_summary()
        recorded = summary.get("digests")
        if not isinstance(recorded, dict):
            if "learned" not in summary:
                return  # a run of a version that recorded no digests
            raise RunError(
                f"{self.root} holds DONE but {self.summary_json.name} records no digests of "
                "its files, so nothing vouches for its results: restore summary.json from a "
                "copy, or delete the run directory and train it again"
            )
        for name, digest in sorted(recorded.items()):
            path = self.root / name
            if results_only and path.suffix not in (".csv", ".yaml", ".json"):
                continue
            if not path.resolve().is_relative_to(self.root.resolve()):
                raise RunError(f"{self.summary_json} lists {name!r}, outside the run directory")
            if not path.is_file():
                if path.parent == self.adversarial:
                    continue  # a crafted set is a cache: one removed is crafted again
                raise RunError(f"{path} is missing: DONE vouched for it when the run finished")
            now = summary_digest(summary) if name == SUMMARY else sha256_file(path)
            if now != digest:
                raise RunError(
                    f"{path} changed after the run finished (sha256 {digest[:12]}... when DONE "
                    f"was written, {now[:12]}... now): restore it from a copy, or delete the "
                    "run directory and train it again"
                )

    def unmark_done(self) -> None:
        self.done.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``<run>/.lock`` while this launch works on the run; a second launch of the
        same run stops at once instead of writing the same files."""
        path = self.root / ".lock"
        try:
            with file_lock(path):
                yield
        except LockHeld as held:
            raise RunError(
                f"{self.root} is being run by {held.holder}: {held.path} is locked. Wait for "
                "that launch to end (the lock goes with its process)."
            ) from None

    def read_epochs(self) -> pd.DataFrame:
        """``epochs.csv``; an error naming it when it is not a table of epochs."""
        if not self.epochs_csv.is_file():
            return pd.DataFrame(columns=TRAIN_COLUMNS)
        try:
            frame = pd.read_csv(self.epochs_csv)
            missing = [c for c in TRAIN_COLUMNS if c not in frame.columns]
            if missing:
                raise ValueError(f"it lacks the columns {', '.join(missing)}")
            epochs = frame["epoch"]
            if len(frame) and (
                not pd.api.types.is_integer_dtype(epochs) or epochs.tolist() != sorted(set(epochs))
            ):
                raise ValueError("its epoch column is not increasing whole numbers")
        except Exception as err:
            raise RunError(f"{self.epochs_csv} is malformed: {err}") from err
        return frame

    def write_epochs(self, frame: pd.DataFrame) -> None:
        frame = frame.sort_values("epoch").reset_index(drop=True)
        atomic_write_text(self.epochs_csv, frame.to_csv(index=False, float_format=CSV_FLOATS))

    def write_distances(self, frame: pd.DataFrame) -> None:
        atomic_write_text(self.distances_csv, frame.to_csv(index=False, float_format=CSV_FLOATS))

    def write_per_image(self, metric: str, frame: pd.DataFrame) -> None:
        atomic_write_text(
            self.per_image_csv(metric), frame.to_csv(index=False, float_format=CSV_FLOATS)
        )

    def write_config(self, resolved: dict[str, Any]) -> None:
        atomic_write_text(self.config, OmegaConf.to_yaml(OmegaConf.create(resolved)))

    def read_config(self) -> dict[str, Any]:
        """The run's resolved config as plain containers."""
        return OmegaConf.to_container(OmegaConf.load(self.config), resolve=False)

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` ({} before the run wrote one); a RunError naming it when it is not
        a JSON object."""
        if not self.summary_json.is_file():
            return {}
        try:
            summary = json.loads(self.summary_json.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise RunError(f"{self.summary_json} is not readable JSON: {err}") from err
        if not isinstance(summary, dict):
            raise RunError(f"{self.summary_json} is not a JSON object")
        return summary

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``summary.json`` (nested dicts are merged one level deep)."""
        summary = self.read_summary()
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(summary.get(key), dict):
                summary[key] = {**summary[key], **value}
            else:
                summary[key] = value
        atomic_write_text(self.summary_json, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary

    def record_inputs(self, record: dict[str, Any]) -> None:
        """Write ``inputs.json`` (what :meth:`check_inputs` compares), once, before the run's
        first epoch trains; whole or not at all, so a SIGKILL never leaves half of it."""
        atomic_write_text(self.inputs_json, json.dumps(record, indent=2, sort_keys=True) + "\n")

    def check_inputs(self, record: dict[str, Any], what: str) -> bool:
        """Compare ``record`` (``data_sha256``: the data files' digests; ``config_sha256``: the
        result-relevant config's, :func:`advfit.identity.config_digest`) with ``inputs.json``,
        which the run's first launch wrote before its first epoch. False when there is none
        (a run of an earlier version); a RunError naming both digests when they differ:
        ``what`` (resuming, replaying) would mix data or configs. Nothing is changed."""
        if not self.inputs_json.is_file():
            return False
        try:
            recorded = json.loads(self.inputs_json.read_text())
            assert isinstance(recorded, dict)
        except (ValueError, UnicodeDecodeError, AssertionError) as err:
            raise RunError(f"{self.inputs_json} is not a JSON object: {err}") from None
        for key, names in (("data_sha256", "data"), ("config_sha256", "config")):
            then, now = recorded.get(key), record.get(key)
            if then is None or then == now:
                continue
            changed = ""
            if isinstance(then, dict):
                now = now if isinstance(now, dict) else {}
                files = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
                then, now = {k: then.get(k) for k in files}, {k: now.get(k) for k in files}
                changed = f" ({', '.join(files)} changed)"
            raise RunError(
                f"{self.root.name} was trained on other {names} than it would read now"
                f"{changed}: sha256 {short(then)} in {self.inputs_json.name}, written before "
                f"its first epoch; {short(now)} now. {what} would mix the two: restore the "
                f"{names} it was trained on, or train afresh under another task_name. Nothing "
                "was changed"
            )
        return True

    def best_epoch(self) -> int:
        """The 1-based epoch with the best validation accuracy (the first one on ties): the
        robust one in the adversarial regime, its criterion for early stopping."""
        epochs = self.read_epochs()
        if epochs.empty:
            raise FileNotFoundError(f"{self.epochs_csv} holds no epochs")
        column = "val_robust_acc" if "val_robust_acc" in epochs else "val_acc"
        return int(epochs.loc[epochs[column].idxmax(), "epoch"])


def check_run_dir_matches(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Stop when ``run_dir`` holds a run of another config, rather than mixing results."""
    run = RunDir(run_dir)
    if not run.config.is_file():
        return
    differences = config_differences(run.read_config(), resolved)
    if differences:
        raise RunError(
            f"{run_dir} holds a run of a different config; differing keys: "
            + "; ".join(differences)
            + ". Use another task_name (a new sweep directory) or remove the old run."
        )
