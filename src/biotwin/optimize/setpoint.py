"""Choose one set-point of a recipe (a glucose target, a temperature) by a search over refined simulations.

The bolus optimizer (:mod:`biotwin.optimize.feed`) solves one NLP on a fixed grid. That fails for a
set-point whose best value sits where a nutrient just runs out between two samples: the corner moves
with the set-point, and an NLP on a fixed grid places it wrongly and exploits the error (measured on
``glucose_target_14d``: 2684 Ipopt iterations, and a lactate limit of 35 mM exceeded by 0.7 mM on the
refined re-simulation of its answer). Here every trial value is a complete simulation on its own
refined grid (:meth:`biotwin.core.model.Model.simulate`, mesh refinement on), checked against every
limit over the whole run; the search needs only a handful of them:

1. a scan of ``n_scan`` values over the bounds;
2. for each neighbour of the best feasible scan value that breaks a limit, bisection to ``xtol`` on the
   boundary, keeping the feasible end;
3. Brent's bounded minimization (:func:`scipy.optimize.minimize_scalar`) of minus the objective between
   the neighbours of the best feasible value run so far, to ``xtol`` (none when they are closer: a limit
   that binds usually ends the search at the bisection).

The answer is the best feasible value among every simulation run. Assumed, and checked on the scan: the
objective has one maximum in the bracket and the feasible values form an interval there (a scan
with two separate maxima is reported in ``notes``). Every simulation is kept, failed ones with their
error (``evaluations``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from biotwin.core.checks import UnusualValueError, is_number
from biotwin.core.errors import ScenarioError, SolverError

log = logging.getLogger(__name__)


@dataclass
class SetpointResult:
    """The best set-point found, with every simulation the search ran.

    Attributes
    ----------
    parameter, unit : str
        The set-point and its unit.
    optimum : float
        The best feasible set-point [``unit``].
    objective : str
        The variable whose final value was maximized.
    value : float
        Its final value at the optimum [its unit].
    limits : dict
        ``{variable: (lower, upper)}`` applied to the whole run.
    binding : list of str
        Limits broken by a simulation within ``2 xtol`` of the optimum: the optimum sits on them.
    evaluations : pandas.DataFrame
        One row per simulation, in the order run: ``setpoint``, ``stage`` (scan, boundary, refine),
        the objective's final value, each limited variable's extreme (``<var>_max`` / ``<var>_min``),
        ``feasible``, ``seconds``, ``error`` (empty when it solved).
    best : SimulationResult
        The simulation at the optimum.
    notes : list of str
    stats : dict
        ``n_simulations``, ``seconds``.
    """

    parameter: str
    unit: str
    optimum: float
    objective: str
    value: float
    limits: dict
    binding: list
    evaluations: pd.DataFrame
    best: object
    notes: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The trajectory at the optimum (what ``biotwin optimize`` writes)."""
        return self.best.wide

    def summary(self) -> dict:
        """Key numbers: the optimum, the objective, each limit's extreme and margin, the search's cost."""
        row = self.best.wide
        out = {
            "parameter": self.parameter,
            "unit": self.unit,
            "optimum": self.optimum,
            "objective": self.objective,
            "value": self.value,
            "binding": list(self.binding),
            "n_simulations": self.stats.get("n_simulations"),
            "seconds": self.stats.get("seconds"),
            "notes": list(self.notes),
            "limits": {},
        }
        for var, (lo, hi) in self.limits.items():
            entry = {}
            if hi is not None:
                entry.update(limit_max=hi, max=float(row[var].max()))
            if lo is not None:
                entry.update(limit_min=lo, min=float(row[var].min()))
            out["limits"][var] = entry
        return out


def _limits(limits) -> dict:
    out = {}
    for var, spec in (limits or {}).items():
        if isinstance(spec, (tuple, list)):
            if len(spec) != 2:
                raise ScenarioError(f"limits: {var}: expected an upper limit or (lower, upper), got {spec!r}")
            lo, hi = spec
        else:
            lo, hi = None, spec
        for bound in (lo, hi):
            if bound is not None and not is_number(bound):
                raise ScenarioError(f"limits: {var}: {bound!r} is not a finite number")
        if lo is None and hi is None:
            raise ScenarioError(f"limits: {var}: give an upper limit, or (lower, upper)")
        if lo is not None and hi is not None and lo > hi:
            raise ScenarioError(f"limits: {var}: the lower limit {lo:g} is above the upper {hi:g}")
        out[str(var)] = (lo, hi)
    return out


def optimize_setpoint(
    model,
    scenario,
    parameter: str,
    bounds: tuple[float, float],
    objective: str = "titer",
    limits: dict | None = None,
    params: dict | None = None,
    n_scan: int = 5,
    xtol: float | None = None,
    progress=None,
    simulate_options: dict | None = None,
) -> SetpointResult:
    """Maximize the final value of ``objective`` over one recipe set-point, every limit held over the run.

    Parameters
    ----------
    model : biotwin.Model
    scenario : str, path, dict or Scenario
        The recipe; the set-point is the parameter ``parameter`` (for ``mab_fedbatch``'s
        ``glucose_control`` recipes, ``Glc_target`` [mM]).
    parameter : str
        A parameter of the model (``parameters.yaml``).
    bounds : (float, float)
        Lowest and highest set-point tried [the parameter's unit].
    objective : str
        A variable of the model; its value at the end of the run is maximized.
    limits : dict, optional
        ``{variable: upper}`` or ``{variable: (lower, upper)}``, in the variable's unit, held at every
        time of the refined run (e.g. ``{"Lac": 35}`` [mM]).
    params : dict, optional
        Other parameter values (e.g. a calibration's).
    n_scan : int
        Values of the first scan, bounds included (at least 3).
    xtol : float, optional
        Set-point tolerance of the boundary bisection and of Brent's search [the parameter's unit];
        default 1 % of the bounds' width.
    progress : callable, optional
        Called with one line per simulation (default: the module's logger).
    simulate_options : dict, optional
        Passed to :meth:`~biotwin.core.model.Model.simulate` (``nfe``, ``mesh_tol``, ``options``).

    Returns
    -------
    SetpointResult

    Raises
    ------
    ScenarioError
        An unknown parameter, objective or limited variable; bounds not finite and increasing; no
        simulated set-point meets every limit (the message names the least broken one).
    """
    say = progress or log.info
    params = dict(params or {})
    units = model.parameter_units()
    if parameter not in units:
        raise ScenarioError(
            f"'{parameter}' is not a parameter of model '{model.name}' (parameters.yaml); known: {', '.join(units)}"
        )
    if parameter in params:
        raise ScenarioError(f"params: '{parameter}' is the set-point being searched; leave it out of params")
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(is_number(b) for b in bounds)):
        raise ScenarioError(f"bounds: expected (lowest, highest) finite numbers, got {bounds!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ScenarioError(f"bounds: expected lowest < highest, got {bounds!r}")
    # both ends inside the parameter's own bounds (parameters.yaml), refused here rather than as failed runs
    model.parameter_values({parameter: lo}, where=f"bounds of {parameter}")
    model.parameter_values({parameter: hi}, where=f"bounds of {parameter}")
    if not (isinstance(n_scan, int) and n_scan >= 3):
        raise ScenarioError(f"n_scan: expected an integer of at least 3, got {n_scan!r}")
    if xtol is not None and not is_number(xtol):
        raise ScenarioError(f"xtol: expected a number [{units[parameter]}], got {xtol!r}")
    xtol = (hi - lo) / 100.0 if xtol is None else float(xtol)
    if not 0 < xtol < hi - lo:
        raise ScenarioError(f"xtol: expected a positive number below the bounds' width {hi - lo:g}, got {xtol!r}")
    limits = _limits(limits)
    unit = units[parameter]
    runs: dict[float, dict] = {}
    rows: list[dict] = []
    wall0 = time.perf_counter()

    def run(x: float, stage: str) -> dict:
        x = float(x)
        if x in runs:
            return runs[x]
        t0 = time.perf_counter()
        entry = {"setpoint": x, "stage": stage, "result": None, "error": ""}
        try:
            result = model.simulate(scenario, params={**params, parameter: x}, **(simulate_options or {}))
        except UnusualValueError:
            raise  # an input outside its stated range is a mistake to fix, not a failed run
        except (ScenarioError, SolverError) as exc:  # a run that breaks physics or does not converge
            entry["error"] = str(exc)
        else:
            wide = result.wide
            for var in [objective, *limits]:
                if var not in wide.columns:
                    raise ScenarioError(
                        f"'{var}' is not a variable of model '{model.name}'; known: {', '.join(wide.columns[1:])}"
                    )
            entry["result"] = result
            entry["objective"] = float(wide[objective].iloc[-1])
            if not math.isfinite(entry["objective"]):
                entry["result"], entry["error"] = None, f"{objective} at the end is {entry['objective']}"
            margins = {}
            for var, (vlo, vhi) in limits.items():
                if vhi is not None:
                    entry[f"{var}_max"] = float(wide[var].max())
                    margins[f"{var} <= {vhi:g}"] = vhi - entry[f"{var}_max"]
                if vlo is not None:
                    entry[f"{var}_min"] = float(wide[var].min())
                    margins[f"{var} >= {vlo:g}"] = entry[f"{var}_min"] - vlo
            entry["margins"] = margins
        entry["feasible"] = entry["result"] is not None and all(v >= 0 for v in entry.get("margins", {}).values())
        if entry["result"] is None:
            entry.pop("margins", None)
        entry["seconds"] = time.perf_counter() - t0
        runs[x] = entry
        rows.append(entry)
        if entry["result"] is None:
            text = f"failed: {entry['error'].splitlines()[0][:160]}"
        else:
            broken = [k for k, v in entry["margins"].items() if v < 0]
            text = f"{objective} {entry['objective']:.5g}" + (f", breaks {', '.join(broken)}" if broken else "")
        say(
            f"{parameter} = {x:.4g} {unit} ({stage}): {text} "
            f"[{len(rows)} simulations, {time.perf_counter() - wall0:.0f} s]"
        )
        return entry

    scan = [run(x, "scan") for x in np.linspace(lo, hi, n_scan)]
    feasible = [e for e in scan if e["feasible"]]
    if not feasible:
        raise ScenarioError(_nothing_feasible(scan, parameter, unit, lo, hi))
    notes = []
    values = [e["objective"] if e["feasible"] else -math.inf for e in scan]
    peaks = _separate_maxima([(e["setpoint"], e["objective"]) for e in scan if e["feasible"]])
    if len(peaks) > 1:
        where = ", ".join(f"{x:.4g}" for x in peaks)
        notes.append(
            f"the scan has {len(peaks)} separate maxima ({where} {unit}); the search refined the highest only "
            "-- narrow the bounds to study the others"
        )
    i = int(np.argmax(values))
    ends = []
    for j in (i - 1, i + 1):
        if not 0 <= j < n_scan:
            ends.append(scan[i]["setpoint"])
        elif scan[j]["feasible"]:
            ends.append(scan[j]["setpoint"])
        else:  # bisection on the boundary, keeping the feasible end
            good, bad = scan[i]["setpoint"], scan[j]["setpoint"]
            while abs(bad - good) > xtol:
                mid = 0.5 * (good + bad)
                if run(mid, "boundary")["feasible"]:
                    good = mid
                else:
                    bad = mid
            ends.append(good)
    # with one maximum, it lies between the neighbours of the best feasible value run so far
    left, right = min(ends), max(ends)
    tried = sorted((e["setpoint"], e["objective"]) for e in rows if e["feasible"] and left <= e["setpoint"] <= right)
    k = max(range(len(tried)), key=lambda n: tried[n][1])
    left, right = tried[max(k - 1, 0)][0], tried[min(k + 1, len(tried) - 1)][0]
    if right - left > xtol:
        floor = min(e["objective"] for e in rows if e["feasible"])

        def cost(x):
            entry = run(x, "refine")
            return -entry["objective"] if entry["feasible"] else -floor + 1.0 + abs(floor)

        minimize_scalar(cost, bounds=(left, right), method="bounded", options={"xatol": xtol})
    best = max((e for e in rows if e["feasible"]), key=lambda e: e["objective"])
    binding = sorted(
        {
            k
            for e in rows
            if e["result"] is not None and abs(e["setpoint"] - best["setpoint"]) <= 2 * xtol
            for k, v in e["margins"].items()
            if v < 0
        }
    )
    near = [e for e in rows if abs(e["setpoint"] - best["setpoint"]) <= 2 * xtol and e is not best]
    failed = sorted(e["setpoint"] for e in near if e["result"] is None)
    if failed:
        notes.append(
            f"simulations failed next to the answer (at {', '.join(f'{x:.4g}' for x in failed)} {unit}): the search "
            "may have stopped there rather than at a maximum -- see evaluations['error']"
        )
    for end, side in ((lo, "lowest"), (hi, "highest")):
        if abs(best["setpoint"] - end) <= xtol:
            notes.append(f"the answer is at the {side} bound searched ({end:g} {unit}): widen the bounds")
    table = pd.DataFrame(
        [{k: v for k, v in e.items() if k not in ("result", "margins")} for e in rows],
    )
    table = table.rename(columns={"objective": objective})
    seconds = time.perf_counter() - wall0
    kind = f", on the limit {', '.join(binding)}" if binding else (", see the notes" if notes else ", a maximum")
    say(f"best {parameter} = {best['setpoint']:.4g} {unit}: {objective} {best['objective']:.5g}{kind}")
    for note in notes:
        say(f"note: {note}")
    say(f"({len(rows)} simulations, {seconds:.0f} s)")
    return SetpointResult(
        parameter=parameter,
        unit=unit,
        optimum=best["setpoint"],
        objective=objective,
        value=best["objective"],
        limits=limits,
        binding=binding,
        evaluations=table,
        best=best["result"],
        notes=notes,
        stats={"n_simulations": len(rows), "seconds": seconds},
    )


def _separate_maxima(points) -> list[float]:
    """Set-points of the local maxima of ``[(x, y)]`` (solved, feasible runs in order) with a real dip between
    consecutive ones (a plateau or a failed run between two values is no second maximum)."""
    ys = [y for _, y in points]
    peaks: list[int] = []
    for k, y in enumerate(ys):
        left = ys[k - 1] if k > 0 else -math.inf
        right = ys[k + 1] if k + 1 < len(ys) else -math.inf
        if not (y > left and y >= right):
            continue
        if peaks and min(ys[peaks[-1] + 1 : k]) >= min(ys[peaks[-1]], y):
            if y > ys[peaks[-1]]:
                peaks[-1] = k  # no dip between: one maximum, the higher
            continue
        peaks.append(k)
    return [points[k][0] for k in peaks]


def _nothing_feasible(scan, parameter, unit, lo, hi) -> str:
    solved = [e for e in scan if e["result"] is not None]
    if not solved:
        return (
            f"no simulation of the scan {parameter} = {lo:g}..{hi:g} {unit} solved (first error: "
            f"{scan[0]['error'].splitlines()[0][:200]}); check the recipe with model.simulate first"
        )
    worst = {}
    for e in solved:
        for k, v in e["margins"].items():
            worst[k] = max(worst.get(k, -math.inf), v)
    name, margin = min(worst.items(), key=lambda kv: kv[1])
    return (
        f"no set-point {parameter} = {lo:g}..{hi:g} {unit} of the scan meets every limit: {name} is broken by "
        f"{-margin:.4g} at best; relax that limit or move the bounds"
    )


__all__ = ["SetpointResult", "optimize_setpoint"]
