"""The batched Weibull fit against scipy's weibull_min.fit with Nelder-Mead (ART's call)."""

import numpy as np
import pytest
from scipy.optimize import fmin
from scipy.stats import weibull_min

from advfit.metrics.weibull import RUNAWAY_SHAPE, fit_weibull_min


def clever_like_samples(rows: int, n: int, seed: int) -> np.ndarray:
    """Negated maxima of batches drawn from pools of gradient norms, as CLEVER fits them."""
    rng = np.random.default_rng(seed)
    pools = rng.gamma(rng.uniform(1, 60, size=(rows, 1)), size=(rows, 200))
    pools *= rng.uniform(0.05, 20, size=(rows, 1))
    draws = rng.integers(0, 200, size=(rows, n * 20))
    return -np.take_along_axis(pools, draws, axis=1).reshape(rows, n, 20).max(axis=2)


@pytest.mark.parametrize(("c_init", "n"), [(1.0, 10), (0.5, 10), (3.0, 20), (1.0, 5)])
def test_batched_fit_equals_scipy_row_by_row(c_init, n):
    data = clever_like_samples(40, n, seed=int(c_init * 10) + n)
    fit = fit_weibull_min(data, c_init)
    expected = np.array([weibull_min.fit(row, c_init, optimizer=fmin) for row in data])
    got = np.stack([fit.c, fit.loc, fit.scale], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_runaway_fits_are_scipys_too_and_flagged():
    # Gumbel samples are the limit a Weibull fit runs away to: its shape grows without bound.
    data = -np.random.default_rng(3).gumbel(size=(60, 10))
    fit = fit_weibull_min(data, 1.0)
    expected = np.array([weibull_min.fit(row, 1.0, optimizer=fmin) for row in data])
    np.testing.assert_allclose(fit.loc, expected[:, 1], rtol=1e-12, atol=0)
    runaway = expected[:, 0] > RUNAWAY_SHAPE
    assert 0 < runaway.sum() < len(data)
    np.testing.assert_array_equal(fit.runaway, runaway)
    # A run-away location is far beyond the sample; a converged one sits near its edge.
    assert (fit.loc[runaway] < data.min(axis=1)[runaway] - 100).all()
    assert (fit.loc[~runaway] > data.min(axis=1)[~runaway] - 100).all()


def test_identical_samples_fit_their_own_value():
    fit = fit_weibull_min(np.full((2, 10), -2.0), 1.0)
    assert fit.loc == pytest.approx([-2.0, -2.0], rel=1e-12)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros(10), "shape"),
        (np.zeros((3, 1)), "shape"),
        (np.array([[1.0, np.nan]]), "non-finite"),
    ],
)
def test_bad_samples_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        fit_weibull_min(data)


def test_float32_samples_are_fitted_as_scipy_fits_them():
    # ART hands scipy float32 gradient norms; scipy's starting moments are float32 sums then.
    data = clever_like_samples(40, 10, seed=7).astype(np.float32)
    fit = fit_weibull_min(data, 1.0)
    expected = np.array([weibull_min.fit(row, 1.0, optimizer=fmin) for row in data])
    np.testing.assert_allclose(fit.loc, expected[:, 1], rtol=1e-12, atol=0)
