import subprocess
import sys

import numpy as np
import pytest

from advfit.data import fold_indices, stratified_subset


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    # Unbalanced classes, so stratification is visible.
    return rng.choice(4, size=1000, p=[0.4, 0.3, 0.2, 0.1])


def test_folds_are_disjoint_and_cover_the_training_set(labels):
    vals = []
    for fold in range(5):
        train, val = fold_indices(labels, 5, fold, seed=3)
        assert not set(train) & set(val)
        assert len(train) + len(val) == len(labels)
        vals.append(val)
    everything = np.concatenate(vals)
    assert sorted(everything) == list(range(len(labels)))  # each image validates exactly once


def test_folds_are_stratified(labels):
    overall = np.bincount(labels) / len(labels)
    for fold in range(5):
        _, val = fold_indices(labels, 5, fold, seed=3)
        share = np.bincount(labels[val], minlength=4) / len(val)
        assert np.abs(share - overall).max() < 0.01


def test_folds_are_deterministic_from_the_seed(labels):
    a = fold_indices(labels, 5, 2, seed=7)
    b = fold_indices(labels, 5, 2, seed=7)
    c = fold_indices(labels, 5, 2, seed=8)
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    ("n_folds", "fold", "message"),
    [(1, 0, "n_folds=1"), (5, 5, "fold=5"), (5, -1, "fold=-1")],
)
def test_bad_folds_name_the_value(labels, n_folds, fold, message):
    with pytest.raises(ValueError, match=message):
        fold_indices(labels, n_folds, fold, seed=0)


def test_stratified_subset_keeps_class_shares(labels):
    idx = stratified_subset(labels, 200, seed=0)
    assert len(idx) == 200 and len(set(idx)) == 200
    share = np.bincount(labels[idx], minlength=4) / 200
    assert np.abs(share - np.bincount(labels) / len(labels)).max() < 0.01


def test_checking_folds_does_not_import_scikit_learn():
    # A sweep's launching process checks every job's folds; importing scikit-learn there
    # cost ~2 s of every launch. It is imported where the folds are split.
    code = (
        "import sys; from advfit.data.folds import check_folds; check_folds(5, 4); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
