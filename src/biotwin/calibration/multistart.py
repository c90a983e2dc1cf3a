"""Multi-start: Latin-hypercube starting points in the bounds, solved in parallel processes."""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
from scipy.stats import qmc


def search_box(parameters):
    """Finite sampling ranges: the bounds, with open sides replaced by a decade around the start."""
    box = []
    for p in parameters:
        lo, hi = p.lower, p.upper
        ref = abs(p.start) if p.start != 0 else p.scale
        if lo is None:
            lo = (hi - 10 * ref) if hi is not None else p.start - 10 * ref
        if hi is None:
            hi = max(lo + ref, 10 * max(abs(p.start), abs(lo), p.scale))
        box.append((float(lo), float(hi)))
    return box


def latin_hypercube_starts(parameters, count, seed):
    """``count`` starting points ``{label: value}``; log-uniform on positive ranges spanning > 2 decades."""
    box = search_box(parameters)
    unit = qmc.LatinHypercube(d=len(box), seed=seed).random(count)
    starts = []
    for row in unit:
        start = {}
        for (lo, hi), u, p in zip(box, row, parameters):
            if lo > 0 and hi / lo > 100:
                start[p.label] = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
            else:
                start[p.label] = lo + u * (hi - lo)
        starts.append(start)
    return starts


def _solve_from(spec, start):
    """Worker: build the problem from ``start`` and solve it (runs in a child process)."""
    from biotwin.core._config import configure_pyomo_config_dir

    configure_pyomo_config_dir()  # the PyNumero library path, as importing biotwin does
    from biotwin.calibration.problem import EstimationProblem
    from biotwin.core.checks import allow_unusual
    from biotwin.core.errors import BiotwinError
    from biotwin.core.model import load_model
    from biotwin.engine.solver import solve

    try:
        with allow_unusual(spec.get("allow_unusual", False)):  # the parent's permission, in this process too
            problem = EstimationProblem(
                load_model(spec["model_folder"]),
                spec["experiments"],
                spec["estimate"],
                spec["local"],
                start,
                spec["sigma"],
                spec["nfe"],
                spec["ncp"],
                spec["options"],
            )
            problem.build()
        stats = solve(problem.m, options=spec["options"], what="multi-start calibration")
        return {
            "start": start,
            "status": stats.termination_condition,
            "objective": problem.objective(),
            "values": problem.values().tolist(),
            "iterations": stats.iterations,
        }
    except BiotwinError as exc:
        return {
            "start": start,
            "status": f"failed: {str(exc)[:300]}",
            "objective": None,
            "values": None,
            "iterations": None,
        }


def run_multistart(spec, parameters, count, seed, workers=None, progress=None):
    """Solve from ``count`` Latin-hypercube starts; return every run, best first."""
    say = progress or (lambda text: None)
    starts = latin_hypercube_starts(parameters, count, seed)
    workers = workers or min(count, os.cpu_count() or 1)
    runs = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_solve_from, spec, s) for s in starts]
        for i, future in enumerate(as_completed(futures), 1):
            run = future.result()
            runs.append(run)
            obj = run["objective"]
            say(f"multi-start {i}/{count}: " + (f"objective {obj:.6g}" if obj is not None else run["status"]))
    runs.sort(key=lambda r: (r["objective"] is None, r["objective"] if r["objective"] is not None else 0))
    return runs


def distinct_optima(runs, labels, rel_obj=1e-6, rel_par=1e-3):
    """Group converged runs into distinct local optima (objective and parameters both close)."""
    optima = []
    for run in runs:
        if run["objective"] is None:
            continue
        values = np.asarray(run["values"])
        for opt in optima:
            same_obj = abs(run["objective"] - opt["objective"]) <= rel_obj * (1 + abs(opt["objective"]))
            same_par = np.all(np.abs(values - opt["_values"]) <= rel_par * (1 + np.abs(opt["_values"])))
            if same_obj and same_par:
                opt["count"] += 1
                break
        else:
            optima.append({"objective": run["objective"], "_values": values, "count": 1})
    return [
        {"objective": o["objective"], "count": o["count"], "parameters": dict(zip(labels, o["_values"].tolist()))}
        for o in optima
    ]
