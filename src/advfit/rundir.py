"""The run-directory contract (docs/method.md, "The run directory"): where each artifact of a run lives.

Every results file is written atomically (a temporary file in the same directory, then a
rename), so a run killed at any moment leaves either the old file or the new one, never a
torn one; ``DONE`` is written last.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from advfit.errors import RunError
from advfit.locks import LockHeld, file_lock

TRAIN_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
#: The adversarial regime's extra training columns: validation loss and accuracy on PGD
#: examples crafted on that epoch's network (its train_loss and train_acc are on them too).
ROBUST_TRAIN_COLUMNS = ["val_robust_loss", "val_robust_acc"]


def training_columns(columns) -> list[str]:
    """The training columns among ``columns`` (the adversarial regime's included), in order."""
    return [c for c in TRAIN_COLUMNS + ROBUST_TRAIN_COLUMNS if c in columns]


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
CSV_FLOATS = "%.8g"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, hex (hashlib.file_digest is Python 3.11+)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[io.IOBase], None], binary: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; results are shared like any file the user writes.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch  # here, so reading a run directory does not load torch

    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


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
        every file it vouches for (:meth:`vouched_files`), which :meth:`check_digests` compares
        before the run is trusted again. ``vouch=False`` puts back a ``DONE`` that was there."""
        if vouch:
            summary = self.read_summary()
            summary["digests"] = {
                str(path.relative_to(self.root)): sha256_file(path) for path in self.vouched_files()
            }
            atomic_write_text(
                self.summary_json, json.dumps(summary, indent=2, sort_keys=True) + "\n"
            )
        atomic_write_text(self.done, "")

    def vouched_files(self) -> list[Path]:
        """What ``DONE`` vouches for: the saved config, the results (``epochs.csv``,
        ``distances.csv``, per-image scores), every snapshot and every adversarial set."""
        files = [self.config, *sorted(self.root.glob("*.csv"))]
        files += list(self.snapshots().values()) + sorted(self.adversarial.glob("*.pt"))
        return [f for f in files if f.is_file()]

    def check_digests(self, results_only: bool = False) -> None:
        """Compare the files ``DONE`` vouches for with the sha256 recorded when it was written
        (runs of versions that did not record them pass); a RunError naming the first file
        that is missing or changed. ``results_only``: the config and CSV files alone."""
        if not self.epochs_csv.is_file():
            raise RunError(
                f"{self.root} holds DONE but no epochs.csv: it is not a finished run. Delete "
                "the run directory and train it again."
            )
        recorded = self.read_summary().get("digests")
        if not isinstance(recorded, dict):
            return
        for name, digest in sorted(recorded.items()):
            path = self.root / name
            if results_only and path.suffix not in (".csv", ".yaml"):
                continue
            if not path.resolve().is_relative_to(self.root.resolve()):
                raise RunError(f"{self.summary_json} lists {name!r}, outside the run directory")
            if not path.is_file():
                if path.parent == self.adversarial:
                    continue  # a crafted set is a cache: one removed is crafted again
                raise RunError(f"{path} is missing: DONE vouched for it when the run finished")
            now = sha256_file(path)
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

    def best_epoch(self) -> int:
        """The 1-based epoch with the best validation accuracy (the first one on ties): the
        robust one in the adversarial regime, its criterion for early stopping."""
        epochs = self.read_epochs()
        if epochs.empty:
            raise FileNotFoundError(f"{self.epochs_csv} holds no epochs")
        column = "val_robust_acc" if "val_robust_acc" in epochs else "val_acc"
        return int(epochs.loc[epochs[column].idxmax(), "epoch"])


def open_run_to_evaluate(cfg: DictConfig) -> tuple[RunDir, DictConfig]:
    """The run directory ``evaluate.py`` was given (``cfg.run_dir``) and its saved config,
    checked before anything is built: it is a run directory, its config reads, and every
    target it names is advfit's own or in ``cfg.trust``. Needs no Lightning, so that
    evaluate.py refuses a bad directory at once."""
    from advfit.trust import check_targets

    if OmegaConf.is_missing(cfg, "run_dir") or not str(cfg.run_dir).strip():
        raise RunError(
            "evaluate.py needs run_dir=<a run directory>, e.g. python evaluate.py "
            "run_dir=multirun/demo/fashion_mnist-normal-fold0-seed0"
        )
    run = RunDir(cfg.run_dir)
    if not run.config.is_file():
        raise RunError(f"run_dir={cfg.run_dir} is not a run directory: {run.config} is missing")
    try:
        saved = run.read_config()
        run_cfg = OmegaConf.create(saved)
    except Exception as err:
        raise RunError(f"{run.config} is not a readable config: {err}") from err
    # Nothing the run directory names is built before it is known to be advfit's own.
    check_targets(saved, str(run.config), cfg.get("trust") or ())
    return run, run_cfg
