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

Desorption of bound water (Sadikoglu & Liapis 1997, Drying Technol 15:791; Fissore, Pisano & Barresi
2011, J Pharm Sci 100:4918). ``Cs`` is the bound (unfrozen) water per gram of solid averaged over the
whole cake; the part still frozen holds ``Cs0``. The dried layer desorbs from the moment it forms
(recipe ``desorption: during_primary``, the default): with ``phi = 1 - (Lpr0 - Lck)+ / Lpr0`` the
dried share of the solid, the dried layer holds ``Cs - Cs0 (1 - phi)`` and

    kd      = k_des exp(-Ea/R (1/T_p - 1/T_ref))                   desorption rate constant [1/h]
    dCs/dt  = -kd (Cs - Cs0 (1 - phi) - Cs_eq phi)                 bound water [g water / g solid]

(a lumped dried layer at one moisture and at the product temperature T_p, which follows the vial bottom
during primary drying -- a proposed simplification of the distributed models, in which the dried layer
is warmer than the front). ``desorption: after_primary`` keeps the earlier form, desorption switched on
smoothly when the ice is gone (switch ``s``, 0 during primary drying, 1 after it):
``dCs/dt = -s kd (Cs - Cs_eq)``. The lumped heat balance, in both forms:

    (m_s cp + C_vial) dT_p/dt = s [Kv Av (T_shelf - T_p) - dH_des m_s (-dCs/dt)]
                                + (1 - s) (T_bottom - T_p) / tau   (T_p follows the vial bottom until the ice is gone)

with m_s = c_solid Vfill the dried solid per vial; the vial's glass (heat capacity C_vial) heats with the
cake (a proposed addition to the cited form: without it the cake alone would follow the shelf within ~20 s).

Temperatures are in kelvin inside the model (Pyomo units have no offset units).
"""

import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set
from biotwin.core.model import helper_module
from biotwin.core.units import conversion, parse_unit
from biotwin.processes import freeze_drying as rel
from biotwin.processes.kinetics import positive_part, smooth_switch

_recipe = helper_module(__file__, "recipe")  # the recipe schema and reader, next to this file
TIME_UNIT = "h"
ZERO_CELSIUS = 273.15

GAS_CONSTANT = 8.314462618  # [J/mol/K]
# width of the switch from primary to secondary drying, in dried-cake length past the fill height [cm]: the
# lumped heat balance (and, with desorption: after_primary, desorption) is 1/2 on at Lck = Lpr0 + 2e-4 cm and
# ~1e-6 on 1 mm before the ice is gone
SWITCH_WIDTH_CM = 1e-4
# time constant with which T_p follows the vial-bottom temperature during primary drying [h]
TRACKING_TIME_H = 0.01


def build(settings=None):
    """Build the (not discretized) model; ``settings['t_end']`` [h].

    ``settings['secondary_drying']`` (default True): False leaves out the secondary-drying states,
    as the cycle optimization does (it minimizes the primary-drying time). ``settings['desorption']``
    (the recipe's ``desorption`` key): ``"during_primary"`` (default), the dried layer desorbs as it
    forms; ``"after_primary"``, bound water stays at ``Cs0`` until the ice is gone.
    """
    u = pyo.units
    m = pyo.ConcreteModel(name="lyophilization")
    m.t = time_set(settings, 20.0)
    for name, unit in settings["parameter_units"].items():
        m.add_component(name, pyo.Var(units=parse_unit(unit)))
    m.Lck = pyo.Var(m.t, units=u.cm, initialize=0.1)
    m.T_sub = pyo.Var(m.t, units=u.K, initialize=240.0)
    m.T_shelf = pyo.Var(m.t, units=u.K, initialize=253.15)
    m.P_chamber = pyo.Var(m.t, units=u.torr, initialize=0.1)
    m.T_shelf.fix()
    m.P_chamber.fix()
    m.dLck = derivative(m.Lck, m.t, TIME_UNIT)

    densities = (m.rho_solution, m.rho_ice, m.rho_solute)
    m.Lpr0 = pyo.Expression(expr=rel.fill_height(m.Vfill, m.Ap, m.c_solid, *densities), doc="initial fill height [cm]")
    m.P_sub = pyo.Expression(m.t, rule=lambda m, t: rel.vapour_pressure_ice(m.T_sub[t], m.psub_A, m.psub_B))
    m.Rp = pyo.Expression(m.t, rule=lambda m, t: rel.cake_resistance(m.Lck[t], m.R0, m.A1, m.A2))
    m.Kv = pyo.Expression(m.t, rule=lambda m, t: rel.vial_heat_transfer(m.P_chamber[t], m.KC, m.KP, m.KD))
    # No sublimation while the ice vapour pressure is below the chamber pressure (LyoPRONTO clips
    # the rate to 0 there): a smooth positive part, off by eps^2/(4 dP) = 2.5e-10 torr at dP = 0.1 torr.
    eps = 1e-5 * u.torr
    m.sublimation_rate = pyo.Expression(
        m.t,
        rule=lambda m, t: m.Ap * positive_part(m.P_sub[t] - m.P_chamber[t], eps) / m.Rp[t],
        doc="sublimation rate per vial [g/h]",
    )
    to_cal_per_s = conversion(m.dHs * m.sublimation_rate[m.t.first()], u.cal / u.s)
    m.heat_sublimation = pyo.Expression(m.t, rule=lambda m, t: to_cal_per_s * m.dHs * m.sublimation_rate[t])
    # frozen-layer thickness; its smooth positive part (eps 1e-5 cm) keeps the equations regular after
    # the ice is gone, when the simulation runs on to the end of the recipe (results stop at the end)
    m.frozen_thickness = pyo.Expression(m.t, rule=lambda m, t: positive_part(m.Lpr0 - m.Lck[t], 1e-5 * u.cm))
    m.T_bottom = pyo.Expression(
        m.t,
        rule=lambda m, t: rel.bottom_temperature(
            m.T_sub[t], m.heat_sublimation[t], m.frozen_thickness[t], m.Ap, m.k_ice
        ),
    )
    m.energy_balance = pyo.Constraint(
        m.t, rule=lambda m, t: m.Kv[t] * m.Av * (m.T_shelf[t] - m.T_bottom[t]) == m.heat_sublimation[t]
    )
    ice_factor = rel.ice_factor(m.c_solid, *densities)
    m.cake_growth_rate = pyo.Expression(
        m.t,
        rule=lambda m, t: m.sublimation_rate[t] / (m.Ap * m.rho_ice) * ice_factor,
        doc="rate of growth of the dried cake [cm/h]",
    )
    m.cake_growth = pyo.Constraint(m.t, rule=lambda m, t: m.dLck[t] == m.cake_growth_rate[t])
    m.Lck_init = pyo.Constraint(expr=m.Lck[m.t.first()] == 0.0 * u.cm)
    to_flux_unit = conversion(m.sublimation_rate[m.t.first()] / m.Ap, u.kg / u.h / u.m**2)
    m.flux = pyo.Expression(
        m.t,
        rule=lambda m, t: to_flux_unit * m.sublimation_rate[t] / m.Ap,
        doc="sublimation flux per product area [kg/h/m^2]",
    )
    # capped at 100 % (smoothly, by the frozen thickness): the run goes on past the end of primary drying,
    # where the sublimation front would otherwise read 173 % dried at 12 h on case 1
    m.percent_dried = pyo.Expression(
        m.t,
        rule=lambda m, t: 100 * pyo.units.percent * (m.Lpr0 - m.frozen_thickness[t]) / m.Lpr0,
        doc="share of the ice sublimed [%]",
    )
    if (settings or {}).get("secondary_drying", True):
        _add_secondary_drying(m, (settings or {}).get("desorption", "during_primary"))
    return m


DESORPTION_FORMS = _recipe.DESORPTION_FORMS


def _add_secondary_drying(m, desorption="during_primary"):
    """Bound-water desorption (from the dried layer as it forms, or after the ice is gone) and the lumped
    product heat balance."""
    u = pyo.units
    m.Cs = pyo.Var(m.t, units=u.dimensionless, initialize=0.1, doc="bound water [g water / g solid]")
    m.T_product = pyo.Var(m.t, units=u.K, initialize=253.15, doc="lumped product temperature [K]")
    m.dCs = derivative(m.Cs, m.t, TIME_UNIT)
    m.dT_product = derivative(m.T_product, m.t, TIME_UNIT)
    m.solid_mass = pyo.Expression(expr=m.c_solid * m.Vfill, doc="dried solid per vial [g]")
    width = SWITCH_WIDTH_CM * u.cm
    m.secondary = pyo.Expression(
        m.t,
        rule=lambda m, t: smooth_switch(m.Lck[t], m.Lpr0 + 2 * width, width),
        doc="0 during primary drying, 1 once the ice is gone",
    )
    gas_constant = GAS_CONSTANT * u.J / u.mol / u.K
    activation_temperature = u.convert(m.Ea_des / gas_constant, to_units=u.K)  # one expression for all times
    m.k_desorption = pyo.Expression(
        m.t,
        rule=lambda m, t: m.k_des * pyo.exp(-activation_temperature * (1 / m.T_product[t] - 1 / m.T_des_ref)),
    )
    if desorption == "during_primary":
        m.dried_share = pyo.Expression(
            m.t, rule=lambda m, t: 1 - m.frozen_thickness[t] / m.Lpr0, doc="dried share of the solid, phi [-]"
        )
        m.desorption_rate = pyo.Expression(
            m.t,
            rule=lambda m, t: (
                m.k_desorption[t] * (m.Cs[t] - m.Cs0 * (1 - m.dried_share[t]) - m.Cs_eq * m.dried_share[t])
            ),
            doc="[g water / g solid / h]",
        )
    else:
        m.desorption_rate = pyo.Expression(
            m.t,
            rule=lambda m, t: m.secondary[t] * m.k_desorption[t] * (m.Cs[t] - m.Cs_eq),
            doc="[g water / g solid / h]",
        )
    m.desorption = pyo.Constraint(m.t, rule=lambda m, t: m.dCs[t] == -m.desorption_rate[t])
    heat_capacity = m.solid_mass * m.cp_solid + m.C_vial
    tracking = TRACKING_TIME_H * u.h
    first = m.t.first()
    to_cal_per_h = conversion(m.Kv[first] * m.Av * (m.T_shelf[first] - m.T_product[first]), u.cal / u.h)

    def heat_balance(m, t):
        heating = (
            to_cal_per_h * m.Kv[t] * m.Av * (m.T_shelf[t] - m.T_product[t])
            - m.dH_des * m.solid_mass * m.desorption_rate[t]
        )
        return m.dT_product[t] == (
            m.secondary[t] * heating / heat_capacity
            + (1 - m.secondary[t]) * (m.T_bottom[t] - m.T_product[t]) / tracking
        )

    m.product_heat_balance = pyo.Constraint(m.t, rule=heat_balance)
    m.residual_moisture = pyo.Expression(
        m.t,
        rule=lambda m, t: 100 * pyo.units.percent * m.Cs[t] / (1 + m.Cs[t]),
        doc="residual moisture [% w/w of the dried product]",
    )
    m.Cs_init = pyo.Constraint(expr=m.Cs[m.t.first()] == m.Cs0)
    m.T_product_init = pyo.Constraint(expr=m.T_product[m.t.first()] == m.T_shelf[m.t.first()])


# -- recipe (recipe.py: its keys, units, old spellings and reader) ------------------------------
RECIPE_SPELLINGS = _recipe.RECIPE_SPELLINGS
recipe_programs = _recipe.recipe_programs
with_programs = _recipe.with_programs


def read_scenario(raw, where):
    """Translate a lyophilization recipe (``recipe.py``) into the generic scenario form."""
    return _recipe.read_scenario(raw, where)


def optimize(model, scenario, nfe=40, progress=None):
    """Minimum-time primary drying for a scenario with an ``optimize`` block (used by ``biotwin optimize``).

    See ``cycle_optimization.py``; returns a ``CycleOptimizationResult`` (``.table``, ``.summary()``).
    """
    return helper_module(__file__, "cycle_optimization").optimize_cycle(model, scenario, nfe=nfe, progress=progress)


# -- outputs (used by the CLI and notebooks) ------------------------------------------------------
def primary_drying_end(result) -> float:
    """End of primary drying [h]: where the dried-cake length reaches the fill height.

    Found on the collocation polynomial of ``Lck`` (not rounded to an output point). Raises if the
    recipe ends before drying does.
    """
    from biotwin.core.errors import RecipeTooShortError

    lpr0 = float(pyo.value(result.pyomo_model.Lpr0))
    t_end = result.crossing_time("Lck", lpr0)
    if t_end is None:
        reached = float(result.wide["percent_dried"].iloc[-1])
        raise RecipeTooShortError(
            f"the recipe ends at {result.wide['time'].iloc[-1]:.3f} h before primary drying does "
            f"({reached:.1f} % dried): extend the shelf and pressure programs"
        )
    return t_end


def output_table(result, t_dry=None):
    """Primary drying up to its end in LyoPRONTO's columns, then secondary drying to the end of the recipe.

    Columns: ``time_h, T_sublimation_C, T_bottom_C, T_shelf_C, P_chamber_mTorr, flux_kg_per_h_m2,
    percent_dried`` and the secondary-drying columns ``T_product_C, residual_moisture_percent``.
    The row at the end of primary drying is interpolated on the collocation polynomials. During
    primary drying ``T_product_C`` is the vial-bottom temperature and the residual moisture is the
    cake's bound water (the frozen part counted at ``Cs0``; empty with ``desorption: after_primary``,
    where the dried layer's water is not followed before the ice is gone); after it
    ``T_sublimation_C`` is empty, the flux 0, and ``T_bottom_C`` is the lumped product temperature.
    ``t_dry``: the end of primary drying [h] if already located (:func:`primary_drying_end`).
    """
    import numpy as np
    import pandas as pd

    if t_dry is None:
        t_dry = primary_drying_end(result)
    rows = result.wide[result.wide["time"] < t_dry].to_dict("records") + [result.interpolate(t_dry)]
    lpr0 = float(pyo.value(result.pyomo_model.Lpr0))
    primary = pd.DataFrame(
        {
            "time_h": [r["time"] for r in rows],
            "T_sublimation_C": [r["T_sub"] - ZERO_CELSIUS for r in rows],
            "T_bottom_C": [r["T_bottom"] - ZERO_CELSIUS for r in rows],
            "T_shelf_C": [r["T_shelf"] - ZERO_CELSIUS for r in rows],
            "P_chamber_mTorr": [r["P_chamber"] * 1000.0 for r in rows],
            "flux_kg_per_h_m2": [r["flux"] for r in rows],
            # from Lck, linear in it (exact at the interpolated end row); the wide column caps it smoothly
            "percent_dried": [100.0 * r["Lck"] / lpr0 for r in rows],
        }
    )
    primary["T_product_C"] = primary["T_bottom_C"]
    during = hasattr(result.pyomo_model, "dried_share")
    primary["residual_moisture_percent"] = [r["residual_moisture"] if during else np.nan for r in rows]
    after = result.wide[result.wide["time"] > t_dry + 1e-9]
    secondary = pd.DataFrame(
        {
            "time_h": after["time"],
            "T_sublimation_C": np.nan,
            "T_bottom_C": after["T_product"] - ZERO_CELSIUS,
            "T_shelf_C": after["T_shelf"] - ZERO_CELSIUS,
            "P_chamber_mTorr": after["P_chamber"] * 1000.0,
            "flux_kg_per_h_m2": 0.0,
            "percent_dried": 100.0,
            "T_product_C": after["T_product"] - ZERO_CELSIUS,
            "residual_moisture_percent": after["residual_moisture"],
        }
    )
    if secondary.empty:
        return primary
    return pd.concat([primary, secondary], ignore_index=True)


def summary(result):
    """Key numbers of primary drying, and of secondary drying when the recipe runs past primary drying."""
    import numpy as np

    t_dry = primary_drying_end(result)
    table = output_table(result, t_dry)
    primary = table[table["time_h"] <= t_dry]
    out = {
        "primary_drying_time_h": float(t_dry),
        "max_T_bottom_C": float(primary["T_bottom_C"].max()),
        "final_flux_kg_per_h_m2": float(primary["flux_kg_per_h_m2"].iloc[-1]),
        "max_equipment_load": max_equipment_load(primary, result.parameters),
    }
    if not np.isnan(primary["residual_moisture_percent"].iloc[-1]):
        out["residual_moisture_at_primary_end_percent"] = float(primary["residual_moisture_percent"].iloc[-1])
    secondary = table[table["time_h"] > t_dry]
    if not secondary.empty:
        out.update(
            {
                "cycle_end_h": float(secondary["time_h"].iloc[-1]),
                "final_residual_moisture_percent": float(secondary["residual_moisture_percent"].iloc[-1]),
                "max_T_product_secondary_C": float(secondary["T_product_C"].max()),
            }
        )
    return out


def max_equipment_load(primary, parameters) -> float:
    """The largest share of the dryer's capability the batch sublimes during primary drying [-].

    ``n_vials * flux * Ap / (a + b P_chamber)`` over the rows of ``primary`` (an :func:`output_table`
    up to the end of primary drying), with the equipment capability line ``a + b P`` [kg/h, P in Torr]
    of LyoPRONTO (Patel, Chaudhuri & Pikal 2010, Chem Eng Sci 65:5716). Above 1 the flow chokes: the
    dryer cannot run the recipe with that many vials. A pressure at which the line is at or below zero
    carries nothing: the load is infinite there.

    Parameters
    ----------
    primary : pandas.DataFrame
        ``flux_kg_per_h_m2`` [kg/h/m^2] and ``P_chamber_mTorr`` [mTorr] per row.
    parameters : dict
        ``Ap`` [cm^2], ``n_vials`` [-], ``equipment_a`` [kg/h], ``equipment_b`` [kg/h/Torr].
    """
    import numpy as np

    capacity = parameters["equipment_a"] + parameters["equipment_b"] * primary["P_chamber_mTorr"].to_numpy() / 1000.0
    load = parameters["n_vials"] * primary["flux_kg_per_h_m2"].to_numpy() * parameters["Ap"] * 1e-4
    with np.errstate(divide="ignore"):
        ratio = np.where(capacity > 0, load / np.where(capacity > 0, capacity, 1.0), np.inf)
    return float(np.max(ratio))


def shelf_isotherm_recipe(base, shelf_setpoint_C, pressure_Torr, initial_shelf_C=-5.0, ramp_C_per_min=1.0, hold_h=40.0):
    """A recipe ramping the shelf from ``initial_shelf_C`` to a set point and holding it, at constant pressure.

    The form of LyoPRONTO's design-space "shelf isotherms".
    """
    ramp_h = abs(shelf_setpoint_C - initial_shelf_C) / ramp_C_per_min / 60.0
    shelf = [[0.0, initial_shelf_C], [ramp_h, shelf_setpoint_C], [ramp_h + hold_h, shelf_setpoint_C]]
    pressure = [[0.0, pressure_Torr * 1000.0], [ramp_h + hold_h, pressure_Torr * 1000.0]]
    return with_programs({k: v for k, v in base.items() if k != "optimize"}, shelf, pressure)


def design_space(model, base_scenario, shelf_setpoints_C, pressures_Torr, nfe=200, progress=None):
    """Drying time and maximum product temperature over a grid of shelf set points and pressures.

    Each point is a shelf isotherm (:func:`shelf_isotherm_recipe`) simulated to the end of primary
    drying.

    Returns
    -------
    pandas.DataFrame
        Columns ``T_shelf_setpoint_C``, ``P_chamber_Torr``, ``primary_drying_time_h``, ``max_T_bottom_C``,
        ``final_flux_kg_per_h_m2`` and ``max_sublimation_g_per_h`` (per vial, the peak over primary
        drying, for the equipment-capability check).
    """
    import pandas as pd

    base = model.load_scenario(base_scenario).raw
    rows = []
    n = len(shelf_setpoints_C) * len(pressures_Torr)
    for ts in shelf_setpoints_C:
        for p in pressures_Torr:
            if progress:
                progress(f"[{len(rows) + 1}/{n}] shelf {ts} degC, chamber {p} Torr")
            result = model.simulate(scenario=shelf_isotherm_recipe(base, ts, p), nfe=nfe)
            key = summary(result)
            drying = result.wide[result.wide["time"] <= key["primary_drying_time_h"]]
            rows.append(
                {
                    "T_shelf_setpoint_C": ts,
                    "P_chamber_Torr": p,
                    **{
                        k: v
                        for k, v in key.items()
                        if k in ("primary_drying_time_h", "max_T_bottom_C", "final_flux_kg_per_h_m2")
                    },
                    "max_sublimation_g_per_h": float(drying["sublimation_rate"].max()),
                }
            )
    return pd.DataFrame(rows)


def design_space_figure(grid, T_critical_C, equipment=None, value="primary_drying_time_h"):
    """Heatmap of ``value`` over shelf set point and chamber pressure, with the limits as contours.

    Parameters
    ----------
    grid : pandas.DataFrame
        From :func:`design_space`.
    T_critical_C : float
        Critical product temperature [degC]: the contour where the maximum vial-bottom temperature
        reaches it (points on the warm side fail).
    equipment : dict, optional
        ``{a_kg_per_h, b_kg_per_h_per_Torr, n_vials}``: the contour where the peak sublimation load
        of all vials reaches the dryer's capability ``a + b P`` (above it the dryer chokes).
    """
    from biotwin.ui.figures import design_space_map

    grid = grid.copy()
    limits = [
        {
            "column": "max_T_bottom_C",
            "level": T_critical_C,
            "label": f"max product temperature = {T_critical_C} degC (critical)",
        }
    ]
    if equipment:
        capacity = equipment["a_kg_per_h"] + equipment["b_kg_per_h_per_Torr"] * grid["P_chamber_Torr"]
        grid["equipment_load"] = equipment["n_vials"] * grid["max_sublimation_g_per_h"] / 1000.0 / capacity
        limits.append(
            {"column": "equipment_load", "level": 1.0, "label": f"equipment capability ({equipment['n_vials']} vials)"}
        )
    grid["P_chamber_mTorr"] = grid["P_chamber_Torr"] * 1000.0
    labels = {
        "T_shelf_setpoint_C": "shelf temperature set point [degC]",
        "P_chamber_mTorr": "chamber pressure [mTorr]",
        "primary_drying_time_h": "primary drying time [h]",
        "max_T_bottom_C": "max product temperature [degC]",
    }
    return design_space_map(
        grid,
        "T_shelf_setpoint_C",
        "P_chamber_mTorr",
        value,
        limits,
        labels,
        title=f"Shelf set point x chamber pressure: {labels.get(value, value)} per computed point",
    )


# -- interactive explorer (biotwin.explore) -------------------------------------------------------
def _explorer_shelf(raw, value):
    """The recipe with its shelf ramped at 1 degC/min from the recipe's own loading temperature to ``value``
    [degC] and held (a shelf isotherm), at the recipe's first chamber pressure."""
    shelf, pressure = recipe_programs(raw)
    start = shelf[0][1]
    ramp_h = abs(value - start) / 60.0  # 1 degC/min
    return with_programs(
        raw, [[0.0, start], [ramp_h, value], [40.0, value]], [[0.0, pressure[0][1]], [40.0, pressure[0][1]]]
    )


def _explorer_pressure(raw, value):
    shelf, pressure = recipe_programs(raw)
    return with_programs(raw, shelf, [[0.0, value], [pressure[-1][0], value]])


def _explorer_lengthen(raw, factor):
    """The explorer's recipe with its last hold ``factor`` times longer (a cold shelf or a high pressure dries
    slowly: at -25 degC and 400 mTorr primary drying takes 161 h)."""
    shelf, pressure = recipe_programs(raw)
    shelf[-1][0] *= factor
    pressure[-1][0] *= factor
    return with_programs(raw, shelf, pressure)


def _explorer_readouts(result):
    s = summary(result)
    return {
        "primary drying time [h]": s["primary_drying_time_h"],
        "max product temperature [degC]": s["max_T_bottom_C"],
        "final flux [kg/h/m2]": s["final_flux_kg_per_h_m2"],
    }


def _primary_table(result):
    t_dry = primary_drying_end(result)
    table = output_table(result, t_dry)
    return table[table["time_h"] <= t_dry + 1e-9]


EXPLORER = {
    "scenario": "case1_standard",
    "nfe": 60,
    "knobs": [
        # pressure first: the shelf knob keeps the pressure it finds
        {
            "name": "pressure_mTorr",
            "label": "chamber pressure",
            "unit": "mTorr",
            "min": 30,
            "max": 400,
            "step": 5,
            "value": 150,
            "apply": _explorer_pressure,
        },
        {
            "name": "shelf_C",
            "label": "shelf set point",
            "unit": "degC",
            "min": -25,
            "max": 40,
            "step": 1,
            "value": 20,
            "apply": _explorer_shelf,
        },
    ],
    "parameters": ["R0", "A1", "KC"],
    "table": _primary_table,
    "time_column": "time_h",
    "time_label": "time [h]",
    "panels": [
        ("T_bottom_C", "vial-bottom temperature [degC]"),
        ("T_sublimation_C", "sublimation front [degC]"),
        ("T_shelf_C", "shelf [degC]"),
        ("flux_kg_per_h_m2", "sublimation flux [kg/h/m2]"),
        ("percent_dried", "dried [%]"),
    ],
    "readouts": _explorer_readouts,
    "lengthen": _explorer_lengthen,
}
