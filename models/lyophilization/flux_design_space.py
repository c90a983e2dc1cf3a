"""Primary-drying design space in the form freeze-drying scientists read: sublimation flux against pressure.

The Pikal/LyoPRONTO form (Pikal 1985, J Parenter Sci Technol 39:115; Chang & Fischer 1995, Pharm Res
12:831; LyoPRONTO's design-space tool): at each chamber pressure,

* a **shelf isotherm** per shelf set point: the shelf held there, primary drying simulated to its end
  (:func:`design_space` of ``model.py``): drying time, maximum vial-bottom temperature, average and
  final flux;
* a **product isotherm** per product temperature (the critical one highlighted): the vial bottom held
  exactly at ``T_bottom`` while the cake grows. At cake length ``L`` the sublimation-front temperature
  ``T_sub`` solves ``T_sub + q (Lpr0 - L) / (Ap k_ice) = T_bottom`` with the heat flow
  ``q = dHs dm/dt`` and ``dm/dt = Ap (Psub(T_sub) - Pch) / Rp(L)``; the drying time is
  ``int_0^Lpr0 Ap rho_ice / (f dm/dt(L)) dL`` (``f`` the ice fraction factor of the frozen layer);
* the **equipment capability**: the largest flux the dryer's condenser and duct carry,
  ``(a + b Pch) / (n_vials Ap)``, and the time to sublime the ice at that flux.

Operating points between the product isotherm of the critical temperature (above it the product
collapses) and the equipment line (above it the dryer chokes) are the design space. Every flux is in
kg/h/m2 of product area, pressure in mTorr, time in h, temperature in degC. The physical relations
(vapour pressure of ice, cake resistance, fill height) are :mod:`biotwin.processes.freeze_drying`'s, as in
``model.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.integrate import quad
from scipy.optimize import brentq

from biotwin.processes import freeze_drying as rel

ZERO_CELSIUS = 273.15


def fill_height(p) -> float:
    """Initial frozen-layer height [cm] of the parameter set ``p``."""
    return rel.fill_height(*rel.parameters_of(p, "Vfill Ap c_solid rho_solution rho_ice rho_solute"))


def ice_factor(p) -> float:
    """Volume of frozen layer per volume of ice removed [-] (the solids' share of the frozen layer)."""
    return rel.ice_factor(*rel.parameters_of(p, "c_solid rho_solution rho_ice rho_solute"))


def ice_mass_g(p) -> float:
    """Ice sublimed from one vial in primary drying [g]."""
    return p["Ap"] * p["rho_ice"] * fill_height(p) / ice_factor(p)


def _flux(g_per_h_per_vial, p) -> float:
    """[g/h per vial] -> [kg/h/m2 of product area]."""
    return g_per_h_per_vial / 1000.0 / (p["Ap"] * 1e-4)


def bottom_limited_rate(p, cake_cm: float, T_bottom_K: float, P_torr: float) -> float:
    """Sublimation rate [g/h per vial] with the vial bottom at ``T_bottom_K`` and the cake ``cake_cm`` long.

    Solves the frozen layer's conduction for the sublimation-front temperature (bracketed root).
    """
    lpr0 = fill_height(p)
    rp = rel.cake_resistance(cake_cm, p["R0"], p["A1"], p["A2"])  # [cm2 h Torr/g]

    def rate(T_sub):
        return p["Ap"] * max(rel.vapour_pressure_ice(T_sub, p["psub_A"], p["psub_B"]) - P_torr, 0.0) / rp

    def balance(T_sub):
        q = p["dHs"] * rate(T_sub) / 3600.0  # [cal/s]
        return T_sub + q * max(lpr0 - cake_cm, 0.0) / (p["Ap"] * p["k_ice"]) - T_bottom_K

    if rate(T_bottom_K) == 0.0:
        return 0.0  # the chamber is above the ice's vapour pressure at this temperature: no sublimation
    return rate(brentq(balance, 150.0, T_bottom_K, xtol=1e-12))


def product_isotherm(p, T_bottom_C: float, pressure_mTorr: float) -> dict:
    """Primary drying with the vial bottom held at ``T_bottom_C`` [degC] at ``pressure_mTorr`` [mTorr].

    Returns
    -------
    dict
        ``drying_time_h`` [h], ``average_flux``, ``max_flux`` (at the start), ``final_flux`` (at full cake
        length, the minimum) [kg/h/m2]; ``inf`` and zero fluxes when the chamber is above the ice's vapour
        pressure at that temperature.
    """
    lpr0 = fill_height(p)
    T, P = T_bottom_C + ZERO_CELSIUS, pressure_mTorr / 1000.0
    first, last = bottom_limited_rate(p, 0.0, T, P), bottom_limited_rate(p, lpr0, T, P)
    if last <= 0.0:
        return {"drying_time_h": math.inf, "average_flux": 0.0, "max_flux": 0.0, "final_flux": 0.0}
    f = ice_factor(p)
    time_h = quad(lambda L: p["Ap"] * p["rho_ice"] / (f * bottom_limited_rate(p, L, T, P)), 0.0, lpr0, limit=200)[0]
    return {
        "drying_time_h": time_h,
        "average_flux": _flux(ice_mass_g(p) / time_h, p),
        "max_flux": _flux(first, p),
        "final_flux": _flux(last, p),
    }


def equipment_line(p, pressure_mTorr: float, a_kg_per_h: float, b_kg_per_h_per_Torr: float, n_vials: int) -> dict:
    """The dryer's capability ``a + b Pch`` [kg/h] as a flux per product area, and the drying time at it."""
    capacity = a_kg_per_h + b_kg_per_h_per_Torr * pressure_mTorr / 1000.0  # [kg/h, all vials]
    flux = capacity / (n_vials * p["Ap"] * 1e-4)
    time_h = ice_mass_g(p) / 1000.0 / (flux * p["Ap"] * 1e-4) if flux > 0 else math.inf
    return {"drying_time_h": time_h, "average_flux": flux, "max_flux": flux, "final_flux": flux}


def flux_design_space(
    model,
    scenario,
    pressures_mTorr,
    shelf_setpoints_C=(),
    product_temperatures_C=(),
    equipment=None,
    nfe=100,
    progress=None,
    grid=None,
) -> pd.DataFrame:
    """Every curve of the flux-pressure design space, one row per curve and pressure.

    Parameters
    ----------
    model : biotwin.Model
        The lyophilization model.
    scenario : str or dict
        The recipe whose vial, product and heat transfer are used.
    pressures_mTorr : sequence of float
        Chamber pressures [mTorr].
    shelf_setpoints_C, product_temperatures_C : sequences of float
        Shelf isotherms (simulated) and product (vial-bottom) isotherms [degC].
    equipment : dict, optional
        ``{a_kg_per_h, b_kg_per_h_per_Torr, n_vials}``.
    grid : pandas.DataFrame, optional
        Shelf isotherms already simulated by ``design_space`` (then ``shelf_setpoints_C`` is not simulated).

    Returns
    -------
    pandas.DataFrame
        ``curve`` (shelf, product, equipment), ``level_C`` (the isotherm's temperature), ``pressure_mTorr``,
        ``drying_time_h``, ``max_T_bottom_C`` (shelf isotherms; the level for product isotherms),
        ``average_flux``, ``max_flux``, ``final_flux`` [kg/h/m2].
    """
    sc = model.load_scenario(scenario)
    p = model.parameter_values(sc.parameters)
    rows = []
    if grid is None and shelf_setpoints_C:
        grid = model.module.design_space(
            model, scenario, list(shelf_setpoints_C), [P / 1000.0 for P in pressures_mTorr], nfe=nfe, progress=progress
        )
    if grid is not None:
        mass = ice_mass_g(p)
        for _, g in grid.iterrows():
            rows.append(
                {
                    "curve": "shelf",
                    "level_C": float(g["T_shelf_setpoint_C"]),
                    "pressure_mTorr": float(g["P_chamber_Torr"]) * 1000.0,
                    "drying_time_h": float(g["primary_drying_time_h"]),
                    "max_T_bottom_C": float(g["max_T_bottom_C"]),
                    "average_flux": _flux(mass / float(g["primary_drying_time_h"]), p),
                    "max_flux": _flux(float(g["max_sublimation_g_per_h"]), p),
                    "final_flux": float(g["final_flux_kg_per_h_m2"]),
                }
            )
    for T in product_temperatures_C:
        for P in pressures_mTorr:
            rows.append(
                {"curve": "product", "level_C": float(T), "pressure_mTorr": float(P), "max_T_bottom_C": float(T)}
                | product_isotherm(p, T, P)
            )
    if equipment:
        for P in pressures_mTorr:
            rows.append(
                {"curve": "equipment", "level_C": np.nan, "pressure_mTorr": float(P), "max_T_bottom_C": np.nan}
                | equipment_line(p, P, equipment["a_kg_per_h"], equipment["b_kg_per_h_per_Torr"], equipment["n_vials"])
            )
    return pd.DataFrame(rows)


def flux_design_space_figure(frame: pd.DataFrame, T_critical_C: float | None = None, flux: str = "average_flux"):
    """Sublimation flux against chamber pressure: shelf isotherms, product isotherms (the critical one in
    red), the equipment line; hover shows the drying time."""
    import plotly.graph_objects as go

    fig = go.Figure()
    shelves = frame[frame["curve"] == "shelf"]
    blues = ["#08306b", "#08519c", "#2171b5", "#4292c6", "#6baed6", "#9ecae1"]
    for k, (level, g) in enumerate(shelves.groupby("level_C")):
        g = g.sort_values("pressure_mTorr")
        fig.add_scatter(
            x=g["pressure_mTorr"],
            y=g[flux],
            mode="lines+markers",
            name=f"shelf {level:g} degC",
            line={"color": blues[k % len(blues)]},
            customdata=np.c_[g["drying_time_h"], g["max_T_bottom_C"]],
            hovertemplate="%{x:.0f} mTorr: %{y:.3f} kg/h/m2<br>drying %{customdata[0]:.2f} h, "
            "max product %{customdata[1]:.1f} degC<extra></extra>",
        )
    for level, g in frame[frame["curve"] == "product"].groupby("level_C"):
        g = g.sort_values("pressure_mTorr")
        critical = T_critical_C is not None and math.isclose(level, T_critical_C)
        fig.add_scatter(
            x=g["pressure_mTorr"],
            y=g[flux],
            mode="lines",
            name=f"product {level:g} degC" + (" (critical)" if critical else ""),
            line={"color": "#d62728" if critical else "#ff9896", "width": 4 if critical else 2, "dash": "solid"},
            customdata=g[["drying_time_h"]],
            hovertemplate="%{x:.0f} mTorr: %{y:.3f} kg/h/m2<br>drying %{customdata[0]:.2f} h<extra></extra>",
        )
    eq = frame[frame["curve"] == "equipment"].sort_values("pressure_mTorr")
    if len(eq):
        fig.add_scatter(
            x=eq["pressure_mTorr"],
            y=eq[flux],
            mode="lines",
            name="equipment capability",
            line={"color": "black", "dash": "dash", "width": 3},
        )
    fig.update_layout(
        title="Primary-drying design space: sublimation flux against chamber pressure",
        xaxis_title="chamber pressure [mTorr]",
        yaxis_title=f"{flux.replace('_', ' ')} [kg/h/m2]",
        template="plotly_white",
        height=480,
    )
    return fig
