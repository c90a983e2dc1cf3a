"""Freezing of the product in a vial on a cooled shelf: cooling, supercooling, nucleation, crystallization,
cooling of the ice (the lumped-capacitance model of LyoPRONTO's freezing calculator; Shivkumar et al. 2019,
AAPS PharmSciTech 20:328).

Phases (product temperature ``T`` [degC], shelf ``T_shelf(t)`` from the recipe, ``hA = h_freezing Av``):

1. liquid:           m_l cp_l dT/dt = hA (T_shelf - T)                until T = T_nucleation
2. nucleation:       T jumps to T_freezing (the supercooling heat freezes part of the water at once)
3. crystallization:  T = T_freezing while hA (T_freezing - T_shelf) removes
                     Q = m_l (dH_fusion - cp_l (T_freezing - T_nucleation))
4. ice:              m_i cp_i dT/dt = hA (T_shelf - T)

with ``m_l = rho_solution V_fill`` and ``m_i = rho_ice Lpr0 Ap`` (the frozen layer of the drying model).
Not a collocation model: nucleation is an event at a temperature with a jump of the state, so the phases
are integrated one after another (``scipy.integrate.solve_ivp`` with event location, rtol 1e-10) between
the shelf program's corners.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from biotwin.core.errors import ScenarioError
from biotwin.core.parameters import default_values
from biotwin.processes.freeze_drying import fill_height

CAL = 4.184  # [J/cal]
CP_SOLUTION = 4.0  # [J/g/K] (LyoPRONTO's 4000 J/kg/K)
CP_ICE = 2.03  # [J/g/K]
DH_FUSION = 79.7 * CAL  # heat of fusion of ice [J/g]


def frozen_mass(fill_mL, Ap_cm2, c_solid_g_per_mL):
    """Mass of the frozen layer ``rho_ice Lpr0 Ap`` [g], with the fill height of the drying model.

    Parameters
    ----------
    fill_mL : float
        Fill volume [mL].
    Ap_cm2 : float
        Product (inner cross-section) area [cm^2].
    c_solid_g_per_mL : float
        Solids concentration [g/mL].
    """
    rho_sol, rho_ice, rho_solute = _densities()
    lpr0 = fill_height(fill_mL, Ap_cm2, c_solid_g_per_mL, rho_sol, rho_ice, rho_solute)  # [cm]
    return rho_ice * lpr0 * Ap_cm2


@cache
def _densities():
    """Solution, ice and solute densities [g/mL]: the drying model's, from parameters.yaml."""
    p = default_values(Path(__file__).with_name("parameters.yaml"))
    return p["rho_solution"], p["rho_ice"], p["rho_solute"]


@dataclass
class FreezingResult:
    """Product temperature through freezing.

    Attributes
    ----------
    table : pandas.DataFrame
        ``time_h``, ``T_shelf_C``, ``T_product_C``, ``phase`` (liquid, crystallization, ice).
    nucleation_h : float
        Time of nucleation [h].
    crystallization_end_h : float
        End of crystallization (all freezable water frozen) [h].
    """

    table: pd.DataFrame
    nucleation_h: float
    crystallization_end_h: float

    def summary(self) -> dict:
        ice = self.table[self.table["phase"] == "ice"]
        return {
            "nucleation_h": self.nucleation_h,
            "crystallization_end_h": self.crystallization_end_h,
            "crystallization_h": self.crystallization_end_h - self.nucleation_h,
            "final_T_product_C": float(self.table["T_product_C"].iloc[-1]),
            "ice_phase_h": float(ice["time_h"].iloc[-1] - ice["time_h"].iloc[0]) if len(ice) else 0.0,
        }


def simulate_freezing(
    shelf_C,
    fill_mL=2.0,
    Av_cm2=3.80,
    Ap_cm2=3.14,
    c_solid_g_per_mL=0.05,
    T_product0_C=15.8,
    T_freezing_C=-1.54,
    T_nucleation_C=-5.84,
    h_W_per_m2_K=38.0,
    dt_h=0.01,
) -> FreezingResult:
    """Product temperature through freezing for a shelf program.

    Parameters
    ----------
    shelf_C : list of [time h, degC]
        Shelf temperature program, piecewise linear, times increasing from 0.
    fill_mL, Av_cm2, Ap_cm2, c_solid_g_per_mL : float
        Fill volume [mL], vial outer area [cm^2], product area [cm^2], solids [g/mL].
    T_product0_C, T_freezing_C, T_nucleation_C : float
        Initial product temperature, equilibrium freezing point and nucleation temperature [degC]
        (``T_nucleation_C < T_freezing_C``: the supercooling).
    h_W_per_m2_K : float
        Shelf-to-product heat-transfer coefficient during freezing [W/m^2/K].
    dt_h : float
        Output spacing [h].

    Returns
    -------
    FreezingResult
    """
    points = np.asarray(shelf_C, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2 or not np.all(np.isfinite(points)):
        raise ScenarioError("freezing: shelf_C must be [[time h, degC], ...] with at least two finite points")
    if points[0, 0] != 0 or np.any(np.diff(points[:, 0]) <= 0):
        raise ScenarioError("freezing: shelf_C times must start at 0 h and increase")
    if not T_nucleation_C < T_freezing_C < T_product0_C:
        raise ScenarioError(
            f"freezing: need T_nucleation_C < T_freezing_C < T_product0_C, got {T_nucleation_C}, {T_freezing_C}, "
            f"{T_product0_C} degC"
        )
    for name, value in (("fill_mL", fill_mL), ("Av_cm2", Av_cm2), ("Ap_cm2", Ap_cm2), ("h_W_per_m2_K", h_W_per_m2_K)):
        if not (np.isfinite(value) and value > 0):
            raise ScenarioError(f"freezing: {name} must be a positive number, got {value!r}")
    if points[:, 1].min() >= T_nucleation_C:
        raise ScenarioError(
            f"freezing: the shelf never goes below the nucleation temperature {T_nucleation_C} degC; the product "
            "cannot freeze (lower the shelf program)"
        )

    def shelf(t):
        return float(np.interp(t, points[:, 0], points[:, 1]))

    hA = h_W_per_m2_K * Av_cm2 * 1e-4 * 3600.0  # [J/h/K]
    m_liquid = _densities()[0] * fill_mL  # [g]
    m_ice = frozen_mass(fill_mL, Ap_cm2, c_solid_g_per_mL)  # [g]
    heat_to_remove = m_liquid * (DH_FUSION - CP_SOLUTION * (T_freezing_C - T_nucleation_C))  # [J]
    t_end = float(points[-1, 0])
    corners = list(points[:, 0])

    def run(rhs, y0, t0, event):
        """Integrate from t0 across the shelf corners until ``event`` (or the end); returns (ts, ys, t_event)."""
        ts, ys, y = [t0], [y0], np.array([y0], dtype=float)
        edges = [t0] + [c for c in corners if c > t0] + ([t_end] if t_end > t0 else [])
        for a, b in itertools.pairwise(sorted(set(edges))):
            inside = np.arange(np.ceil(a / dt_h - 1e-9) * dt_h, b, dt_h)
            inside = np.append(inside[(inside > a + 1e-12) & (inside < b - 1e-12)], b)  # the end carries the state on
            sol = solve_ivp(rhs, (a, b), y, t_eval=inside, events=event, rtol=1e-10, atol=1e-10, method="LSODA")
            ts += list(sol.t)
            ys += list(sol.y[0])
            if event is not None and sol.t_events[0].size:
                return ts, ys, float(sol.t_events[0][0])
            y = sol.y[:, -1]
        return ts, ys, None

    def cooling(mass, cp):
        return lambda t, y: [hA * (shelf(t) - y[0]) / (mass * cp)]

    def reaches(level):
        event = lambda t, y: y[0] - level
        event.terminal, event.direction = True, -1
        return event

    rows = []
    ts, ys, t_nuc = run(cooling(m_liquid, CP_SOLUTION), T_product0_C, 0.0, reaches(T_nucleation_C))
    rows += [(t, shelf(t), T, "liquid") for t, T in zip(ts, ys)]
    if t_nuc is None:
        raise ScenarioError(
            f"freezing: the product does not reach its nucleation temperature {T_nucleation_C} degC by the end of the "
            f"shelf program ({t_end} h); lengthen it"
        )
    rows.append((t_nuc, shelf(t_nuc), T_nucleation_C, "liquid"))

    def all_heat_removed(t, y):  # y: heat removed since nucleation [J]
        return y[0] - heat_to_remove

    all_heat_removed.terminal, all_heat_removed.direction = True, 1
    ts, ys, t_frozen = run(lambda t, y: [hA * (T_freezing_C - shelf(t))], 0.0, t_nuc, all_heat_removed)
    if t_frozen is None:
        raise ScenarioError(
            f"freezing: crystallization does not finish by the end of the shelf program ({t_end} h); lengthen it "
            "or lower the shelf"
        )
    rows += [(t, shelf(t), T_freezing_C, "crystallization") for t in ts]
    rows.append((t_frozen, shelf(t_frozen), T_freezing_C, "crystallization"))
    ts, ys, _ = run(cooling(m_ice, CP_ICE), T_freezing_C, t_frozen, None)
    rows += [(t, shelf(t), T, "ice") for t, T in zip(ts, ys)]
    table = pd.DataFrame(rows, columns=["time_h", "T_shelf_C", "T_product_C", "phase"])
    table = table.sort_values("time_h", kind="stable").reset_index(drop=True)
    return FreezingResult(table, t_nuc, t_frozen)
