"""Physical relations of vial freeze-drying: one small function per relation, with its source and units.

The one home of these relations: the lyophilization model folder's Pyomo model (``model.py``), its flux
design space, freezing calculator, Kv fit and cycle optimizer call them. Every function takes numbers,
numpy arrays or Pyomo expressions alike (``model.py`` builds its constraints from them). The independent
check, ``tests/references/lyophilization_scipy.py``, writes them out again from the model card on purpose
and does not import this module.

Units as in ``parameters.yaml``: cm, g, h, cal, K, Torr.
"""

from __future__ import annotations

import numbers

import numpy as np
import pyomo.environ as pyo


def _exp(x):
    """``exp`` of a number or array (numpy) or of a Pyomo expression."""
    if isinstance(x, numbers.Number | np.ndarray):
        return np.exp(x)
    return pyo.exp(x)


def vapour_pressure_ice(T_K, psub_A, psub_B):
    """Vapour pressure of ice ``psub_A exp(-psub_B / T)`` [Torr].

    Parameters
    ----------
    T_K : float, array or Pyomo expression
        Ice temperature [K].
    psub_A : float
        Pre-exponential factor [Torr] (2.698e10 Torr in LyoPRONTO, a fit to the Goff-Gratch data).
    psub_B : float
        Sublimation enthalpy over the gas constant [K] (6144.96 K in LyoPRONTO).

    References
    ----------
    Pikal, M. J. (1985), J Parenter Sci Technol 39:115; LyoPRONTO ``functions.Vapor_pressure``.
    """
    return psub_A * _exp(-psub_B / T_K)


def cake_resistance(L_cm, R0, A1, A2):
    """Dried-product (cake) resistance ``R0 + A1 L / (1 + A2 L)`` [cm2 h Torr / g].

    Parameters
    ----------
    L_cm : float, array or Pyomo expression
        Dried-cake length [cm].
    R0 : float
        Resistance of the empty cake (the stopper and the skin) [cm2 h Torr / g].
    A1 : float
        [cm h Torr / g].
    A2 : float
        [1/cm].

    References
    ----------
    Pikal, M. J., Shah, S., Senior, D., Lang, J. E. (1983), J Pharm Sci 72:635; LyoPRONTO ``functions.Rp_FUN``.
    """
    return R0 + A1 * L_cm / (1 + A2 * L_cm)


def vial_heat_transfer(P_torr, KC, KP, KD):
    """Vial heat-transfer coefficient ``KC + KP P / (1 + KD P)`` [cal / s / K / cm2].

    Parameters
    ----------
    P_torr : float, array or Pyomo expression
        Chamber pressure [Torr].
    KC : float
        Contact and radiation part [cal / s / K / cm2].
    KP : float
        Gas-conduction part [cal / s / K / cm2 / Torr].
    KD : float
        [1 / Torr].

    References
    ----------
    Pikal, M. J., Roy, M. L., Shah, S. (1984), J Pharm Sci 73:1224; LyoPRONTO ``functions.Kv_FUN``.
    """
    return KC + KP * P_torr / (1 + KD * P_torr)


def kv_from_sublimation(mass_loss_g, duration_h, T_shelf_K, T_bottom_K, Av, dHs):
    """Vial heat-transfer coefficient from a gravimetric sublimation test [cal / s / K / cm2].

    ``Kv = dHs (dm / dt) / (Av (T_shelf - T_bottom))``: the heat that sublimed the ice lost over the
    test, divided by the vial's outer area and the mean shelf-to-vial-bottom temperature difference.

    Parameters
    ----------
    mass_loss_g : float or array
        Ice sublimed during the test (vial weighed before and after) [g].
    duration_h : float or array
        Length of the steady part of the test [h].
    T_shelf_K, T_bottom_K : float or array
        Mean shelf-surface and vial-bottom (product thermocouple) temperatures over the test [K]
        (their difference may be given in degC as well).
    Av : float
        Outer cross-sectional area of the vial [cm2].
    dHs : float
        Heat of sublimation of ice [cal/g].

    References
    ----------
    Pikal, M. J., Roy, M. L., Shah, S. (1984), J Pharm Sci 73:1224 (the gravimetric method);
    Tang, X., Pikal, M. J. (2004), Pharm Res 21:191 (practice).
    """
    return dHs * mass_loss_g / (3600.0 * duration_h) / (Av * (T_shelf_K - T_bottom_K))


def solid_fraction(c_solid, rho_solution):
    """Mass fraction of solids in the solution ``x = c_solid / rho_solution`` [-]."""
    return c_solid / rho_solution


def fill_height(Vfill, Ap, c_solid, rho_solution, rho_ice, rho_solute):
    """Initial height of the frozen layer ``Lpr0`` [cm].

    ``Lpr0 = Vfill / (Ap rho_ice) rho_solution (1 - x (rho_solution - rho_ice) / rho_solute)``,
    ``x = c_solid / rho_solution``.

    Parameters
    ----------
    Vfill : fill volume [mL]; Ap : product area [cm2]; c_solid : solids [g/mL];
    rho_solution, rho_ice, rho_solute : densities [g/mL].

    References
    ----------
    LyoPRONTO ``functions.Lpr0_FUN`` (with ``c_solid = x rho_solution``).
    """
    x = solid_fraction(c_solid, rho_solution)
    return Vfill / (Ap * rho_ice) * rho_solution * (1 - x * (rho_solution - rho_ice) / rho_solute)


def ice_factor(c_solid, rho_solution, rho_ice, rho_solute):
    """Growth of the dried cake per volume of ice removed [-]: the frozen layer holds the solids too.

    ``(1 - x (rho_solution - rho_ice) / rho_solute) / (1 - x rho_solution / rho_solute)``.

    References
    ----------
    LyoPRONTO's cake-length equation (``functions.Lck`` update in ``calc_knownRp``).
    """
    x = solid_fraction(c_solid, rho_solution)
    return (1 - x * (rho_solution - rho_ice) / rho_solute) / (1 - x * rho_solution / rho_solute)


def bottom_temperature(T_sub, heat_flow, frozen_thickness, Ap, k_ice):
    """Vial-bottom temperature: the sublimation front plus conduction through the frozen layer [K].

    ``T_bottom = T_sub + q L_frozen / (Ap k_ice)``.

    Parameters
    ----------
    T_sub : sublimation-front temperature [K]; heat_flow : heat taken by sublimation ``q`` [cal/s];
    frozen_thickness : [cm]; Ap : product area [cm2]; k_ice : thermal conductivity of ice [cal/s/K/cm].

    References
    ----------
    Pikal (1985); LyoPRONTO ``functions.T_bot_FUN``.
    """
    return T_sub + heat_flow / (Ap * k_ice) * frozen_thickness


def parameters_of(p: dict, names: str) -> tuple:
    """The values of ``p`` named in ``names`` (space-separated), for calling a relation with a parameter set."""
    return tuple(p[n] for n in names.split())


__all__ = [
    "bottom_temperature",
    "cake_resistance",
    "fill_height",
    "ice_factor",
    "kv_from_sublimation",
    "parameters_of",
    "solid_fraction",
    "vapour_pressure_ice",
    "vial_heat_transfer",
]
