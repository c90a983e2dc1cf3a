"""Intervals for autocorrelated measurement errors (calibrate(..., residual_model="ar1")).

A coverage study on a straight line y = 1 + 2 t with AR(1) errors (coefficient 0.9, 200 points), fitted
by least squares and passed through the calibration's own covariance and autocorrelation functions:
intervals assuming independent errors cover the true slope far less often than 95 %; the AR(1)
inflation brings the coverage back near 95 %. The theory: the slope's variance under AR(1) errors is
(1 + phi)/(1 - phi) = 19 times the independent one, so the independent interval is 4.4x too narrow
(expected coverage P(|Z| < 1.96/4.4) = 34 %).
"""

import numpy as np
import pytest
from scipy import stats

from biotwin.calibration import statistics as st
from biotwin.calibration.problem import Observation


def _ar1(rng, n, phi, sd):
    e = np.empty(n)
    e[0] = rng.normal(0, sd / np.sqrt(1 - phi**2))  # the stationary start
    for k in range(1, n):
        e[k] = phi * e[k - 1] + rng.normal(0, sd)
    return e


def _line_fit(t, y):
    n = len(t)
    jac = np.column_stack([np.ones(n), t])
    beta = np.linalg.lstsq(jac, y, rcond=None)[0]
    residuals = y - jac @ beta
    weights = np.ones(n)
    cov, _, _ = st.covariance(jac, weights, residuals, np.array([True, True]), weighted=False)
    observations = [Observation(0, "y", float(ti), float(yi), None) for ti, yi in zip(t, y)]
    rho, pairs = st.residual_autocorrelation(observations, residuals, weights)
    return beta, cov, rho, pairs


def test_ar1_intervals_cover_the_truth_where_independent_ones_do_not():
    rng = np.random.default_rng(7)
    n, phi, reps = 200, 0.9, 400
    t = np.linspace(0.0, 1.0, n)
    covered_independent = covered_ar1 = 0
    rhos = []
    for _ in range(reps):
        y = 1.0 + 2.0 * t + _ar1(rng, n, phi, 0.1)
        beta, cov, rho, pairs = _line_fit(t, y)
        assert pairs == n - 1
        se = np.sqrt(cov[1, 1])
        covered_independent += abs(beta[1] - 2.0) <= stats.t.ppf(0.975, n - 2) * se
        factor = st.ar1_variance_inflation(rho)
        n_eff = max(int(n / factor), 3)
        covered_ar1 += abs(beta[1] - 2.0) <= stats.t.ppf(0.975, n_eff - 2) * se * np.sqrt(factor)
        rhos.append(rho)
    print(
        f"\n{reps} replicates, AR(1) errors phi {phi}: rho estimated {np.mean(rhos):.3f} (sd {np.std(rhos):.3f}); "
        f"95 % interval coverage of the slope: independent {covered_independent / reps:.3f}, "
        f"AR(1) {covered_ar1 / reps:.3f}"
    )
    assert covered_independent / reps < 0.6
    assert 0.88 <= covered_ar1 / reps <= 0.99


def test_independent_errors_are_not_inflated():
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 1.0, 200)
    rhos = [_line_fit(t, 1.0 + 2.0 * t + rng.normal(0, 0.1, t.size))[2] for _ in range(200)]
    # white noise: rho within about 2/sqrt(n) = 0.14 of zero (slightly negative after a fit)
    assert abs(np.mean(rhos)) < 0.03 and max(np.abs(rhos)) < 0.3
    assert st.ar1_variance_inflation(-0.1) == 1.0 and st.ar1_variance_inflation(float("nan")) == 1.0
    assert st.ar1_variance_inflation(0.5) == pytest.approx(3.0)


def test_series_are_separate_and_in_time_order():
    # two experiments of alternating-sign residuals given out of time order: each series is -1 correlated
    obs, res = [], []
    for exp in (0, 1):
        for k in reversed(range(20)):
            obs.append(Observation(exp, "y", float(k), 0.0, None))
            res.append((-1.0) ** k)
    rho, pairs = st.residual_autocorrelation(obs, np.array(res), np.ones(len(res)))
    assert pairs == 38 and rho == pytest.approx(-19 / 20)


def test_a_series_in_large_units_does_not_outweigh_the_others():
    # one white-noise series in vp/mL (1e9) and one perfectly alternating series in mM: pooled by pairs
    rng = np.random.default_rng(0)
    obs, res = [], []
    for k, r in enumerate(rng.normal(0, 1e9, 101)):
        obs.append(Observation(0, "VLP", float(k), 0.0, None))
        res.append(r)
    for k in range(101):
        obs.append(Observation(0, "Glc", float(k), 0.0, None))
        res.append((-1.0) ** k)
    rho, pairs = st.residual_autocorrelation(obs, np.array(res), np.ones(len(res)))
    white, _ = st.residual_autocorrelation(obs[:101], np.array(res[:101]), np.ones(101))
    assert pairs == 200 and rho == pytest.approx((white + (-100 / 101)) / 2)
    assert np.isnan(st.residual_autocorrelation(obs[:5], np.array(res[:5]), np.ones(5))[0])  # too few pairs
