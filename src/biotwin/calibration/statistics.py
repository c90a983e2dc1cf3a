"""Uncertainty, identifiability and goodness of fit from a solved estimation problem.

Covariance (Gauss-Newton): ``C = s^2 (J^T W J)^-1`` with ``J`` the sensitivities of the
model values at the observations to the free parameters, ``W`` the weights
``1/sigma^2``, and ``s^2 = 1`` when sigmas are given or ``SSE/(n - p)`` when not
(Bates & Watts 1988, Nonlinear Regression Analysis and Its Applications, ch. 2).
Wald intervals use Student's t with ``n - p`` degrees of freedom when ``s^2`` is
estimated and the normal quantile when sigmas are known.

Parameters at a bound are excluded from ``J`` (held at the bound) and reported as such.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

CORRELATION_WARNING = 0.95


def at_bound(value, lower, upper, scale, rel_tol=1e-4):
    """``'lower'``/``'upper'`` when ``value`` sits on that bound (within ``rel_tol * scale``), else None."""
    tol = rel_tol * max(scale, 1e-300)
    if lower is not None and value - lower <= tol:
        return "lower"
    if upper is not None and upper - value <= tol:
        return "upper"
    return None


#: Eigenvalue of the correlation-scaled Fisher matrix below which a direction counts as not informed
#: by the data (a relative singular value below 1e-6: the data cannot tell the parameters along it apart).
RANK_TOLERANCE = 1e-12


def covariance(jac, weights, residuals, free, weighted, rank_tol=RANK_TOLERANCE):
    """Gauss-Newton covariance of the free parameters (in the units of ``jac``'s columns).

    A direction of parameter space that the data do not inform (a zero column of ``J``, or a
    combination of columns that is numerically zero) has infinite variance: every parameter that
    loads on such a direction gets an infinite variance (never the zero a pseudo-inverse would give),
    and the rest the covariance of the informed subspace.

    Parameters
    ----------
    jac : (n, p) array
        d model value / d parameter at each observation.
    weights : (n,) array
    residuals : (n,) array
        ``y - y_model``.
    free : (p,) bool array
        Columns that are not at a bound.
    weighted : bool
        True when sigmas are known.
    rank_tol : float
        Eigenvalue threshold of the correlation-scaled Fisher matrix (see :data:`RANK_TOLERANCE`).

    Returns
    -------
    cov : (p, p) array
        NaN in rows/columns of parameters at a bound; ``inf`` on the diagonal (NaN off it) for
        parameters the data do not inform.
    s2 : float
        Residual variance factor used.
    fisher : (q, q) array
        ``J^T W J`` of the free parameters.
    """
    n, p = jac.shape
    q = int(free.sum())
    sse = float(np.sum(weights * residuals**2))
    s2 = 1.0 if weighted else sse / max(n - q, 1)
    J = jac[:, free]
    fisher = J.T @ (weights[:, None] * J)
    cov = np.full((p, p), np.nan)
    inv, informed = _informed_inverse(fisher, rank_tol)
    block = s2 * inv
    idx = np.flatnonzero(free)
    cov[np.ix_(idx, idx)] = block
    for j in np.flatnonzero(~informed):
        cov[idx[j], :] = np.nan
        cov[:, idx[j]] = np.nan
        cov[idx[j], idx[j]] = np.inf
    return cov, s2, fisher


def _informed_inverse(fisher, rank_tol):
    """Inverse of ``fisher`` on the directions the data inform, and which parameters are informed.

    Returns
    -------
    inv : (q, q) array
        Covariance contribution of the informed directions.
    informed : (q,) bool array
        False for a parameter with a loading above 1e-3 on a direction whose eigenvalue (of the
        matrix scaled to unit diagonal) is below ``rank_tol``, or with a zero diagonal.
    """
    q = fisher.shape[0]
    diag = np.diag(fisher).copy()
    scale_ok = np.isfinite(diag) & (diag > 0)
    informed = scale_ok.copy()
    inv = np.zeros((q, q))
    k = np.flatnonzero(scale_ok)
    if k.size == 0:
        return inv, informed
    d = 1.0 / np.sqrt(diag[k])
    scaled = fisher[np.ix_(k, k)] * np.outer(d, d)
    lam, vec = np.linalg.eigh(0.5 * (scaled + scaled.T))
    null = lam < rank_tol * max(1.0, float(lam.max()))
    if null.any():
        loads = np.abs(vec[:, null]).max(axis=1) > 1e-3
        informed[k[loads]] = False
    keep = ~null
    sub = (vec[:, keep] / lam[keep]) @ vec[:, keep].T
    inv[np.ix_(k, k)] = sub * np.outer(d, d)
    return inv, informed


#: Lag-1 autocorrelation of the residuals above which a calibration warns that intervals assuming
#: independent errors are too narrow (a variance understated by (1 + rho)/(1 - rho) = 3 at 0.5).
AUTOCORRELATION_WARNING = 0.5
#: Consecutive residual pairs below which a lag-1 autocorrelation is not measured (NaN).
MIN_AUTOCORRELATION_PAIRS = 10


def residual_autocorrelation(observations, residuals, weights) -> tuple[float, int]:
    """Lag-1 autocorrelation of the normalized residuals within each measured series, pooled.

    A series is one variable of one experiment, in time order (replicates at one time in the order
    given); its ``rho_s = sum r_t r_(t-1) / sum r_t^2`` (not centred: a constant offset of the model
    counts as correlated error, which it is); the pooled value is the mean of the ``rho_s`` weighted by
    their pairs, so a series in large units (titer in vp/mL) does not outweigh one in small units.
    Independent errors give ``rho`` near 0 (within about ``2/sqrt(n)``); a model that misses a slow
    feature of a densely sampled record leaves runs of same-signed residuals and ``rho`` near 1.

    Returns
    -------
    (rho, pairs) : (float, int)
        ``rho`` is NaN with fewer than :data:`MIN_AUTOCORRELATION_PAIRS` (10) consecutive pairs.
    """
    z = np.sqrt(weights) * residuals
    series = {}
    for k, o in enumerate(observations):
        series.setdefault((o.experiment, o.variable), []).append((o.time, z[k]))
    weighted = 0.0
    pairs = 0
    for rows in series.values():
        r = np.array([v for _, v in sorted(rows, key=lambda row: row[0])])
        den = float(np.sum(r**2))
        if len(r) < 2 or den <= 0:
            continue
        weighted += (len(r) - 1) * float(np.sum(r[1:] * r[:-1])) / den
        pairs += len(r) - 1
    if pairs < MIN_AUTOCORRELATION_PAIRS:
        return float("nan"), pairs
    return weighted / pairs, pairs


def ar1_variance_inflation(rho: float) -> float:
    """``(1 + rho) / (1 - rho)``: the factor by which AR(1) errors inflate the variance of an estimate.

    Exact for a mean of an AR(1) series, and the usual large-sample correction (the effective number
    of observations is ``n / factor``) for least-squares estimates (e.g. Wilks, *Statistical Methods
    in the Atmospheric Sciences*, 3rd ed., 2011, section 5.2.4). 1 for ``rho <= 0`` or NaN.
    """
    if not np.isfinite(rho) or rho <= 0:
        return 1.0
    rho = min(rho, 0.999)
    return (1 + rho) / (1 - rho)


def wald_intervals(values, cov, n, q, weighted, level=0.95):
    """Standard errors and two-sided Wald intervals (infinite where the variance is)."""
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    quantile = stats.norm.ppf(0.5 + level / 2) if weighted else stats.t.ppf(0.5 + level / 2, max(n - q, 1))
    return se, values - quantile * se, values + quantile * se, float(quantile)


def correlation(cov):
    """Correlation matrix; NaN for parameters at a bound or not informed (infinite variance)."""
    sd = np.sqrt(np.diag(cov))
    sd = np.where(np.isfinite(sd), sd, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.outer(sd, sd)


def high_correlations(corr, labels, threshold=CORRELATION_WARNING):
    """Pairs of estimates whose |correlation| exceeds ``threshold``."""
    pairs = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if np.isfinite(corr[i, j]) and abs(corr[i, j]) > threshold:
                pairs.append((labels[i], labels[j], float(corr[i, j])))
    return pairs


def identifiability(jac, weights, values, labels, free, rel_threshold=1e-3):
    """SVD of the relative sensitivity matrix ``W^1/2 J diag(theta)``.

    Columns are scaled by the parameter values, so singular values compare relative
    changes. A right singular vector whose singular value is below ``rel_threshold``
    times the largest is a near-null direction: that combination of (log) parameters
    barely changes the fit.

    Returns
    -------
    dict
        ``singular_values``, ``condition_number``, ``null_directions`` (each with its
        singular value ratio and the parameter loadings above 0.1), ``labels``.
    """
    idx = np.flatnonzero(free)
    scale = np.where(np.abs(values[idx]) > 0, np.abs(values[idx]), 1.0)
    A = np.sqrt(weights)[:, None] * jac[:, idx] * scale[None, :]
    if A.size == 0:
        return {"labels": [], "singular_values": [], "condition_number": None, "null_directions": []}
    _, s, vt = np.linalg.svd(A, full_matrices=False)
    directions = []
    smax = s[0] if s.size and s[0] > 0 else 1.0
    for k, sv in enumerate(s):
        ratio = abs(float(sv / smax))
        if ratio < rel_threshold:
            loadings = {labels[idx[j]]: float(vt[k, j]) for j in np.argsort(-np.abs(vt[k])) if abs(vt[k, j]) > 0.1}
            text = " ".join(f"{w:+.2f}*log({name})" for name, w in loadings.items())
            directions.append({"singular_value_ratio": float(ratio), "loadings": loadings, "combination": text})
    cond = float(s[0] / s[-1]) if s.size and s[-1] > 0 else float("inf")
    return {
        "labels": [labels[i] for i in idx],
        "singular_values": s.tolist(),
        "condition_number": cond,
        "null_directions": directions,
    }


def fit_statistics(observations, residuals, weights, n_free, weighted, sse_weighted):
    """Per-variable RMSE and R^2, chi^2 with its expected range, AIC and BIC."""
    n = len(observations)
    per_var = {}
    variables = sorted({o.variable for o in observations})
    for var in variables:
        mask = np.array([o.variable == var for o in observations])
        y = np.array([o.value for o in observations])[mask]
        r = residuals[mask]
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        per_var[var] = {
            "n": int(mask.sum()),
            "rmse": float(np.sqrt(np.mean(r**2))),
            "r2": float(1 - np.sum(r**2) / ss_tot) if ss_tot > 0 else None,
            "weighted_sse": float(np.sum(weights[mask] * r**2)),
        }
    dof = n - n_free
    out = {"per_variable": per_var, "n_observations": n, "n_parameters": n_free, "dof": dof}
    if weighted:
        lo, hi = stats.chi2.ppf([0.025, 0.975], max(dof, 1))
        out["chi2"] = sse_weighted
        out["chi2_expected_95"] = [float(lo), float(hi)]
        out["chi2_p_value"] = float(stats.chi2.sf(sse_weighted, max(dof, 1)))
        out["chi2_verdict"] = (
            "consistent with the stated sigmas"
            if lo <= sse_weighted <= hi
            else "larger than expected: model misfit or sigmas too small"
            if sse_weighted > hi
            else "smaller than expected: sigmas too large or overfitting"
        )
        out["aic"] = float(sse_weighted + 2 * n_free)
        out["bic"] = float(sse_weighted + n_free * np.log(n))
    else:
        sse = sse_weighted
        out["aic"] = float(n * np.log(sse / n) + 2 * n_free)
        out["bic"] = float(n * np.log(sse / n) + n_free * np.log(n))
    return out
