"""Collect run directories (the run-directory contract only) and aggregate them across folds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from advfit.errors import RunError
from advfit.identity import PER_FOLD, flat_config, is_result_neutral
from advfit.learning import LearningRule, judge_after_the_fact, judge_recorded
from advfit.rundir import TRAIN_COLUMNS, RunDir


class ReportError(ValueError):
    """The sweep cannot be reported; the message names the file or the keys."""


@dataclass
class Run:
    root: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    epochs: pd.DataFrame
    distances: pd.DataFrame
    #: Why the run did not learn (advfit.learning), under the report's rule; None: it learned.
    not_learned: str | None = None
    #: Judged for learning by the report, from its epochs (a run of an earlier version).
    judged_after: bool = False

    @property
    def fold(self) -> int:
        return int(self.summary["fold"])


@dataclass
class Sweep:
    runs: list[Run]
    unfinished: list[Path] = field(default_factory=list)
    group_keys: list[str] = field(default_factory=list)
    #: (kept, left out): runs found twice (a copied sweep), counted once.
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)

    def groups(self) -> dict[tuple, list[Run]]:
        out: dict[tuple, list[Run]] = {}
        for run in self.runs:
            out.setdefault(group_of(run, self.group_keys), []).append(run)
        return dict(sorted(out.items(), key=lambda kv: tuple(map(str, kv[0]))))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except Exception as err:
        raise ReportError(f"{path} is corrupt: {err}") from err


def _read_epochs(run: RunDir, best_epoch: Any) -> pd.DataFrame:
    """A finished run's epochs.csv, refused with a one-line error when it is incomplete."""
    try:
        frame = run.read_epochs()
    except RunError as err:
        raise ReportError(str(err)) from err
    if frame.empty:
        raise ReportError(f"{run.epochs_csv} is corrupt: it has no epoch rows")
    if frame[TRAIN_COLUMNS].isna().any().any() or frame["epoch"].tolist() != list(
        range(1, len(frame) + 1)
    ):
        raise ReportError(
            f"{run.epochs_csv} is corrupt: its rows are not epochs 1..{len(frame)} with every "
            "training column filled (a cut or edited file?)"
        )
    if best_epoch not in frame["epoch"].tolist():
        raise ReportError(f"{run.epochs_csv} lacks the best epoch ({best_epoch}) of summary.json")
    return frame


def _as_replayed(config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The config with the attacks and sources its last replay really used (``evaluate.py``
    may have replayed other attacks than the run was trained with), so that runs whose
    replays differ are never pooled."""
    replay = summary.get("replay")
    if not replay or "attacks" not in replay:
        return config
    config = dict(config)
    config["attack"] = replay["attacks"]
    config["replay"] = {**config.get("replay", {}), "n_images": replay.get("n_requested")}
    return config


def read_run(root: Path) -> Run:
    run = RunDir(root)
    try:  # DONE vouches for the results only as they were when it was written
        run.check_digests(results_only=True)
    except RunError as err:
        raise ReportError(str(err)) from err
    try:
        summary = json.loads(run.summary_json.read_text())
    except Exception as err:
        raise ReportError(f"{run.summary_json} is unreadable: {err}") from err
    try:
        config = run.read_config() if run.config.is_file() else {}
    except Exception as err:
        raise ReportError(f"{run.config} is unreadable: {err}") from err
    distances = _read_csv(run.distances_csv) if run.distances_csv.is_file() else pd.DataFrame()
    epochs = _read_epochs(run, summary.get("best_epoch"))
    return Run(root, summary, _as_replayed(config, summary), epochs, distances)


def judge_learning(runs: list[Run], rule: LearningRule) -> None:
    """Set each run's ``not_learned`` under ``rule``: from the counts its summary.json
    recorded, or, in a run of an earlier version that recorded none, judged after the fact
    from its epochs.csv and saved config (``judged_after``)."""
    for run in runs:
        try:
            if isinstance(run.summary.get("learned"), dict):
                run.not_learned = judge_recorded(run.summary, run.epochs, rule)
            else:
                run.not_learned = judge_after_the_fact(run.config, run.epochs, rule)
                run.judged_after = True
        except ValueError as err:
            raise ReportError(f"{run.root / 'summary.json'}: {err}") from err


def collect(paths: list[Path]) -> Sweep:
    """Every run directory with DONE under ``paths``; those without DONE are counted."""
    runs, unfinished, seen = [], [], set()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ReportError(f"{path} does not exist")
        for epochs in sorted(path.rglob("epochs.csv")):
            root = epochs.parent.resolve()
            if root in seen:  # the same run reached through two of the paths given
                continue
            seen.add(root)
            if (root / "DONE").is_file():
                runs.append(read_run(epochs.parent))
            else:
                unfinished.append(epochs.parent)
    if not runs:
        raise ReportError(
            f"no finished run directories (with DONE) under {', '.join(map(str, paths))}"
            + (f"; {len(unfinished)} unfinished" if unfinished else "")
        )
    runs, duplicates = once_each(runs)
    return Sweep(runs, unfinished, swept_keys(runs), duplicates)


def identity(run: Run) -> str:
    """What makes a run the run it is, wherever its directory lies: its config but for the
    keys that do not change results (paths, loggers, threads ...), with its fold and seed."""
    flat = {k: v for k, v in flat_config(run.config).items() if not is_result_neutral(k)}
    flat["fold"], flat["seed"] = run.summary.get("fold"), run.summary.get("seed")
    flat["dataset"], flat["regime"] = run.summary.get("dataset"), run.summary.get("regime")
    return json.dumps(flat, sort_keys=True, default=str)


def once_each(runs: list[Run]) -> tuple[list[Run], list[tuple[Path, Path]]]:
    """Each run once: a run reached under two directories (a copy of a sweep passed beside
    the sweep) is counted at its first, and the pair is returned for a warning."""
    first: dict[str, Run] = {}
    kept, duplicates = [], []
    for run in runs:
        key = identity(run)
        if key in first:
            duplicates.append((first[key].root, run.root))
            continue
        first[key] = run
        kept.append(run)
    return kept, duplicates


def swept_keys(runs: list[Run]) -> list[str]:
    """Config keys that differ between runs, other than the fold: they split the groups."""
    flat = [flat_config(run.config) for run in runs]
    keys = sorted({k for f in flat for k in f})
    varying = []
    for key in keys:
        if is_result_neutral(key) or key in (*PER_FOLD, "data.name", "regime.name"):
            continue
        values = {repr(f.get(key)) for f in flat}
        if len(values) > 1:
            varying.append(key)
    # A sub-key of a varying group (regime.lr when regime changes) follows the group.
    return [k for k in varying if not _follows_identity(k, runs)]


def _follows_identity(key: str, runs: list[Run]) -> bool:
    """True when ``key`` is fixed within each (dataset, regime): it adds no split."""
    seen: dict[tuple, set] = {}
    for run in runs:
        ident = (run.summary.get("dataset"), run.summary.get("regime"))
        seen.setdefault(ident, set()).add(repr(flat_config(run.config).get(key)))
    return all(len(v) == 1 for v in seen.values())


def group_of(run: Run, keys: list[str]) -> tuple:
    """The group a run is pooled in; a list-valued key (``attack: [fgsm, pgd]``) as a tuple."""
    flat = flat_config(run.config)

    def hashable(value: Any) -> Any:
        return tuple(hashable(v) for v in value) if isinstance(value, list) else value

    return (run.summary["dataset"], run.summary["regime"], *(hashable(flat.get(k)) for k in keys))


def aggregate(runs: list[Run]) -> pd.DataFrame:
    """Per epoch, the mean and std (ddof 1; NaN for one fold) of every epochs.csv column."""
    frames = [run.epochs.assign(fold=run.fold) for run in runs]
    stacked = pd.concat(frames, ignore_index=True)
    numeric = [c for c in stacked.columns if c not in ("epoch", "fold")]
    grouped = stacked.groupby("epoch")[numeric]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.concat({"mean": mean, "std": std}, axis=1)
    out["n_folds"] = stacked.groupby("epoch")["fold"].nunique()
    return out


def pooled_distances(runs: list[Run]) -> pd.DataFrame:
    """Distances per attack over all fooling examples of all folds (exact pooled mean/std)."""
    rows = []
    frames = [run.distances for run in runs if not run.distances.empty]
    if not frames:
        return pd.DataFrame()
    stacked = pd.concat(frames, ignore_index=True)
    for attack, part in stacked.groupby("attack", sort=False):
        n = part["n_fooled"].to_numpy(float)
        row = {
            "attack": attack,
            "n": int(part["n"].sum()),
            "n_fooled": int(n.sum()),
            "folds": len(part),
        }
        for metric in ("l0", "l2", "linf"):
            m, s = part[f"{metric}_mean"].to_numpy(float), part[f"{metric}_std"].to_numpy(float)
            keep = n > 0
            if not keep.any():
                row[f"{metric}_mean"] = row[f"{metric}_std"] = float("nan")
                continue
            total = n[keep].sum()
            mean = (n[keep] * m[keep]).sum() / total
            var = (n[keep] * (s[keep] ** 2 + m[keep] ** 2)).sum() / total - mean**2
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, float(np.sqrt(max(var, 0.0)))
        rows.append(row)
    return pd.DataFrame(rows)
