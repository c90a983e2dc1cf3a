"""Minimum-time primary drying: the shelf-temperature (and optionally chamber-pressure) program that
dries fastest while the vial bottom stays below the critical temperature and the sublimation load
stays inside the freeze-dryer's capability.

Formulation (direct collocation of ``model.py``'s equations, a free end time):

* time is scaled, ``t = tau t_f`` with ``tau`` in [0, 1]; only the dried-cake balance has a time
  derivative (the energy balance is quasi-steady), so it becomes ``dLck/dtau = t_f dLck/dt``;
* the end condition is ``Lck(1) = Lpr0`` (all ice gone at ``t_f``); the objective is ``min t_f``;
* the controls are piecewise linear and continuous: free at the element boundaries, linear in between
  (so the optimized recipe is a list of ``[time, value]`` points a freeze-dryer can run);
* at every collocation point ``T_bottom <= T_bottom_max`` and
  ``n_vials dm/dt <= a + b P_chamber`` (equipment capability curve, kg/h with P in Torr; Patel et al.
  2010, Chem Eng Sci 65:5716; LyoPRONTO's ``eq_cap``); optionally ``|dT_shelf/dt| <= ramp`` and a
  fixed shelf temperature at the start (``initial_C``, where the frozen load sits).

Started from a constant-shelf recipe at the critical temperature (always temperature-feasible: the
product is colder than the shelf while it sublimes), simulated by the simulation engine.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from biotwin.core.units import conversion
from biotwin.processes.freeze_drying import vapour_pressure_ice

ZERO_CELSIUS = 273.15


@dataclass
class CycleOptimizationResult:
    """An optimized primary-drying cycle.

    Attributes
    ----------
    table : pandas.DataFrame
        The optimal trajectory at every collocation point: ``time_h, T_sublimation_C, T_bottom_C,
        T_shelf_C, P_chamber_mTorr, flux_kg_per_h_m2, percent_dried, sublimation_kg_per_h`` (all
        vials) and ``equipment_capacity_kg_per_h``.
    recipe : dict
        The optimized scenario (the input recipe with the optimized programs), ready for
        ``model.simulate``.
    drying_time_h : float
    limits : dict
        ``T_bottom_max_C`` and the equipment curve applied.
    verification : dict
        The optimized recipe re-simulated by the simulation engine on its own grid.
    stats : dict
    """

    table: pd.DataFrame
    recipe: dict
    drying_time_h: float
    limits: dict
    verification: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Key numbers, in the CLI summary's form."""
        t = self.table
        out = {
            "primary_drying_time_h": self.drying_time_h,
            "max_T_bottom_C": float(t["T_bottom_C"].max()),
            "final_flux_kg_per_h_m2": float(t["flux_kg_per_h_m2"].iloc[-1]),
            "T_bottom_max_C": self.limits["T_bottom_max_C"],
            "margin_C": self.limits.get("margin_C", 0.0),
        }
        if self.limits.get("equipment"):
            out["max_equipment_load_fraction"] = float(
                (t["sublimation_kg_per_h"] / t["equipment_capacity_kg_per_h"]).max()
            )
        out["shelf_temperature_C"] = self.recipe["shelf_temperature"]["points"]  # [[time_h, degC], ...]
        out["chamber_pressure_mTorr"] = self.recipe["chamber_pressure"]["points"]  # [[time_h, mTorr], ...]
        out["verification"] = self.verification
        out["stats"] = self.stats
        return out


def optimize_config():
    """The recipe's ``optimize`` block (``pyomo.common.config``); every quantity a value with its unit::

    optimize:
      shelf_temperature: {min: -50 degC, max: 60 degC, ramp: 1 degC/min, initial: -35 degC}
      chamber_pressure: {min: 50 mtorr, max: 2000 mtorr}      # optional: a free pressure program
      constraints: {T_bottom_max: -5 degC, margin: 2 K, equipment: {a: -0.182 kg/h, b: 11.7 kg/h/torr, n_vials: 398}}
    """
    from pyomo.common.config import ConfigDict, ConfigValue

    from biotwin.core.model import helper_module
    from biotwin.core.schema import Quantity

    c = ConfigDict(description="minimum-time primary drying")
    shelf = c.declare("shelf_temperature", ConfigDict(description="the shelf program the optimizer chooses"))
    shelf.declare("min", ConfigValue(domain=Quantity("degC"), default=None, description="lowest shelf [degC]"))
    shelf.declare("max", ConfigValue(domain=Quantity("degC"), default=None, description="highest shelf [degC]"))
    shelf.declare(
        "ramp",
        ConfigValue(domain=Quantity("K/min", positive=True, difference=True), default=None, description="[K/min]"),
    )
    shelf.declare("initial", ConfigValue(domain=Quantity("degC"), default=None, description="start [degC]"))
    pressure = c.declare("chamber_pressure", ConfigDict(description="free chamber pressure (optional)"))
    pressure.declare("min", ConfigValue(domain=Quantity("mtorr", positive=True), default=None))
    pressure.declare("max", ConfigValue(domain=Quantity("mtorr", positive=True), default=None))
    limits = c.declare("constraints", ConfigDict())
    limits.declare("T_bottom_max", ConfigValue(domain=Quantity("degC"), default=None, description="[degC]"))
    # a safety margin below the limit (an average vial on the limit leaves none for the warmer ones)
    limits.declare(
        "margin",
        ConfigValue(domain=Quantity("K", non_negative=True, difference=True), default="0 K", description="[K]"),
    )
    limits.declare("equipment", helper_module(__file__, "recipe").equipment_config())
    return c


def read_optimize_block(raw: dict, where: str) -> dict:
    """Validate a scenario's ``optimize`` block (:func:`optimize_config`); return controls and limits in K, torr."""
    from biotwin.core.errors import ScenarioError
    from biotwin.core.schema import quantity_in, validate

    if raw.get("optimize") is None:
        raise ScenarioError(f"{where}: no 'optimize' block (which controls are free, and the constraints)")
    block = raw["optimize"]
    if not isinstance(block, dict) or "shelf_temperature" not in block:
        raise ScenarioError(f"{where}: optimize: give at least shelf_temperature: {{min: ..., max: ...}}")
    cfg = validate(optimize_config(), block, f"{where}: optimize")
    controls = {}
    shelf = cfg.shelf_temperature
    missing = [k for k in ("min", "max") if shelf[k] is None]
    if missing:
        raise ScenarioError(
            f"{where}: optimize.shelf_temperature: missing {missing} (e.g. min: -50 degC, max: 60 degC)"
        )
    if shelf.max <= shelf.min:
        raise ScenarioError(
            f"{where}: optimize.shelf_temperature: min {shelf.min:g} degC must be below max {shelf.max:g}"
        )
    if shelf.initial is not None and not shelf.min <= shelf.initial <= shelf.max:
        raise ScenarioError(
            f"{where}: optimize.shelf_temperature.initial {shelf.initial:g} degC is outside "
            f"[{shelf.min:g}, {shelf.max:g}]"
        )
    controls["T_shelf"] = {
        "bounds": (shelf.min + ZERO_CELSIUS, shelf.max + ZERO_CELSIUS),
        "ramp_K_per_h": shelf.ramp and shelf.ramp * 60,
        "initial_K": None if shelf.initial is None else shelf.initial + ZERO_CELSIUS,
    }
    pressure = cfg.chamber_pressure
    if "chamber_pressure" in block:
        if pressure.min is None or pressure.max is None:
            raise ScenarioError(f"{where}: optimize.chamber_pressure: give min and max (e.g. 50 mtorr, 2000 mtorr)")
        if pressure.max <= pressure.min:
            raise ScenarioError(
                f"{where}: optimize.chamber_pressure: min {pressure.min:g} mTorr must be below max {pressure.max:g}"
            )
        controls["P_chamber"] = {"bounds": (pressure.min * 1e-3, pressure.max * 1e-3), "ramp_K_per_h": None,
                                 "initial_K": None}  # fmt: skip
    t_max = cfg.constraints.T_bottom_max
    if t_max is None:
        critical = (raw.get("product") or {}).get("T_critical")
        if critical is None:
            raise ScenarioError(f"{where}: give optimize.constraints.T_bottom_max or product.T_critical")
        t_max = quantity_in(critical, "degC")
    margin = float(cfg.constraints.margin)
    if margin > 20.0:
        raise ScenarioError(f"{where}: optimize.constraints.margin must be in [0, 20] K, got {margin:g}")
    t_max -= margin
    equipment = None
    eq = cfg.constraints.equipment
    given = (block.get("constraints") or {}).get("equipment")
    if given is not None:
        missing = [k for k in ("a", "b", "n_vials") if eq[k] is None]
        if missing:
            raise ScenarioError(f"{where}: optimize.constraints.equipment: missing {missing}")
        equipment = {"a_kg_per_h": float(eq.a), "b_kg_per_h_per_Torr": float(eq.b), "n_vials": float(eq.n_vials)}
    _check_sublimation_possible(raw, controls, t_max, where)
    return {"controls": controls, "T_bottom_max_C": t_max, "margin_C": margin, "equipment": equipment}


def _check_sublimation_possible(raw, controls, t_max_C, where):
    """Refuse a limit at which ice cannot sublime at any allowed chamber pressure (an infeasible problem).

    The product is at most ``t_max_C`` at its bottom, so the ice vapour pressure at the front is at most
    ``Psub(t_max_C)``; nothing sublimes unless the chamber pressure is below it.
    """
    from biotwin.core.errors import ScenarioError
    from biotwin.core.parameters import default_values

    ice = default_values(Path(__file__).with_name("parameters.yaml"))
    psub_mtorr = vapour_pressure_ice(t_max_C + ZERO_CELSIUS, ice["psub_A"], ice["psub_B"]) * 1e3
    if "P_chamber" in controls:
        p_min = controls["P_chamber"]["bounds"][0] * 1e3
        what = "the lowest allowed chamber pressure (optimize.chamber_pressure.min)"
    else:
        from biotwin.core.schema import points_in

        try:
            values = [v for _, v in points_in(raw.get("chamber_pressure"), "mtorr")]
        except ValueError:
            return  # the recipe reader reports the program
        p_min = float(min(values))
        what = "the lowest chamber pressure of the recipe"
    if p_min >= psub_mtorr:
        raise ScenarioError(
            f"{where}: infeasible optimization: with the product kept below T_bottom_max_C {t_max_C:g} degC the ice "
            f"vapour pressure is at most {psub_mtorr:.3g} mTorr, but {what} is {p_min:g} mTorr, so no ice can "
            "sublime; raise T_bottom_max_C or lower the chamber pressure"
        )


def _constant_recipe(raw, shelf_C, pressure_mTorr, hours):
    from biotwin.core.model import helper_module

    base = {k: v for k, v in raw.items() if k != "optimize"}
    return helper_module(__file__, "recipe").with_programs(
        base, [[0.0, shelf_C], [hours, shelf_C]], [[0.0, pressure_mTorr], [hours, pressure_mTorr]]
    )


def simulate_until_dry(model, raw, shelf_C, pressure_mTorr, nfe=60, max_hours=400.0):
    """Simulate a constant shelf and pressure long enough to finish primary drying.

    Returns (result, drying time [h]); the recipe is held 40 h, then 120 h, ... up to ``max_hours``.
    """
    from biotwin.core.errors import ScenarioError

    hours = 40.0
    while True:
        result = model.simulate(scenario=_constant_recipe(raw, shelf_C, pressure_mTorr, hours), nfe=nfe)
        try:
            return result, model.module.primary_drying_end(result)
        except ScenarioError:
            if hours >= max_hours:
                raise ScenarioError(
                    f"the starting recipe ({shelf_C} degC) does not finish primary drying within {max_hours} h"
                ) from None
            hours *= 3


def optimize_cycle(model, scenario, nfe=40, ncp=3, options=None, progress=None) -> CycleOptimizationResult:
    """Minimize the primary-drying time of a lyophilization scenario with an ``optimize`` block.

    Parameters
    ----------
    model : biotwin.Model
        The lyophilization model.
    scenario : str, path or dict
        A lyophilization scenario with an ``optimize`` block (see the model card).
    nfe, ncp : int
        Finite elements (uniform in scaled time) and Radau points per element.
    options : dict, optional
        Ipopt options.
    progress : callable, optional
        Called with short status strings.

    Returns
    -------
    CycleOptimizationResult
    """
    from biotwin.core.errors import ScenarioError
    from biotwin.core.model import helper_module
    from biotwin.core.scenario import Scenario
    from biotwin.engine.simulation import Simulation
    from biotwin.engine.solver import solve

    say = progress or (lambda text: None)
    wall0 = time.perf_counter()
    sc = model.load_scenario(scenario)
    raw = sc.raw
    spec = read_optimize_block(raw, sc.source)
    controls = spec["controls"]
    shelf_lo, shelf_hi = controls["T_shelf"]["bounds"]
    t_max_K = spec["T_bottom_max_C"] + ZERO_CELSIUS
    pressure_points = np.asarray(model.module.recipe_programs(raw)[1], dtype=float)
    if "P_chamber" in controls:
        p_lo, p_hi = controls["P_chamber"]["bounds"]
        p0 = float(np.clip(pressure_points[0, 1] * 1e-3, p_lo, p_hi))
    else:
        if np.ptp(pressure_points[:, 1]) > 0:
            raise ScenarioError(
                f"{sc.source}: with a fixed chamber pressure the optimization needs a constant "
                "chamber_pressure program (or make the pressure a free control)"
            )
        p0 = float(pressure_points[0, 1]) * 1e-3
    # start: constant shelf at the critical temperature (within the bounds)
    shelf0_K = float(np.clip(t_max_K, shelf_lo, shelf_hi))
    say(f"starting point: constant shelf {shelf0_K - ZERO_CELSIUS:.1f} degC at {p0 * 1e3:.0f} mTorr")
    start, t_dry0 = simulate_until_dry(model, raw, shelf0_K - ZERO_CELSIUS, p0 * 1e3)

    # the scaled-time problem: the model over tau in [0, 1] (its time unit nominally), no secondary drying
    generic = Scenario(
        name="cycle-optimization",
        t_end=1.0,
        settings={"secondary_drying": False},
        parameters=dict(sc.parameters),
        inputs={
            "T_shelf": {"unit": "K", "points": [[0.0, shelf0_K], [1.0, shelf0_K]]},
            "P_chamber": {"unit": "torr", "points": [[0.0, p0], [1.0, p0]]},
        },
        source=sc.source,
    )
    # the grid as given: the optimizer moves the shelf and pressure, which a grid refined for the start would not fit
    m = Simulation(model, generic, nfe=nfe, ncp=ncp, use_cache=False, progress=progress, mesh_tol=None).pyomo_model
    u = pyo.units
    taus = list(m.t)
    for tau in taus:
        row = start.interpolate(tau * t_dry0, columns=("Lck", "T_sub"))
        m.Lck[tau].set_value(row["Lck"])
        m.T_sub[tau].set_value(row["T_sub"])
        m.dLck[tau].set_value(t_dry0 * float(pyo.value(m.cake_growth_rate[tau])))

    m.t_final = pyo.Var(bounds=(1e-3, 1e4), initialize=t_dry0, units=u.h, doc="primary drying time [h]")
    m.cake_growth.deactivate()
    m.scaled_cake_growth = pyo.Constraint(m.t, rule=lambda m, t: m.dLck[t] == m.t_final / u.h * m.cake_growth_rate[t])
    m.dried_at_end = pyo.Constraint(expr=m.Lck[taus[-1]] == m.Lpr0)
    m.temperature_limit = pyo.Constraint(m.t, rule=lambda m, t: m.T_bottom[t] <= t_max_K * u.K)
    equipment = spec["equipment"]
    if equipment:
        n, a, b = equipment["n_vials"], equipment["a_kg_per_h"], equipment["b_kg_per_h_per_Torr"]
        to_kg_per_h = conversion(m.sublimation_rate[taus[0]], u.kg / u.h)  # read once, not at every point
        m.equipment_limit = pyo.Constraint(
            m.t,
            rule=lambda m, t: n * to_kg_per_h * m.sublimation_rate[t] <= (a + b * m.P_chamber[t] / u.torr) * u.kg / u.h,
        )

    if "P_chamber" in controls:
        # a chamber above the ice's vapour pressure would condense water onto the product, which this
        # quasi-steady model cannot describe (it would only stop sublimation and put the product at the
        # shelf temperature at once, with no heat capacity): the pressure stays below P_sub
        m.no_condensation = pyo.Constraint(m.t, rule=lambda m, t: m.P_chamber[t] <= m.P_sub[t])

    # piecewise-linear continuous controls: free at element boundaries, linear inside elements
    boundaries = list(m.t.get_finite_elements())
    m.control_shape = pyo.ConstraintList()
    free = {"T_shelf": m.T_shelf}
    if "P_chamber" in controls:
        free["P_chamber"] = m.P_chamber
    for name, var in free.items():
        lo, hi = controls[name]["bounds"]
        for tau in taus:
            var[tau].unfix()
            var[tau].setlb(lo)
            var[tau].setub(hi)
        for a_, b_ in itertools.pairwise(boundaries):
            for tau in taus:
                if a_ < tau < b_:
                    m.control_shape.add(var[tau] == var[a_] + (tau - a_) / (b_ - a_) * (var[b_] - var[a_]))
    if controls["T_shelf"].get("initial_K") is not None:  # the shelf starts where the load was frozen
        m.T_shelf[taus[0]].fix(controls["T_shelf"]["initial_K"])
    ramp = controls["T_shelf"].get("ramp_K_per_h")
    if ramp:
        m.ramp_limit = pyo.ConstraintList()
        for a_, b_ in itertools.pairwise(boundaries):
            m.ramp_limit.add(m.T_shelf[b_] - m.T_shelf[a_] <= ramp * u.K / u.h * m.t_final * (b_ - a_))
            m.ramp_limit.add(m.T_shelf[a_] - m.T_shelf[b_] <= ramp * u.K / u.h * m.t_final * (b_ - a_))
    m.drying_time = pyo.Objective(expr=m.t_final / u.h)
    say(f"optimizing the cycle ({len(boundaries) - 1} elements x {ncp} points, controls: {', '.join(free)})")
    core_log = logging.getLogger("pyomo.core")
    level = core_log.level
    core_log.setLevel(logging.ERROR)  # Ipopt may leave a control 1e-8 outside its bound (bound relaxation)
    try:
        stats = solve(m, options=options, what=f"cycle optimization of {model.name}")
    finally:
        core_log.setLevel(level)
    t_f = float(pyo.value(m.t_final))

    table = pd.DataFrame(
        {
            "time_h": [tau * t_f for tau in taus],
            "T_sublimation_C": [pyo.value(m.T_sub[t]) - ZERO_CELSIUS for t in taus],
            "T_bottom_C": [pyo.value(m.T_bottom[t]) - ZERO_CELSIUS for t in taus],
            "T_shelf_C": [pyo.value(m.T_shelf[t]) - ZERO_CELSIUS for t in taus],
            "P_chamber_mTorr": [pyo.value(m.P_chamber[t]) * 1e3 for t in taus],
            "flux_kg_per_h_m2": [pyo.value(m.flux[t]) for t in taus],
            "percent_dried": [100.0 * pyo.value(m.Lck[t] / m.Lpr0) for t in taus],  # as LyoPRONTO: from Lck
        }
    )
    if equipment:
        table["sublimation_kg_per_h"] = [n * pyo.value(m.sublimation_rate[t]) / 1000.0 for t in taus]
        table["equipment_capacity_kg_per_h"] = a + b * table["P_chamber_mTorr"] / 1000.0
    recipe_mod = helper_module(__file__, "recipe")
    shelf_points = [[round(b_ * t_f, 6), round(float(pyo.value(m.T_shelf[b_])) - ZERO_CELSIUS, 4)] for b_ in boundaries]
    pressure_points = [[round(b_ * t_f, 6), round(float(pyo.value(m.P_chamber[b_])) * 1e3, 4)] for b_ in boundaries]
    recipe = recipe_mod.with_programs({k: v for k, v in raw.items() if k != "optimize"}, shelf_points, pressure_points)
    recipe["description"] = f"optimized primary drying ({t_f:.3f} h) from {sc.source}"
    limits = {"T_bottom_max_C": spec["T_bottom_max_C"], "margin_C": spec["margin_C"], "equipment": equipment}
    wall_opt = time.perf_counter() - wall0

    # verification: the recipe, held at its last values for 10 % longer, on the simulator's own grid
    say("re-simulating the optimized recipe")
    hold = 0.1 * t_f
    check = recipe_mod.with_programs(
        recipe,
        shelf_points + [[t_f + hold, shelf_points[-1][1]]],
        pressure_points + [[t_f + hold, pressure_points[-1][1]]],
    )
    resim = model.simulate(scenario=check, nfe=4 * nfe)
    t_check = model.module.primary_drying_end(resim)
    dry = resim.wide[resim.wide["time"] <= t_check]
    verification = {
        "primary_drying_time_h": t_check,
        "max_T_bottom_C": float(dry["T_bottom"].max() - ZERO_CELSIUS),
        "n_elements": 4 * nfe,
    }
    stats_out = {
        "iterations": stats.iterations,
        "termination": stats.termination_condition,
        "optimization_wall_time_s": wall_opt,
        "wall_time_s": time.perf_counter() - wall0,
        "start_constant_shelf_C": shelf0_K - ZERO_CELSIUS,
        "start_drying_time_h": t_dry0,
        "n_elements": len(boundaries) - 1,
        "ncp": ncp,
    }
    return CycleOptimizationResult(table, recipe, t_f, limits, verification, stats_out)


def best_constant_shelf(model, scenario, tolerance_C=0.01, nfe=80, progress=None) -> dict:
    """The warmest constant shelf temperature that respects the scenario's optimize constraints.

    Bisection on the shelf temperature (within the optimize block's bounds) at the scenario's
    (constant) chamber pressure, each candidate simulated until dry; a candidate passes when the
    vial bottom stays below ``T_bottom_max_C`` and the sublimation load below the equipment curve
    at every collocation point. The comparison baseline for :func:`optimize_cycle`.

    Returns
    -------
    dict
        ``shelf_C``, ``primary_drying_time_h``, ``max_T_bottom_C``, ``max_equipment_load_fraction``.
    """
    sc = model.load_scenario(scenario)
    raw = sc.raw
    spec = read_optimize_block(raw, sc.source)
    lo, hi = (b - ZERO_CELSIUS for b in spec["controls"]["T_shelf"]["bounds"])
    pressure = float(model.module.recipe_programs(raw)[1][0][1])  # [mTorr]
    equipment = spec["equipment"]
    say = progress or (lambda text: None)

    def check(shelf_C):
        result, t_dry = simulate_until_dry(model, raw, shelf_C, pressure, nfe=nfe)
        w = result.wide[result.wide["time"] <= t_dry]
        load = 0.0
        if equipment:
            cap = equipment["a_kg_per_h"] + equipment["b_kg_per_h_per_Torr"] * pressure * 1e-3
            load = float((equipment["n_vials"] * w["sublimation_rate"] / 1000.0).max() / cap)
        max_t = float(w["T_bottom"].max() - ZERO_CELSIUS)
        ok = max_t <= spec["T_bottom_max_C"] and load <= 1.0
        say(
            f"constant shelf {shelf_C:.3f} degC: dry at {t_dry:.3f} h, max T_bottom {max_t:.2f} degC, "
            f"load {load:.2f} -> {'ok' if ok else 'violates'}"
        )
        return ok, {
            "shelf_C": shelf_C,
            "primary_drying_time_h": t_dry,
            "max_T_bottom_C": max_t,
            "max_equipment_load_fraction": load,
        }

    # a shelf at the critical temperature keeps the product below it (the product is colder than
    # the shelf while it sublimes): the bisection starts from there
    lo = float(np.clip(spec["T_bottom_max_C"], lo, hi))
    ok, best = check(lo)
    if not ok:
        raise ValueError(
            f"a constant shelf at {lo} degC already violates the constraints "
            f"(equipment load {best['max_equipment_load_fraction']:.2f})"
        )
    top_ok, top = check(hi)
    if top_ok:
        return top
    while hi - lo > tolerance_C:
        mid = 0.5 * (lo + hi)
        ok, info = check(mid)
        if ok:
            lo, best = mid, info
        else:
            hi = mid
    return best
