"""Robust primary-drying cycle: the fastest recipe that keeps every vial class below the critical
temperature with a stated probability across parameter uncertainty (issue #18 item 3).

A deterministic optimum puts one average vial exactly on the critical temperature; warmer vials and
uncertain resistances then cross it about half the time. The robust design here:

1. **Worst vial class.** The optimizer constrains the class with the largest heat transfer (edge vials:
   ``KC`` and ``KP`` times ``edge_factor``; Rambhatla & Pikal 2003, AAPS PharmSciTech 4(2):E14), so the
   warmest vials set the limit and every other class runs colder.
2. **Back-off from sensitivities.** At the current recipe the edge vial's maximum product temperature
   ``T`` is differentiated (finite differences in each parameter's standard-normal coordinate ``z_i``) and
   its standard deviation across the uncertainty is ``sigma_T = sqrt(sum_i (dT/dz_i)^2)``; the optimizer is
   re-run with the limit backed off by ``b = z_(1-risk) sigma_T`` until ``b`` moves by less than 0.05 K.
3. **The cycle's drying time** is that of its slowest vial (the nominal centre vial): the optimized shelf
   and pressure programs are held at their last values until it is dry.
4. **Check by sampling** (:func:`check_by_sampling`): Latin-hypercube samples of the uncertain parameters,
   every class simulated on the robust recipe (``biotwin.sweep``); the share of samples in which any class
   exceeds the critical temperature, with its Monte Carlo standard error. The linearization is a design
   rule; the sampling is the evidence.

The uncertainty is stated relative to the recipe's own values, e.g.
``{"R0": {"dist": "lognormal", "rsd": 0.25}, "KC": {"dist": "normal", "rsd": 0.07}}``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from biotwin import ScenarioError
from biotwin.core.schema import quantity_in

#: Shelf and pressure programs are held this multiple of the edge vial's drying time (the slowest vial,
#: with the largest resistance sampled, must finish primary drying inside the recipe).
HOLD_FACTOR = 4.0
STEP_Z = 0.1  # finite-difference step in standard-normal units
EDGE_FACTOR = 1.3  # proposed: edge vials' Kv relative to centre vials (Rambhatla & Pikal 2003)


@dataclass
class RobustCycleResult:
    """A robust primary-drying cycle next to the deterministic optimum.

    Attributes
    ----------
    recipe : dict
        The robust recipe (nominal vial parameters; programs held until the slowest vial is dry).
    back_off_K : float
        Margin below the critical temperature the edge vial is optimized to [K].
    sigma_T_K : float
        Linearized standard deviation of the edge vial's maximum product temperature [K].
    sensitivities_K : dict
        ``dT/dz_i`` per uncertain parameter [K per standard deviation].
    drying_time_h, deterministic_drying_time_h : float
        Primary drying of the slowest (nominal centre) vial on the robust recipe, and of the nominal vial
        on the deterministic optimum (no margin, no vial classes) [h].
    price_h : float
        ``drying_time_h - deterministic_drying_time_h`` [h].
    iterations : list of dict
        Back-off, sigma and edge-vial drying time per optimizer run.
    """

    recipe: dict
    back_off_K: float
    sigma_T_K: float
    sensitivities_K: dict
    drying_time_h: float
    deterministic_drying_time_h: float
    deterministic_recipe: dict
    T_critical_C: float
    risk: float
    edge_factor: float
    uncertainty: dict
    iterations: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def price_h(self) -> float:
        return self.drying_time_h - self.deterministic_drying_time_h


def _held(recipe: dict, t_dry: float) -> dict:
    """The recipe's shelf and pressure programs cut at ``t_dry`` [h] and held to ``HOLD_FACTOR * t_dry``."""
    out = {k: v for k, v in copy.deepcopy(recipe).items() if k != "optimize"}
    end = HOLD_FACTOR * t_dry
    for key in ("shelf_temperature", "chamber_pressure"):
        points = [list(map(float, p)) for p in out[key]["points"]]
        t = [p[0] for p in points]
        last = float(np.interp(t_dry, t, [p[1] for p in points])) if t[-1] >= t_dry else points[-1][1]
        kept = [p for p in points if p[0] < t_dry] + [[t_dry, last]]
        out[key] = {"unit": out[key]["unit"], "points": kept + [[end, last]]}
    return out


def _scaled(values: dict, names, factor: float) -> dict:
    return {k: (v * factor if k in names else v) for k, v in values.items()}


def _z_value(value: float, spec: dict, z: float) -> float:
    """The parameter at standard-normal coordinate ``z`` of its (relative) distribution."""
    kind, rsd = spec["dist"], float(spec["rsd"])
    if kind == "lognormal":
        return value * math.exp(math.sqrt(math.log1p(rsd * rsd)) * z)
    if kind == "normal":
        return value * (1.0 + rsd * z)
    raise ScenarioError(f"uncertainty: dist must be lognormal or normal (relative sd 'rsd'), got {kind!r}")


def _check_uncertainty(model, uncertainty: dict) -> None:
    known = model.parameter_units()
    for name, spec in uncertainty.items():
        if name not in known:
            raise ScenarioError(f"uncertainty: unknown parameter {name!r}; parameters: {', '.join(known)}")
        if not isinstance(spec, dict) or set(spec) != {"dist", "rsd"}:
            raise ScenarioError(
                f"uncertainty: {name}: give {{dist: lognormal|normal, rsd: <relative sd>}}, got {spec!r}"
            )
        rsd = spec["rsd"]
        if isinstance(rsd, bool) or not isinstance(rsd, (int, float)) or not 0 <= rsd < 1:
            raise ScenarioError(
                f"uncertainty: {name}: rsd must be a relative standard deviation in [0, 1), got {rsd!r}"
            )
        _z_value(1.0, spec, 0.0)


def robust_cycle(
    model,
    scenario,
    uncertainty: dict,
    risk: float = 0.01,
    edge_factor: float = EDGE_FACTOR,
    nfe: int = 40,
    sim_nfe: int = 60,
    max_iterations: int = 5,
    tolerance_K: float = 0.05,
    progress=None,
) -> RobustCycleResult:
    """The fastest cycle whose warmest vials stay below critical with probability ``1 - risk``.

    Parameters
    ----------
    model : biotwin.Model
        The lyophilization model.
    scenario : str, path or dict
        A scenario with an ``optimize`` block (its ``margin`` is replaced by the back-off).
    uncertainty : dict
        ``{parameter: {"dist": "lognormal"|"normal", "rsd": relative sd}}`` around the recipe's values.
    risk : float
        Allowed probability that a vial exceeds the critical temperature [-].
    edge_factor : float
        Edge vials' ``KC`` and ``KP`` relative to the centre vials' [-] (1 for one vial class).
    nfe, sim_nfe : int
        Finite elements of the optimization and of the simulations.
    """
    opt = model.submodule("cycle_optimization")
    say = progress or (lambda text: None)
    wall0 = time.perf_counter()
    if not 0 < risk < 0.5:
        raise ScenarioError(f"risk must be a probability in (0, 0.5), got {risk!r}")
    if not 1.0 <= edge_factor <= 3.0:
        raise ScenarioError(f"edge_factor must be in [1, 3] (edge vials receive more heat), got {edge_factor!r}")
    _check_uncertainty(model, uncertainty)
    sc = model.load_scenario(scenario)
    raw = copy.deepcopy(sc.raw)
    if "optimize" not in raw:
        raise ScenarioError(f"{sc.source}: a robust cycle needs a scenario with an optimize block")
    nominal = model.parameter_values(sc.parameters)
    t_crit = opt.read_optimize_block(raw, sc.source)["T_bottom_max_C"] + quantity_in(
        (raw["optimize"].get("constraints") or {}).get("margin", "0 K"), "K", difference=True
    )  # the limit itself, before the recipe's own margin
    z = float(stats.norm.ppf(1.0 - risk))

    def optimized(margin, heat_factor):
        r = copy.deepcopy(raw)
        r["optimize"].setdefault("constraints", {})["margin"] = {"value": float(margin), "unit": "K"}
        ht = r.setdefault("heat_transfer", {})
        for key, unit in (("KC", "cal/s/K/cm^2"), ("KP", "cal/s/K/cm^2/torr")):
            value = quantity_in(ht[key], unit) if key in ht else nominal[key]
            ht[key] = {"value": value * heat_factor, "unit": unit}
        result = opt.optimize_cycle(model, r, nfe=nfe)
        recipe = copy.deepcopy(result.recipe)
        recipe["heat_transfer"] = copy.deepcopy(raw.get("heat_transfer") or {})  # the recipe runs every vial class
        return _held(recipe, result.drying_time_h), result.drying_time_h

    def summary(recipe, values):  # the key numbers of one simulated vial
        return model.summary(model.simulate(scenario=recipe, params=values, nfe=sim_nfe))

    say("deterministic optimum: the nominal vial on the critical temperature")
    det_recipe, _ = optimized(0.0, 1.0)
    det_time = summary(det_recipe, nominal)["primary_drying_time_h"]
    edge = _scaled(nominal, ("KC", "KP"), edge_factor)
    back_off, history = 0.0, []
    for k in range(max_iterations):
        say(f"optimizing the edge vial {back_off:.2f} K below {t_crit:g} degC (run {k + 1})")
        recipe, edge_time = optimized(back_off, edge_factor)
        base = summary(recipe, edge)["max_T_bottom_C"]
        sens = {}
        for name, spec in uncertainty.items():
            moved = dict(edge, **{name: _z_value(edge[name], spec, STEP_Z)})
            sens[name] = (summary(recipe, moved)["max_T_bottom_C"] - base) / STEP_Z
        sigma = math.sqrt(sum(v * v for v in sens.values()))
        new = z * sigma
        history.append(
            {"back_off_K": back_off, "edge_max_T_C": base, "sigma_T_K": sigma, "edge_drying_time_h": edge_time}
        )
        say(f"  edge vial max {base:.3f} degC, sigma {sigma:.3f} K -> back-off {new:.3f} K")
        if abs(new - back_off) < tolerance_K:  # the recipe optimized at back_off needs back_off: settled
            break
        back_off = new
    else:
        raise ScenarioError(
            f"the back-off did not settle in {max_iterations} runs ({[round(h['back_off_K'], 3) for h in history]} K)"
        )
    centre = summary(recipe, nominal)
    return RobustCycleResult(
        recipe=recipe,
        back_off_K=back_off,
        sigma_T_K=sigma,
        sensitivities_K=sens,
        drying_time_h=centre["primary_drying_time_h"],
        deterministic_drying_time_h=det_time,
        deterministic_recipe=det_recipe,
        T_critical_C=t_crit,
        risk=risk,
        edge_factor=edge_factor,
        uncertainty=copy.deepcopy(uncertainty),
        iterations=history,
        stats={"wall_time_s": time.perf_counter() - wall0},
    )


def check_by_sampling(
    model,
    result: RobustCycleResult,
    recipe=None,
    n=1000,
    seed=2026,
    out=None,
    scheduler="serial",
    workers=2,
    nfe=60,
    progress=None,
    mesh_tol=None,
) -> dict:
    """Share of sampled parameter sets in which any vial class exceeds the critical temperature.

    Parameters
    ----------
    recipe : dict, optional
        The recipe to check (default: the robust one; ``result.deterministic_recipe`` checks the optimum).
    n : int
        Latin-hypercube samples; every class is simulated for each.
    out : path, optional
        Folder for the sweep's Parquet chunks (default: a temporary folder, removed afterwards).
    mesh_tol : float or None
        The engine's grid refinement per sample (:mod:`biotwin.engine.mesh`). None (default): every sample on
        the recipe's own grid, re-solved warm. Measured on the robust case-1 cycle (8 samples of this
        uncertainty): the 60-element grid is off by at most 0.0063 K in the maximum product temperature and
        4.4e-6 h in the drying time against 240 elements refined to 1e-5 (refined to 1e-4: 0.0003 K), against
        a back-off of 5.7 K; refining per sample builds a model per sample (the 100-sample check of
        tests/sweep took 377 s instead of about 60 s).

    Returns
    -------
    dict
        ``exceed`` (share of samples with a vial above critical), ``se`` (its Monte Carlo standard error),
        ``n``, ``n_failed`` (solves that failed: counted as exceeding), ``drying_time_h`` quantiles of the
        slowest class, ``max_T_C`` quantiles per class.
    """
    import tempfile

    from biotwin.sweep import probability_map, read_sweep, run_sweep

    recipe = result.recipe if recipe is None else recipe
    values = model.parameter_values(model.load_scenario(recipe).parameters)
    parameters = {}
    for name, spec in result.uncertainty.items():
        if spec["dist"] == "lognormal":
            parameters[name] = {"dist": "lognormal", "median": values[name], "rsd": spec["rsd"]}
        else:
            parameters[name] = {"dist": "normal", "mean": values[name], "sd": spec["rsd"] * values[name]}
    classes = {"centre": {}}
    if result.edge_factor != 1.0:
        classes["edge"] = {"scale": {"KC": result.edge_factor, "KP": result.edge_factor}, "source": "edge vials"}
    spec = {
        "model": "lyophilization",
        "recipe": recipe,
        "nfe": nfe,
        "mesh_tol": mesh_tol,
        "samples": {"n": int(n), "method": "lhs", "seed": int(seed), "parameters": parameters},
        "classes": classes,
        "outputs": ["primary_drying_time_h", "max_T_bottom_C"],
        "limits": [{"output": "max_T_bottom_C", "max": result.T_critical_C}],
        "chunk": max(10, int(n) // 20),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out) if out is not None else Path(tmp) / "sweep"
        sweep = run_sweep(read_sweep(spec, model), folder, scheduler=scheduler, workers=workers, progress=progress)
        cells = probability_map(sweep)
        frame = sweep.frame
    p = float(cells["probability"].iloc[0])
    n_done = int(cells["n"].iloc[0])
    times = frame[[c for c in frame.columns if c.startswith("primary_drying_time_h@")]].max(axis=1)
    return {
        "exceed": 1.0 - p,
        "se": math.sqrt(p * (1 - p) / n_done),
        "n": n_done,
        "n_failed": int(cells["n_failed"].iloc[0]),
        "drying_time_h": {q: float(times.quantile(q)) for q in (0.5, 0.99)},
        "max_T_C": {
            c.split("@")[1]: {q: float(frame[c].quantile(q)) for q in (0.5, 0.99)}
            for c in frame.columns
            if c.startswith("max_T_bottom_C@")
        },
    }
