"""Weibull fits of many samples at once: scipy's ``weibull_min.fit`` with Nelder-Mead, batched.

CLEVER (and IBM ART's ``clever_t``) estimates a local Lipschitz constant as the location of
a reverse Weibull fitted to gradient-norm maxima: ``weibull_min.fit(-maxima, c_init,
optimizer=scipy.optimize.fmin)``, one scipy call per (image, class).
:func:`fit_weibull_min` runs that same procedure for every row of a 2-D array in lock step:
scipy's starting point, scipy's
penalised negative log-likelihood, and the Nelder-Mead of ``scipy.optimize.fmin`` with its
initial simplex, coefficients, tolerances, ordering and its 600-evaluation budget, counted
per row and cut where scipy cuts it. It returns the same parameters as scipy, row by row
(tested against scipy on real CLEVER samples), at a small fraction of the cost.

Where the three-parameter likelihood has no maximum the fit does not converge, as in scipy:
the shape grows without bound (the Gumbel limit) and the location runs towards -inf, so a
Lipschitz estimate taken from it means nothing. :attr:`WeibullFit.runaway` marks those rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

#: scipy's penalty per sample outside the support or with a non-finite log-density
#: (``_LOGXMAX * 100``), kept in scipy's order of operations: ``n_bad * _LOGXMAX * 100``.
_LOGXMAX = np.log(np.finfo(float).max)
#: ``scipy.optimize.fmin`` defaults for three parameters.
_MAXFUN = _MAXITER = 600
_XATOL = _FATOL = 1e-4
#: Nelder-Mead coefficients (scipy's non-adaptive ones) and initial simplex steps.
_RHO, _CHI, _PSI, _SIGMA = 1, 2, 0.5, 0.5
_NONZDELT, _ZDELT = 0.05, 0.00025
#: A fitted shape above this is the Gumbel limit of a fit that ran away (seen: runaways
#: reach 1e2 to 1e8, converged fits of CLEVER maxima stay below 30).
RUNAWAY_SHAPE = 100.0


@dataclass(frozen=True)
class WeibullFit:
    """Parameters of ``weibull_min`` per row, as ``scipy.stats.weibull_min.fit`` returns them."""

    c: np.ndarray
    loc: np.ndarray
    scale: np.ndarray

    @property
    def runaway(self) -> np.ndarray:
        """Rows whose shape ran off to the Gumbel limit: their location is meaningless."""
        return self.c > RUNAWAY_SHAPE


def _start(data: np.ndarray, c_init: float) -> np.ndarray:
    """scipy's starting point (c, loc, scale) for ``weibull_min.fit(data, c_init)`` per row:
    the method-of-moments location and scale at the guessed shape. (weibull_min.fit's other
    start, for strongly skewed samples, applies only when no shape guess is given.)"""
    c = np.full(len(data), float(c_init))
    mean, var = np.mean(data, axis=1), np.var(data, axis=1)
    scale = np.sqrt(var / (special.gamma(1 + 2 / c_init) - special.gamma(1 + 1 / c_init) ** 2))
    loc = mean - scale * special.gamma(1 + 1 / c_init)
    return np.stack([c, loc, scale], axis=1)


def _nnlf(theta: np.ndarray, data: np.ndarray) -> np.ndarray:
    """scipy's penalised negative log-likelihood of weibull_min, one value per row."""
    c, loc, scale = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    with np.errstate(all="ignore"):
        x = (data - loc) / scale
        logpdf = np.log(c) + special.xlogy(c - 1, x) - np.power(x, c)
        good = (x >= 0) & np.isfinite(logpdf)
        n_bad = data.shape[1] - np.count_nonzero(good, axis=1)
        total = np.where(good, logpdf, 0.0).sum(axis=1)
        value = (-total + n_bad * _LOGXMAX * 100) + data.shape[1] * np.log(scale[:, 0])
    valid = (c[:, 0] > 0) & ~(scale[:, 0] <= 0)
    return np.where(valid, value, np.inf)


def fit_weibull_min(data: np.ndarray, c_init: float = 1.0) -> WeibullFit:
    """``scipy.stats.weibull_min.fit(row, c_init, optimizer=scipy.optimize.fmin)`` per row.

    Args:
        data: samples, shape ``(rows, n)``, one sample per row (``n >= 2``); float32 or float64.
        c_init: the initial shape, as scipy's positional guess.

    Returns:
        the fitted ``c``, ``loc``, ``scale``, each of shape ``(rows,)``.
    """
    data = _checked(data)
    sim, fsim = _initial_simplex(data, c_init)
    rows, dims = len(data), 3
    fcalls = np.full(rows, dims + 1)
    iterations = np.ones(rows, dtype=int)
    done = np.zeros(rows, dtype=bool)
    while True:
        live = np.flatnonzero(~done & (fcalls < _MAXFUN) & (iterations < _MAXITER))
        if live.size == 0:
            break
        s, f, d = sim[live], fsim[live], data[live]
        converged = (np.abs(s[:, 1:] - s[:, :1]).reshape(len(live), -1).max(axis=1) <= _XATOL) & (
            np.abs(f[:, :1] - f[:, 1:]).max(axis=1) <= _FATOL
        )
        done[live[converged]] = True
        keep = ~converged
        live, s, f, d = live[keep], s[keep], f[keep], d[keep]
        if live.size == 0:
            continue
        calls, aborted = _step(s, f, d, fcalls[live] + 1)
        iterations[live] += ~aborted
        fcalls[live] = calls
        order = np.argsort(f, axis=1)
        sim[live] = np.take_along_axis(s, order[:, :, None], axis=1)
        fsim[live] = np.take_along_axis(f, order, axis=1)
    best = sim[:, 0]
    return WeibullFit(c=best[:, 0], loc=best[:, 1], scale=best[:, 2])


def _checked(data: np.ndarray) -> np.ndarray:
    data = np.ascontiguousarray(data)
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    # float32 samples stay float32, as scipy keeps them: its starting mean and variance are
    # then float32 sums, and the fit from that start is scipy's (and ART's, whose gradient
    # norms are float32).
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"data must have shape (rows, n >= 2), got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("data contains non-finite values")
    return data


def _initial_simplex(data: np.ndarray, c_init: float) -> tuple[np.ndarray, np.ndarray]:
    """fmin's first simplex around scipy's start, sorted, and its values."""
    dims = 3
    x0 = _start(data, c_init)
    sim = np.repeat(x0[:, None, :], dims + 1, axis=1)
    for k in range(dims):
        step = sim[:, k + 1, k]
        sim[:, k + 1, k] = np.where(step != 0, (1 + _NONZDELT) * step, _ZDELT)
    fsim = np.stack([_nnlf(sim[:, k], data) for k in range(dims + 1)], axis=1)
    order = np.argsort(fsim, axis=1)
    sim = np.take_along_axis(sim, order[:, :, None], axis=1)
    fsim = np.take_along_axis(fsim, order, axis=1)
    return sim, fsim


def _step(
    s: np.ndarray, f: np.ndarray, d: np.ndarray, calls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One Nelder-Mead iteration of fmin on each row's simplex ``s`` (values ``f``, updated
    in place; ``calls`` counts this iteration's first evaluation): reflect, then expand or
    contract, else shrink. Returns the evaluations made so far and which rows ran out of
    budget mid-iteration (scipy raises there and leaves the iteration unchanged)."""
    dims = s.shape[2]
    aborted = np.zeros(len(s), dtype=bool)
    xbar = np.add.reduce(s[:, :-1], axis=1) / dims
    worst = s[:, -1]
    xr = (1 + _RHO) * xbar - _RHO * worst
    fxr = _nnlf(xr, d)
    expand = fxr < f[:, 0]
    accept_r = ~expand & (fxr < f[:, -2])
    outside = ~expand & ~accept_r & (fxr < f[:, -1])
    inside = ~expand & ~accept_r & ~outside
    second = np.where(
        expand[:, None],
        (1 + _RHO * _CHI) * xbar - _RHO * _CHI * worst,
        np.where(
            outside[:, None],
            (1 + _PSI * _RHO) * xbar - _PSI * _RHO * worst,
            (1 - _PSI) * xbar + _PSI * worst,
        ),
    )
    wants = ~accept_r
    # scipy raises (and stops the iteration unchanged) when the budget is spent.
    aborted |= wants & (calls >= _MAXFUN)
    evaluate = wants & ~aborted
    fsecond = np.full(len(s), np.inf)
    if evaluate.any():
        fsecond[evaluate] = _nnlf(second[evaluate], d[evaluate])
    calls = calls + evaluate

    new_point, new_value = xr.copy(), fxr.copy()
    take_second = evaluate & (
        (expand & (fsecond < fxr)) | (outside & (fsecond <= fxr)) | (inside & (fsecond < f[:, -1]))
    )
    new_point[take_second], new_value[take_second] = second[take_second], fsecond[take_second]
    replace = (accept_r | (expand & evaluate) | take_second) & ~aborted
    s[replace, -1], f[replace, -1] = new_point[replace], new_value[replace]

    shrink = evaluate & (outside | inside) & ~take_second
    for j in range(1, dims + 1):
        rows_j = np.flatnonzero(shrink & ~aborted)
        if rows_j.size == 0:
            break
        s[rows_j, j] = s[rows_j, 0] + _SIGMA * (s[rows_j, j] - s[rows_j, 0])
        spent = calls[rows_j] >= _MAXFUN
        aborted[rows_j[spent]] = True
        rows_j = rows_j[~spent]
        f[rows_j, j] = _nnlf(s[rows_j, j], d[rows_j])
        calls[rows_j] += 1
    return calls, aborted
