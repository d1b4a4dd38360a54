"""Stratified k-fold split of a training set, deterministic from the seed."""

from __future__ import annotations

import numpy as np


def check_folds(n_folds: int, fold: int) -> None:
    """The one check of ``n_folds`` and ``fold`` (the config checks call it too)."""
    if n_folds < 2:
        raise ValueError(f"n_folds={n_folds} is invalid: cross-validation needs n_folds >= 2")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold={fold} is invalid: accepted values are 0..{n_folds - 1}")


def fold_indices(
    labels: np.ndarray, n_folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_idx, val_idx)`` for ``fold`` of a stratified ``n_folds`` split.

    Fold ``k`` is the validation part; the other ``n_folds - 1`` folds train. The split is
    shuffled with ``seed``, so the same seed gives the same folds on every machine.
    """
    check_folds(n_folds, fold)
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    smallest = counts[counts > 0].min()
    if smallest < n_folds:
        raise ValueError(
            f"n_folds={n_folds} is too many for this training set: its rarest class has "
            f"only {smallest} images (each fold needs at least one of every class)"
        )
    # scikit-learn is imported where it splits: a sweep's launching process checks every
    # job's folds (check_folds) and would otherwise spend ~2 s importing it.
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train_idx, val_idx = list(splitter.split(np.zeros(len(labels)), labels))[fold]
    return np.sort(train_idx), np.sort(val_idx)


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a class-balanced subset of ``size`` images (sorted), deterministic from seed."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(
        np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed
    )
    return np.sort(idx)
