"""``biotwin.calibrate``: data in, a :class:`CalibrationResult` out."""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from biotwin.calibration import statistics as st
from biotwin.calibration.multistart import distinct_optima, run_multistart
from biotwin.calibration.problem import EstimationProblem
from biotwin.calibration.profile import profile_parameter
from biotwin.calibration.result import CalibrationResult
from biotwin.calibration.sensitivity import Sensitivities
from biotwin.core.checks import unusual_allowed
from biotwin.core.data import Experiment, read_experiment
from biotwin.core.errors import DataError, ScenarioError
from biotwin.core.model import Model, folder_sha256, load_model
from biotwin.core.units import unit_string
from biotwin.engine.solver import solve, solver_options


def _experiments(data) -> list[Experiment]:
    if isinstance(data, (str, Path, Experiment, pd.DataFrame, tuple)):
        data = [data]
    out = []
    for i, item in enumerate(data):
        if isinstance(item, Experiment):
            out.append(item)
        elif isinstance(item, pd.DataFrame):
            out.append(Experiment.from_frame(item, name=f"experiment_{i + 1}"))
        elif isinstance(item, tuple):
            if len(item) != 2:
                raise DataError(f"data item {i + 1}: a tuple must be a (data, scenario) pair, not {len(item)} items")
            source, scenario = item
            if isinstance(source, pd.DataFrame):
                out.append(Experiment.from_frame(source, name=f"experiment_{i + 1}", scenario=scenario))
            else:
                out.append(read_experiment(source, scenario=scenario))
        else:
            out.append(read_experiment(item))
    for exp in out:
        if exp.path is not None and exp.scenario is None:
            raise DataError(
                f"{exp.path}: no recipe for this experiment: put the recipe that produced it next to "
                f"the file as {Path(exp.path).with_suffix('.yaml').name}, or give it explicitly "
                "(--scenario on the command line, a (path, scenario) pair in Python); a model's "
                "default recipe is not assumed for a data file"
            )
    return out


def _versions():
    out = {"python": platform.python_version()}
    for dist in ("biotwin", "pyomo", "numpy", "scipy", "pandas", "cyipopt-wheels", "cyipopt"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    try:
        import cyipopt

        out["ipopt"] = ".".join(str(v) for v in cyipopt.IPOPT_VERSION)
    except ImportError:
        pass
    return out


def calibrate(
    model,
    data,
    estimate,
    local=None,
    start=None,
    sigma=None,
    nfe=50,
    ncp=3,
    multistart=0,
    seed=0,
    workers=None,
    profile=(),
    options=None,
    progress=None,
    bands=True,
    residual_model="independent",
) -> CalibrationResult:
    """Estimate parameters from one or more experiments.

    Parameters
    ----------
    model : biotwin.Model, str or path
    data : experiment or list of experiments
        CSV paths (recipe from a ``<stem>.yaml`` next to the file, else the model's default
        scenario), ``(path, scenario)`` pairs, :class:`~biotwin.core.data.Experiment` objects or
        DataFrames.
    estimate : list of str
        Parameters shared by all experiments.
    local : list of str, optional
        Parameters estimated per experiment (e.g. seeding density).
    start : dict, optional
        Starting values by label (``name`` or ``name[experiment]``) [parameter unit].
    sigma : dict, optional
        Default measurement standard deviation per variable [variable unit].
    nfe, ncp : int
        Collocation elements (about) and Radau points per experiment.
    multistart : int
        Number of Latin-hypercube starts solved in parallel before the final fit (0: none).
    seed : int
        Seed of the Latin hypercube.
    workers : int, optional
        Parallel processes for multi-start (default: number of CPUs).
    profile : list of str
        Labels of parameters to profile (likelihood-based intervals).
    options : dict, optional
        Ipopt options.
    progress : callable, optional
        Receives one line of text per stage.
    bands : bool
        Compute fitted trajectories with 95 % confidence bands.
    residual_model : {"independent", "ar1"}
        ``"independent"``: the measurement errors are independent (the Gauss-Newton covariance).
        ``"ar1"``: each measured series' errors follow an AR(1) process; the covariance (and the
        intervals and bands) is inflated by ``(1 + rho)/(1 - rho)``, ``rho`` the residuals' lag-1
        autocorrelation (:func:`biotwin.calibration.statistics.ar1_variance_inflation`), and, when the
        sigmas are estimated from the residuals, the t quantile uses the effective number of observations. For densely sampled records (a
        thermocouple every minute) that the model does not follow exactly. Not with ``profile``.

    Returns
    -------
    CalibrationResult
    """
    wall0 = time.perf_counter()
    say = progress or (lambda text: None)
    if not isinstance(model, Model):
        model = load_model(model)
    experiments = _experiments(data)
    estimate = [estimate] if isinstance(estimate, str) else list(estimate)
    local = [local] if isinstance(local, str) else list(local or [])
    problem = EstimationProblem(model, experiments, estimate, local, start, sigma, nfe, ncp, options, progress)
    labels = [p.label for p in problem.parameters]
    if residual_model not in ("independent", "ar1"):
        raise ScenarioError(f"residual_model {residual_model!r}: use 'independent' or 'ar1'")
    if residual_model == "ar1" and profile:
        raise ScenarioError(
            "profile likelihood intervals assume independent errors; with residual_model='ar1' use the Wald intervals"
        )
    unknown_profiles = set(profile) - set(labels)
    if unknown_profiles:
        raise ScenarioError(f"cannot profile {sorted(unknown_profiles)}: not estimated ({', '.join(labels)})")

    runs, optima = [], []
    if multistart:
        say(f"multi-start: {multistart} Latin-hypercube starts (seed {seed})")
        spec = {
            "model_folder": str(model.folder),
            "experiments": experiments,
            "estimate": estimate,
            "local": local,
            "sigma": sigma,
            "nfe": nfe,
            "ncp": ncp,
            "options": options,
            "allow_unusual": unusual_allowed(),
        }
        runs = run_multistart(spec, problem.parameters, multistart, seed, workers, progress)
        optima = distinct_optima(runs, labels)
        best = next((r for r in runs if r["objective"] is not None), None)
        if best is not None:
            better_start = dict(zip(labels, best["values"]))
            problem = EstimationProblem(
                model, experiments, estimate, local, better_start, sigma, nfe, ncp, options, progress
            )
    problem.build()
    say(
        f"solving the estimation problem: {len(labels)} parameters, {problem.n_observations} observations, "
        f"{len(experiments)} experiment(s)"
    )
    # Ipopt may end a parameter 1e-8 beyond its bound (bound relaxation); Pyomo would log a warning
    # when loading it. Values flagged at a bound are reported at the bound below.
    core_log = logging.getLogger("pyomo.core")
    level = core_log.level
    core_log.setLevel(logging.ERROR)
    try:
        stats = solve(problem.m, options=options, what=f"calibration of {model.name}", keep_nlp=True)
    finally:
        core_log.setLevel(level)

    # -- uncertainty -------------------------------------------------------------
    values = problem.values()
    residuals = problem.residuals()
    objective = problem.objective()
    n, weights = problem.n_observations, problem.weights
    scales = np.array([p.scale for p in problem.parameters])
    bound_flags = [st.at_bound(v, p.lower, p.upper, p.scale) for v, p in zip(values, problem.parameters)]
    free = np.array([b is None for b in bound_flags])
    q = int(free.sum())
    say("computing sensitivities, covariance and identifiability")
    sens = Sensitivities(problem.m, stats.nlp)
    jac_phi = np.array([sens.of(c) for c in problem.obs_components])
    jac = jac_phi / scales[None, :]
    cov, s2, _ = st.covariance(jac, weights, residuals, free, problem.weighted)
    rho, pairs = st.residual_autocorrelation(problem.observations, residuals, weights)
    inflation = st.ar1_variance_inflation(rho) if residual_model == "ar1" else 1.0
    cov = cov * inflation
    n_effective = n / inflation
    se, lo, hi, quantile = st.wald_intervals(values, cov, max(int(n_effective), q + 1), q, problem.weighted)
    corr = st.correlation(cov)
    result_warnings = []
    if residual_model == "ar1" and not np.isfinite(rho):
        result_warnings.append(
            f"residual_model='ar1': only {pairs} consecutive residual pairs, too few to measure their "
            "autocorrelation; the intervals are not widened"
        )
    if residual_model == "independent" and rho > st.AUTOCORRELATION_WARNING:
        result_warnings.append(
            f"the residuals are autocorrelated (lag-1 {rho:.2f} over {pairs} pairs): intervals that assume "
            f"independent errors are too narrow (variance understated about {st.ar1_variance_inflation(rho):.3g}x); "
            "calibrate(..., residual_model='ar1') widens them"
        )
    for a, b, r in st.high_correlations(corr, labels):
        result_warnings.append(f"estimates of {a} and {b} are correlated ({r:+.3f}): the data hardly separate them")
    ident = st.identifiability(jac, weights, values, labels, free)
    for d in ident["null_directions"]:
        result_warnings.append(
            f"near-null direction (relative singular value {d['singular_value_ratio']:.1e}): {d['combination']}"
        )
    informed = np.array([bool(np.isfinite(cov[k, k])) or not free[k] for k in range(len(labels))])
    for label, flag, ok in zip(labels, bound_flags, informed):
        if flag:
            result_warnings.append(f"{label} is at its {flag} bound; no interval is given")
        elif not ok:
            result_warnings.append(
                f"{label} is NOT IDENTIFIABLE from these data: its standard error is infinite "
                "and it has no finite interval (measure what it affects, or fix it)"
            )
    ident["high_correlations"] = [{"a": a, "b": b, "correlation": r} for a, b, r in st.high_correlations(corr, labels)]

    params = {}
    for k, p in enumerate(problem.parameters):
        ok = free[k]
        value = float(values[k])
        if bound_flags[k] == "lower":
            value = float(p.lower)
        elif bound_flags[k] == "upper":
            value = float(p.upper)
        finite = ok and bool(informed[k])
        params[p.label] = {
            "value": value,
            "unit": p.unit,
            "std_error": float(se[k]) if finite else None,
            "ci95_low": float(lo[k]) if finite else None,
            "ci95_high": float(hi[k]) if finite else None,
            "identifiable": bool(informed[k]),
            "at_bound": bound_flags[k],
            "lower": p.lower,
            "upper": p.upper,
            "start": p.start,
            "experiment": p.experiment,
            "profile_ci95_low": None,
            "profile_ci95_high": None,
        }

    profiles = {}
    for label in profile:
        k = labels.index(label)
        say(f"profile likelihood of {label}")
        se_phi = se[k] / scales[k] if free[k] else float("nan")
        prof = profile_parameter(problem, k, se_phi, problem.weighted, n, q, options, progress=progress)
        profiles[label] = prof
        params[label]["profile_ci95_low"] = prof["ci95_low"] if not prof["open_low"] else p_bound(problem, k, "low")
        params[label]["profile_ci95_high"] = prof["ci95_high"] if not prof["open_high"] else p_bound(problem, k, "high")

    diagnostics = st.fit_statistics(problem.observations, residuals, weights, q, problem.weighted, objective)
    diagnostics["residual_variance_factor"] = s2
    diagnostics["interval_quantile"] = quantile
    diagnostics["residual_autocorrelation_lag1"] = rho
    diagnostics["residual_model"] = residual_model
    diagnostics["variance_inflation"] = inflation
    diagnostics["n_effective"] = n_effective
    fitted = [o.value - r for o, r in zip(problem.observations, residuals)]
    residual_rows = [
        {
            "experiment": experiments[o.experiment].name,
            "variable": o.variable,
            "time": o.time,
            "value": o.value,
            "fitted": f,
            "sigma": o.sigma,
        }
        for o, f in zip(problem.observations, fitted)
    ]
    trajectories = _trajectories(problem, sens, cov, scales, free, quantile) if bands else {}

    provenance = {
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model_folder": str(model.folder),
        "model_sha256": folder_sha256(model.folder),
        "data": [
            {
                "experiment": e.name,
                "path": str(e.path) if e.path else None,
                "sha256": e.sha256,
                "scenario": e.scenario if isinstance(e.scenario, (str, type(None))) else "<dict>",
            }
            for e in experiments
        ],
        "estimate": estimate,
        "local": local,
        "sigma_defaults": sigma or {},
        "nfe": nfe,
        "ncp": ncp,
        "solver_options": solver_options(options),
        "seed": seed if multistart else None,
        "residual_model": residual_model,
        "multistart": multistart,
        "iterations": stats.iterations,
        "versions": _versions(),
    }
    units = {"time": model.time_unit}
    for o, comp in zip(problem.observations, problem.obs_components):
        if o.variable not in units:
            try:
                units[o.variable] = unit_string(pyo.units.get_units(comp))
            except Exception:  # inconsistent units inside a user expression  # noqa: BLE001
                units[o.variable] = "?"
    result = CalibrationResult(
        model=model.name,
        objective=objective,
        objective_kind="weighted SSE" if problem.weighted else "SSE",
        status=stats.termination_condition,
        parameters=params,
        covariance={"labels": labels, "matrix": cov.tolist()},
        correlation={"labels": labels, "matrix": corr.tolist()},
        n_observations=n,
        wall_time_s=time.perf_counter() - wall0,
        diagnostics=diagnostics,
        identifiability=ident,
        multistart=optima,
        profiles=profiles,
        residuals=residual_rows,
        trajectories=trajectories,
        warnings=result_warnings,
        provenance=provenance,
        units=units,
    )
    for w in result_warnings:
        if "correlated" in w or "near-null" in w or "NOT IDENTIFIABLE" in w or "autocorrelat" in w:
            warnings.warn(w, stacklevel=2)
    say(f"done in {result.wall_time_s:.2f} s: {result.objective_kind} {objective:.6g}")
    return result


def p_bound(problem, k, side):
    p = problem.parameters[k]
    return p.lower if side == "low" else p.upper


def _trajectories(problem, sens, cov, scales, free, quantile):
    """Fitted trajectories of the measured variables with 95 % bands from the covariance."""
    uninformed = np.isinf(np.diag(cov))
    cov_phi = np.where(np.isfinite(cov), cov, 0.0) / np.outer(scales, scales)
    out = {}
    for i, exp in enumerate(problem.experiments):
        block = problem.blocks[i]
        points = list(block.t)
        entry = {"time": [float(t) for t in points]}
        for var in exp.variables:
            comp = getattr(block, var)
            vals, sds = [], []
            for t in points:
                g = sens.of(comp[t])
                vals.append(float(pyo.value(comp[t])))
                # a prediction that moves with a parameter the data do not inform has no finite band
                moves = np.abs(g[uninformed]) > 1e-10 * (1.0 + abs(vals[-1]))
                sds.append(np.inf if moves.any() else float(np.sqrt(max(g @ cov_phi @ g, 0.0))))
            vals, sds = np.array(vals), np.array(sds)
            entry[var] = vals.tolist()
            entry[f"{var}_low"] = (vals - quantile * sds).tolist()
            entry[f"{var}_high"] = (vals + quantile * sds).tolist()
        out[exp.name] = entry
    return out
