"""Primary drying of a vial in a freeze-dryer: the quasi-steady Pikal model as a Pyomo DAE.

State: dried-cake length ``Lck`` [cm]. Algebraic: sublimation-front temperature ``T_sub`` [K].
Inputs: shelf temperature ``T_shelf`` [K] and chamber pressure ``P_chamber`` [torr] (piecewise
linear; scenarios give degC and mTorr). Equations (Pikal 1984, J Parenter Sci Technol 38:144;
Pikal et al. 1984; as implemented in LyoPRONTO, Shivkumar et al. 2019, AAPS PharmSciTech 20:221):

    Psub    = A exp(-B / T_sub)                                   ice vapour pressure [torr]
    dm/dt   = Ap max(Psub - P, 0) / Rp   (smooth max, eps 1e-5 torr) sublimation rate [g/h]
    Rp      = R0 + A1 Lck / (1 + A2 Lck)                          product resistance
    Kv      = KC + KP P / (1 + KD P)                              vial heat-transfer coefficient
    T_bot   = T_sub + dHs dm/dt / (Ap k_ice) (Lpr0 - Lck)         conduction through the frozen layer
    Kv Av (T_shelf - T_bot) = dHs dm/dt                           quasi-steady energy balance
    dLck/dt = dm/dt / (Ap rho_ice) (1 - x (rho_sol - rho_ice)/rho_solute) / (1 - x rho_sol/rho_solute)
    Lpr0    = Vfill / (Ap rho_ice) rho_sol (1 - x (rho_sol - rho_ice) / rho_solute),  x = c_solid / rho_sol

Temperatures are in kelvin inside the model (Pyomo units have no offset units).
"""

import pyomo.environ as pyo

from biotwin.kinetics import positive_part
from biotwin.modeling import derivative, time_set
from biotwin.units import parse_unit

TIME_UNIT = "h"
ZERO_CELSIUS = 273.15

PARAMETER_UNITS = {
    "Av": "cm^2", "Ap": "cm^2", "Vfill": "mL", "c_solid": "g/mL", "R0": "cm^2*h*torr/g", "A1": "cm*h*torr/g",
    "A2": "1/cm", "KC": "cal/s/K/cm^2", "KP": "cal/s/K/cm^2/torr", "KD": "1/torr", "dHs": "cal/g",
    "k_ice": "cal/cm/s/K", "rho_ice": "g/mL", "rho_solute": "g/mL", "rho_solution": "g/mL", "psub_A": "torr",
    "psub_B": "K",
}


def build(settings=None):
    """Build the (not discretized) primary-drying model; ``settings['t_end']`` [h]."""
    u = pyo.units
    m = pyo.ConcreteModel(name="lyophilization")
    m.t = time_set(settings, 20.0)
    for name, unit in PARAMETER_UNITS.items():
        m.add_component(name, pyo.Var(units=parse_unit(unit)))
    m.Lck = pyo.Var(m.t, units=u.cm, initialize=0.1)
    m.T_sub = pyo.Var(m.t, units=u.K, initialize=240.0)
    m.T_shelf = pyo.Var(m.t, units=u.K, initialize=253.15)
    m.P_chamber = pyo.Var(m.t, units=u.torr, initialize=0.1)
    m.T_shelf.fix()
    m.P_chamber.fix()
    m.dLck = derivative(m.Lck, m.t, TIME_UNIT)

    x = m.c_solid / m.rho_solution
    m.Lpr0 = pyo.Expression(expr=m.Vfill / (m.Ap * m.rho_ice) * m.rho_solution
                            * (1 - x * (m.rho_solution - m.rho_ice) / m.rho_solute), doc="initial fill height [cm]")
    m.P_sub = pyo.Expression(m.t, rule=lambda m, t: m.psub_A * pyo.exp(-m.psub_B / m.T_sub[t]))
    m.Rp = pyo.Expression(m.t, rule=lambda m, t: m.R0 + m.A1 * m.Lck[t] / (1 + m.A2 * m.Lck[t]))
    m.Kv = pyo.Expression(m.t, rule=lambda m, t: m.KC + m.KP * m.P_chamber[t] / (1 + m.KD * m.P_chamber[t]))
    # No sublimation while the ice vapour pressure is below the chamber pressure (LyoPRONTO clips
    # the rate to 0 there): a smooth positive part, off by eps^2/(4 dP) = 2.5e-10 torr at dP = 0.1 torr.
    eps = 1e-5 * u.torr
    m.sublimation_rate = pyo.Expression(m.t, rule=lambda m, t: m.Ap * positive_part(
        m.P_sub[t] - m.P_chamber[t], eps) / m.Rp[t], doc="sublimation rate per vial [g/h]")
    m.heat_sublimation = pyo.Expression(m.t, rule=lambda m, t: u.convert(m.dHs * m.sublimation_rate[t],
                                                                          to_units=u.cal / u.s))
    # frozen-layer thickness; its smooth positive part (eps 1e-5 cm) keeps the equations regular after
    # the ice is gone, when the simulation runs on to the end of the recipe (results stop at the end)
    m.frozen_thickness = pyo.Expression(m.t, rule=lambda m, t: positive_part(m.Lpr0 - m.Lck[t], 1e-5 * u.cm))
    m.T_bottom = pyo.Expression(m.t, rule=lambda m, t: m.T_sub[t] + m.heat_sublimation[t] / (m.Ap * m.k_ice)
                                * m.frozen_thickness[t])
    m.energy_balance = pyo.Constraint(m.t, rule=lambda m, t: m.Kv[t] * m.Av * (m.T_shelf[t] - m.T_bottom[t])
                                      == m.heat_sublimation[t])
    ice_factor = (1 - x * (m.rho_solution - m.rho_ice) / m.rho_solute) / (1 - x * m.rho_solution / m.rho_solute)
    m.cake_growth = pyo.Constraint(m.t, rule=lambda m, t: m.dLck[t] == m.sublimation_rate[t]
                                   / (m.Ap * m.rho_ice) * ice_factor)
    m.Lck_init = pyo.Constraint(expr=m.Lck[m.t.first()] == 0.0 * u.cm)
    m.flux = pyo.Expression(m.t, rule=lambda m, t: u.convert(m.sublimation_rate[t] / m.Ap,
                                                             to_units=u.kg / u.h / u.m**2),
                            doc="sublimation flux per product area [kg/h/m^2]")
    m.percent_dried = pyo.Expression(m.t, rule=lambda m, t: 100 * m.Lck[t] / m.Lpr0)
    return m


# -- scenario schema ---------------------------------------------------------------------------
VIAL_KEYS = {"Av_cm2": "Av", "Ap_cm2": "Ap", "fill_mL": "Vfill"}
PRODUCT_KEYS = {"c_solid_g_per_mL": "c_solid", "R0_cm2_h_Torr_per_g": "R0", "A1_cm_h_Torr_per_g": "A1",
                "A2_per_cm": "A2"}
HEAT_KEYS = {"KC_cal_per_s_K_cm2": "KC", "KP_cal_per_s_K_cm2_Torr": "KP", "KD_per_Torr": "KD"}
SCENARIO_KEYS = {"description", "vial", "product", "heat_transfer", "shelf_temperature_C", "chamber_pressure_mTorr",
                 "optimize", "t_end_h"}


def read_scenario(raw, where):
    """Translate the lyophilization recipe schema into the generic scenario form."""
    from biotwin.errors import ScenarioError
    from biotwin.programs import Program

    unknown = set(raw) - SCENARIO_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(SCENARIO_KEYS)}")
    params = {}
    for block, keys in (("vial", VIAL_KEYS), ("product", PRODUCT_KEYS), ("heat_transfer", HEAT_KEYS)):
        given = raw.get(block) or {}
        if not isinstance(given, dict):
            raise ScenarioError(f"{where}: '{block}' must be a mapping")
        allowed = set(keys) | ({"T_critical_C"} if block == "product" else set())
        bad = set(given) - allowed
        if bad:
            raise ScenarioError(f"{where}: {block}: unknown key(s) {sorted(bad)} (keys carry their unit, "
                                f"allowed: {sorted(allowed)})")
        for key, name in keys.items():
            if key in given:
                params[name] = given[key]
    for key in ("shelf_temperature_C", "chamber_pressure_mTorr"):
        if key not in raw:
            raise ScenarioError(f"{where}: '{key}' is required ([[time_h, value], ...])")
    shelf = Program.from_points("shelf_temperature_C", raw["shelf_temperature_C"], where)
    pressure = Program.from_points("chamber_pressure_mTorr", raw["chamber_pressure_mTorr"], where)
    if (pressure.values <= 0).any():
        raise ScenarioError(f"{where}: chamber_pressure_mTorr must be positive")
    t_end = float(raw.get("t_end_h", min(shelf.times[-1], pressure.times[-1])))
    # nothing sublimes if the chamber pressure is above the ice vapour pressure at the shelf temperature
    # at every moment (the product cannot be warmer than the shelf)
    import numpy as np

    grid = np.unique(np.concatenate([shelf.times, pressure.times, np.linspace(0.0, t_end, 200)]))
    grid = grid[grid <= t_end]
    from pathlib import Path

    from biotwin.parameters import ParameterSet

    ice = ParameterSet.from_yaml(Path(__file__).with_name("parameters.yaml")).values()  # psub_A [torr], psub_B [K]
    psub_mtorr = ice["psub_A"] * np.exp(-ice["psub_B"] / (shelf(grid) + ZERO_CELSIUS)) * 1000.0
    if np.all(pressure(grid) >= psub_mtorr):
        warmest = float(np.max(shelf(grid)))
        raise ScenarioError(f"{where}: the chamber pressure is above the ice vapour pressure at the shelf "
                            f"temperature throughout the recipe (warmest shelf {warmest:.1f} degC gives "
                            f"{float(np.max(psub_mtorr)):.1f} mTorr): nothing would sublime")
    return {
        "description": raw.get("description", ""),
        "t_end": t_end,
        "parameters": params,
        "inputs": {
            "T_shelf": {"unit": "K", "points": [[t, v + ZERO_CELSIUS] for t, v in zip(shelf.times, shelf.values)]},
            "P_chamber": {"unit": "mtorr", "points": [[t, v] for t, v in zip(pressure.times, pressure.values)]},
        },
    }


# -- outputs (used by the CLI and notebooks) ------------------------------------------------------
def output_table(result):
    """Primary drying up to its end, in LyoPRONTO's columns.

    The end of primary drying is where the dried-cake length reaches the fill height, found on
    the collocation polynomial of ``Lck`` (not rounded to an output point); the last row is that
    time. Raises if the recipe ends before drying does.
    """
    import pandas as pd

    from biotwin.errors import ScenarioError

    lpr0 = float(pyo.value(result.pyomo_model.Lpr0))
    t_end = result.crossing_time("Lck", lpr0)
    if t_end is None:
        reached = float(result.wide["percent_dried"].iloc[-1])
        raise ScenarioError(f"the recipe ends at {result.wide['time'].iloc[-1]:.3f} h before primary drying does "
                            f"({reached:.1f} % dried): extend the shelf and pressure programs")
    rows = result.wide[result.wide["time"] < t_end].to_dict("records") + [result.interpolate(t_end)]
    table = pd.DataFrame({
        "time_h": [r["time"] for r in rows],
        "T_sublimation_C": [r["T_sub"] - ZERO_CELSIUS for r in rows],
        "T_bottom_C": [r["T_bottom"] - ZERO_CELSIUS for r in rows],
        "T_shelf_C": [r["T_shelf"] - ZERO_CELSIUS for r in rows],
        "P_chamber_mTorr": [r["P_chamber"] * 1000.0 for r in rows],
        "flux_kg_per_h_m2": [r["flux"] for r in rows],
        "percent_dried": [r["percent_dried"] for r in rows],
    })
    return table


def summary(result):
    """Key numbers of primary drying."""
    table = output_table(result)
    return {"primary_drying_time_h": float(table["time_h"].iloc[-1]),
            "max_T_bottom_C": float(table["T_bottom_C"].max()),
            "final_flux_kg_per_h_m2": float(table["flux_kg_per_h_m2"].iloc[-1])}


def shelf_isotherm_recipe(base, shelf_setpoint_C, pressure_Torr, initial_shelf_C=-5.0, ramp_C_per_min=1.0,
                          hold_h=40.0):
    """A recipe ramping the shelf from ``initial_shelf_C`` to a set point and holding it, at constant pressure.

    The form of LyoPRONTO's design-space "shelf isotherms".
    """
    ramp_h = abs(shelf_setpoint_C - initial_shelf_C) / ramp_C_per_min / 60.0
    recipe = {k: v for k, v in base.items() if k not in ("shelf_temperature_C", "chamber_pressure_mTorr", "optimize")}
    recipe["shelf_temperature_C"] = [[0.0, initial_shelf_C], [ramp_h, shelf_setpoint_C], [ramp_h + hold_h, shelf_setpoint_C]]
    recipe["chamber_pressure_mTorr"] = [[0.0, pressure_Torr * 1000.0], [ramp_h + hold_h, pressure_Torr * 1000.0]]
    return recipe


def design_space(model, base_scenario, shelf_setpoints_C, pressures_Torr, nfe=200, progress=None):
    """Drying time and maximum product temperature over a grid of shelf set points and pressures.

    Returns
    -------
    pandas.DataFrame
        Columns ``T_shelf_setpoint_C``, ``P_chamber_Torr``, ``primary_drying_time_h``, ``max_T_bottom_C``,
        ``final_flux_kg_per_h_m2``.
    """
    import pandas as pd

    base = model.load_scenario(base_scenario).raw
    rows = []
    for ts in shelf_setpoints_C:
        for p in pressures_Torr:
            if progress:
                progress(f"shelf {ts} degC, chamber {p} Torr")
            result = model.simulate(scenario=shelf_isotherm_recipe(base, ts, p), nfe=nfe)
            rows.append({"T_shelf_setpoint_C": ts, "P_chamber_Torr": p, **summary(result)})
    return pd.DataFrame(rows)
