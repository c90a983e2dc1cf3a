"""Small helpers for writing ``model.py`` files."""

from __future__ import annotations

import pyomo.dae as dae
import pyomo.environ as pyo

from biotwin.units import parse_unit


def time_set(settings: dict | None, default_t_end: float) -> dae.ContinuousSet:
    """The model's time set ``m.t`` spanning ``[0, settings['t_end']]``.

    Parameters
    ----------
    settings : dict or None
        The ``settings`` passed to ``build``; the engine always sets ``t_end``.
    default_t_end : float
        End time used when ``build`` is called without settings [time unit].
    """
    t_end = (settings or {}).get("t_end", default_t_end)
    return dae.ContinuousSet(bounds=(0.0, float(t_end)))


def derivative(state, time: dae.ContinuousSet, time_unit: str) -> dae.DerivativeVar:
    """A ``DerivativeVar`` of ``state`` with respect to ``time`` carrying units.

    Pyomo gives derivative variables no units by itself; this one has
    ``[state unit / time_unit]`` so that ``assert_units_consistent`` checks the balances.
    """
    unit = pyo.units.get_units(state)
    t_unit = parse_unit(time_unit, "time unit")
    return dae.DerivativeVar(state, wrt=time, units=(unit if unit is not None else pyo.units.dimensionless) / t_unit)
