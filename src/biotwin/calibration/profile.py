"""Profile-likelihood intervals (Venzon & Moolgavkar 1988; Raue et al. 2009, Bioinformatics 25:1923).

For a parameter, fix it at values stepping away from the optimum, re-optimize the
others, and find where the objective crosses the 95 % threshold:

* sigmas known: ``chi2 <= chi2* + chi2_1(0.95)`` (= +3.84);
* sigma estimated: ``SSE <= SSE* (1 + F_1,n-p(0.95) / (n - p))``, which for a linear
  model gives exactly the t-based Wald interval.

A side that reaches a bound below the threshold is open: the interval extends to the
bound and is reported so.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
from scipy import stats

from biotwin.core.errors import SolverError
from biotwin.engine.solver import solve


def threshold(opt_objective, weighted, n, q, level=0.95):
    if weighted:
        return opt_objective + stats.chi2.ppf(level, 1)
    return opt_objective * (1 + stats.f.ppf(level, 1, max(n - q, 1)) / max(n - q, 1))


def _snapshot(m):
    return [(v, v.value) for v in m.component_data_objects(pyo.Var, descend_into=True)]


def _restore(snapshot):
    for v, value in snapshot:
        v.set_value(value, skip_validation=True)


def profile_parameter(
    problem, k, se_phi, weighted, n, q, options=None, max_steps=20, bisections=6, progress=None
) -> dict:
    """Profile parameter ``k`` of a solved :class:`EstimationProblem`.

    Returns
    -------
    dict
        ``ci95_low``, ``ci95_high`` (None when open), ``open_low``/``open_high`` flags,
        ``points`` (value, objective) scanned, ``threshold``.
    """
    say = progress or (lambda text: None)
    m = problem.m
    p = problem.parameters[k]
    phi_opt = float(pyo.value(m.phi[k]))
    obj_opt = problem.objective()
    limit = threshold(obj_opt, weighted, n, q)
    snapshot = _snapshot(m)
    lower = m.phi[k].lb
    upper = m.phi[k].ub
    base_step = se_phi if np.isfinite(se_phi) and se_phi > 0 else 0.1 * max(abs(phi_opt), 1e-3)
    points = [(p.scale * phi_opt, obj_opt)]
    result = {"threshold": limit, "objective_at_optimum": obj_opt}

    def objective_at(value):
        m.phi[k].fix(value)
        solve(m, options=options, what=f"profile of {p.label}")
        obj = problem.objective()
        points.append((p.scale * value, obj))
        return obj

    for side, direction in (("low", -1.0), ("high", 1.0)):
        _restore(snapshot)
        inside, inside_obj, step = phi_opt, obj_opt, base_step
        crossing, open_side, failed = None, False, False
        for _ in range(max_steps):
            trial = inside + direction * step
            bound = lower if direction < 0 else upper
            if bound is not None and (trial - bound) * direction >= 0:
                trial = bound
            try:
                obj = objective_at(trial)
            except SolverError:
                failed = True
                break
            if obj > limit:
                lo, hi, f_lo, f_hi = inside, trial, inside_obj, obj
                for _ in range(bisections):
                    mid = 0.5 * (lo + hi)
                    try:
                        f_mid = objective_at(mid)
                    except SolverError:
                        break
                    if f_mid > limit:
                        hi, f_hi = mid, f_mid
                    else:
                        lo, f_lo = mid, f_mid
                # final secant step inside the bracket (the profile is smooth there)
                crossing = lo + (limit - f_lo) * (hi - lo) / (f_hi - f_lo) if f_hi > f_lo else 0.5 * (lo + hi)
                break
            if bound is not None and trial == bound:
                open_side = True
                break
            inside, inside_obj, step = trial, obj, step * 1.6
        m.phi[k].unfix()
        say(
            f"profile {p.label} ({side}): "
            + (
                "open to the bound"
                if open_side
                else "solver failed"
                if failed
                else "no crossing within the steps"
                if crossing is None
                else f"{p.scale * crossing:.4g}"
            )
        )
        result[f"ci95_{side}"] = None if crossing is None else p.scale * crossing
        result[f"open_{side}"] = open_side
        result[f"failed_{side}"] = failed
    _restore(snapshot)
    m.phi[k].unfix()
    result["points"] = sorted(points)
    return result
