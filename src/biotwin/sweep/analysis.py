"""What a sweep says: the probability of meeting every limit per grid cell, and Sobol sensitivity indices.

:func:`probability_map`: for each grid cell, the share of its samples in which every limit holds in
every class (the worst vial class decides), with the Monte Carlo standard error
``sqrt(p (1 - p) / n)``; a point whose solve failed counts as not passing and is counted separately.
With no samples (one nominal point per cell) the map is the deterministic pass/fail map.

:func:`sobol_indices`: first-order and total Sobol indices of an output from a ``saltelli`` sweep, by
SALib's estimator (Saltelli 2010; Jansen 1999), with their 95 % bootstrap intervals. SALib's sample
and analysis are checked on the Ishigami function, whose indices are known analytically, in the tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from biotwin.sweep.spec import SweepError


def passes(frame: pd.DataFrame, limits, classes) -> pd.Series:
    """Per point: every limit holds in every class (a failed solve does not pass)."""
    ok = pd.Series(True, index=frame.index)
    for output, kind, value in limits:
        for c in classes:
            col = f"{output}@{c}"
            if col not in frame:
                raise SweepError(f"the sweep recorded no {col}")
            v = frame[col]
            ok &= (v <= value) if kind == "max" else (v >= value)  # NaN (failed) compares False
    return ok


def probability_map(result, limits=None) -> pd.DataFrame:
    """Probability that every limit holds, per grid cell, with its Monte Carlo standard error.

    Parameters
    ----------
    result : biotwin.sweep.SweepResult
    limits : list of (output, "max"|"min", value), optional
        Default: the sweep's own limits.

    Returns
    -------
    pandas.DataFrame
        One row per cell: the grid knobs, ``n`` samples, ``n_failed`` solves, ``probability`` [-], its
        Monte Carlo standard error ``se`` [-] and its 95 % Wilson score interval ``ci95_low``, ``ci95_high``
        [-] (Wilson 1927, *J Am Stat Assoc* 22:209; unlike ``se``, not zero when every sample passed or
        failed: 8 of 8 passing gives [0.68, 1]); and for each output and class its mean over the cell.
    """
    import json

    plan = json.loads((result.out / "plan.json").read_text())
    limits = [tuple(x) for x in (limits if limits is not None else plan["limits"])]
    if not limits:
        raise SweepError("no limits: give limits to the sweep or to probability_map")
    frame = result.frame
    if len(result.results) < len(result.points):
        raise SweepError(
            f"{result.out}: the sweep is incomplete ({len(result.results)}/{len(frame)} points); resume it"
        )
    frame = frame.assign(passes=passes(frame, limits, plan["classes"]), failed=frame["error"].notna())
    knobs = list(plan["grid"])
    outputs = [c for c in frame.columns if "@" in c]
    group = frame.groupby("cell", sort=True)
    cells = group[knobs].first() if knobs else pd.DataFrame(index=group.size().index)
    cells["n"] = group.size()
    cells["n_failed"] = group["failed"].sum().astype(int)
    cells["probability"] = group["passes"].mean()
    p, n = cells["probability"], cells["n"]
    cells["se"] = np.sqrt(p * (1 - p) / n)
    intervals = [
        stats.binomtest(int(k), int(size)).proportion_ci(0.95, method="wilson")
        for k, size in zip(group["passes"].sum(), n, strict=True)
    ]
    cells["ci95_low"] = [ci.low for ci in intervals]
    cells["ci95_high"] = [ci.high for ci in intervals]
    for c in outputs:
        cells[f"mean {c}"] = group[c].mean()
    return cells.reset_index()


def sobol_indices(result, output: str) -> pd.DataFrame:
    """First-order (S1) and total (ST) Sobol indices of ``output`` from a ``saltelli`` sweep (one grid cell).

    Returns
    -------
    pandas.DataFrame
        Index: the sampled parameters; columns ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` (95 % bootstrap
        half-widths).
    """
    import json

    plan = json.loads((result.out / "plan.json").read_text())
    if plan["method"] != "saltelli":
        raise SweepError("Sobol indices need a sweep with samples.method: saltelli")
    if plan["grid"] and any(len(v) > 1 for v in plan["grid"].values()):
        raise SweepError("Sobol indices are computed for one grid cell: sweep one value of each knob")
    frame = result.frame
    if output not in frame:
        raise SweepError(f"the sweep recorded no {output}; recorded: {', '.join(c for c in frame if '@' in c)}")
    if frame[output].isna().any():
        raise SweepError(f"{frame[output].isna().sum()} points of {output} failed: Sobol indices need every point")
    return sobol_from_samples(plan["sampled"], frame.sort_values("point")[output].to_numpy(dtype=float))


def sobol_from_samples(names, y: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """SALib's Sobol analysis of outputs ``y`` in the order of a Saltelli sample (no second order)."""
    from SALib.analyze import sobol

    problem = {"num_vars": len(names), "names": list(names), "bounds": [[0.0, 1.0]] * len(names)}
    res = sobol.analyze(problem, np.asarray(y, dtype=float), calc_second_order=False, seed=seed)
    return pd.DataFrame(
        {"S1": res["S1"], "S1_conf": res["S1_conf"], "ST": res["ST"], "ST_conf": res["ST_conf"]}, index=list(names)
    )
