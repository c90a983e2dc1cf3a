"""The lyophilization model's equations written directly with numpy/scipy, as an independent check.

Same equations as ``model.py`` but a different method: the sublimation-front temperature is solved
by bracketing root finding at each right-hand-side evaluation (as LyoPRONTO does with fsolve), the
end of primary drying is an exact integration event, and secondary drying then starts with a sharp
switch (``model.py`` switches smoothly and lets the product temperature follow the vial bottom
during primary drying; here the dried layer desorbs at the vial-bottom temperature itself). The relations (vapour pressure of ice, cake resistance, vial heat transfer, fill
height) are written out here again from the model card (``models/lyophilization/README.md``) on purpose:
this module imports nothing of biotwin. It is a test reference, not shipped with the package: the tests,
``benchmarks/lyophilization.py`` and the lyophilization notebooks load it from the repository
(:func:`biotwin.tools.notebooks.repository_reference`).

Units as in ``parameters.yaml``: cm, g, h, cal, K, torr.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

ZERO_CELSIUS = 273.15
GAS_CONSTANT = 8.314462618  # [J/mol/K]


def _kv(p, P):
    return p["KC"] + p["KP"] * P / (1 + p["KD"] * P)  # [cal/s/K/cm^2]


def fill_height(p):
    """Initial frozen-layer height Lpr0 [cm]."""
    x = p["c_solid"] / p["rho_solution"]
    return (
        p["Vfill"]
        / (p["Ap"] * p["rho_ice"])
        * p["rho_solution"]
        * (1 - x * (p["rho_solution"] - p["rho_ice"]) / p["rho_solute"])
    )


def primary_state(p, Lck, T_shelf, P):
    """Sublimation-front and bottom temperatures [K] and sublimation rate [g/h] at one moment."""
    lpr0 = fill_height(p)
    rp = p["R0"] + p["A1"] * Lck / (1 + p["A2"] * Lck)
    frozen = max(lpr0 - Lck, 0.0)

    def rate(T_sub):
        return p["Ap"] * max(p["psub_A"] * np.exp(-p["psub_B"] / T_sub) - P, 0.0) / rp

    def balance(T_sub):
        q = p["dHs"] * rate(T_sub) / 3600.0  # [cal/s]
        T_bot = T_sub + q / (p["Ap"] * p["k_ice"]) * frozen
        return _kv(p, P) * p["Av"] * (T_shelf - T_bot) - q

    T_sub = brentq(balance, 150.0, T_shelf, xtol=1e-12) if balance(T_shelf) < 0 else T_shelf
    q = p["dHs"] * rate(T_sub) / 3600.0
    return T_sub, T_sub + q / (p["Ap"] * p["k_ice"]) * frozen, rate(T_sub)


def simulate(p, shelf_K, pressure_torr, t_end, n_out=400, rtol=1e-10, desorption="during_primary"):
    """Primary then secondary drying.

    Parameters
    ----------
    p : dict
        Parameter values in ``parameters.yaml`` units.
    shelf_K, pressure_torr : callable
        Shelf temperature [K] and chamber pressure [torr] as functions of time [h].
    t_end : float
        End of the recipe [h].
    desorption : {"during_primary", "after_primary"}
        Whether the dried layer desorbs as it forms (at the vial-bottom temperature, the model card's
        lumped dried layer) or only once the ice is gone.

    Returns
    -------
    dict
        ``t_dry`` [h], ``max_T_bottom`` [K], and arrays ``time`` [h], ``Cs`` [g/g], ``T_product`` [K]
        over secondary drying; ``primary_time`` [h] and ``primary_Cs`` [g/g] over primary drying.
    """
    lpr0 = fill_height(p)
    x = p["c_solid"] / p["rho_solution"]
    ice_factor = (1 - x * (p["rho_solution"] - p["rho_ice"]) / p["rho_solute"]) / (
        1 - x * p["rho_solution"] / p["rho_solute"]
    )

    e_over_r = p["Ea_des"] * 1000.0 / GAS_CONSTANT

    def kd(T):
        return p["k_des"] * np.exp(-e_over_r * (1 / T - 1 / p["T_des_ref"]))  # [1/h]

    def primary(t, y):
        Lck, Cs = y
        _, T_bot, rate = primary_state(p, Lck, shelf_K(t), pressure_torr(t))
        phi = min(Lck, lpr0) / lpr0  # dried share of the solid
        desorbing = desorption == "during_primary"
        dCs = -kd(T_bot) * (Cs - p["Cs0"] * (1 - phi) - p["Cs_eq"] * phi) if desorbing else 0.0
        return [rate / (p["Ap"] * p["rho_ice"]) * ice_factor, dCs]

    def dried(t, y):
        return y[0] - lpr0

    dried.terminal, dried.direction = True, 1
    first = solve_ivp(
        primary, (0.0, t_end), [0.0, p["Cs0"]], method="LSODA", rtol=rtol, atol=1e-12, events=dried, dense_output=True
    )
    if not first.t_events[0].size:
        raise ValueError("the recipe ends before primary drying does")
    t_dry = float(first.t_events[0][0])
    grid = np.linspace(0.0, t_dry, n_out)
    t_bottom = [primary_state(p, float(first.sol(t)[0]), shelf_K(t), pressure_torr(t))[1] for t in grid]
    m_s = p["c_solid"] * p["Vfill"]

    def secondary(t, y):
        Cs, T = y
        rate = kd(T) * (Cs - p["Cs_eq"])
        heat = _kv(p, pressure_torr(t)) * p["Av"] * (shelf_K(t) - T) * 3600.0 - p["dH_des"] * m_s * rate
        return [-rate, heat / (m_s * p["cp_solid"] + p["C_vial"])]

    out = np.linspace(t_dry, t_end, n_out)
    second = solve_ivp(
        secondary,
        (t_dry, t_end),
        [float(first.y[1][-1]), t_bottom[-1]],
        method="Radau",
        rtol=rtol,
        atol=1e-12,
        t_eval=out,
    )
    return {
        "t_dry": t_dry,
        "max_T_bottom": float(np.max(t_bottom)),
        "time": second.t,
        "Cs": second.y[0],
        "T_product": second.y[1],
        "primary_time": grid,
        "primary_Cs": np.array([float(first.sol(t)[1]) for t in grid]),
    }


def greedy_fastest_drying(p, T_bottom_max_K, pressure_torr, shelf_bounds_K, rtol=1e-10):
    """Primary drying with the shelf at every moment as warm as the product-temperature limit allows.

    The "greedy" policy of LyoPRONTO's optimizer, computed exactly: at each moment the shelf
    temperature is the one that puts the vial bottom at ``T_bottom_max_K`` (clipped to
    ``shelf_bounds_K``). With no other active constraint (ramp, equipment) no program can dry faster,
    since the sublimation rate at any dried-cake length is largest when the product is at its limit.

    Returns
    -------
    dict
        ``t_dry`` [h] and arrays ``time`` [h], ``T_shelf`` [K], ``T_bottom`` [K].
    """
    lpr0 = fill_height(p)
    x = p["c_solid"] / p["rho_solution"]
    ice_factor = (1 - x * (p["rho_solution"] - p["rho_ice"]) / p["rho_solute"]) / (
        1 - x * p["rho_solution"] / p["rho_solute"]
    )
    P = pressure_torr
    lo, hi = shelf_bounds_K

    def shelf_at_limit(Lck):
        rp = p["R0"] + p["A1"] * Lck / (1 + p["A2"] * Lck)
        frozen = max(lpr0 - Lck, 0.0)

        def bottom_minus_limit(T_sub):
            q = p["dHs"] * p["Ap"] * max(p["psub_A"] * np.exp(-p["psub_B"] / T_sub) - P, 0.0) / rp / 3600.0
            return T_sub + q / (p["Ap"] * p["k_ice"]) * frozen - T_bottom_max_K

        T_sub = brentq(bottom_minus_limit, 150.0, T_bottom_max_K, xtol=1e-12)
        q = p["dHs"] * p["Ap"] * max(p["psub_A"] * np.exp(-p["psub_B"] / T_sub) - P, 0.0) / rp / 3600.0
        return float(np.clip(T_bottom_max_K + q / (_kv(p, P) * p["Av"]), lo, hi))

    def rhs(t, y):
        T_shelf = shelf_at_limit(y[0])
        return [primary_state(p, y[0], T_shelf, P)[2] / (p["Ap"] * p["rho_ice"]) * ice_factor]

    def dried(t, y):
        return y[0] - lpr0

    dried.terminal, dried.direction = True, 1
    sol = solve_ivp(rhs, (0.0, 1e3), [0.0], method="LSODA", rtol=rtol, atol=1e-12, events=dried, dense_output=True)
    t_dry = float(sol.t_events[0][0])
    grid = np.linspace(0.0, t_dry, 200)
    shelf = np.array([shelf_at_limit(float(sol.sol(t)[0])) for t in grid])
    bottom = np.array([primary_state(p, float(sol.sol(t)[0]), s, P)[1] for t, s in zip(grid, shelf)])
    return {"t_dry": t_dry, "time": grid, "T_shelf": shelf, "T_bottom": bottom}
