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


def time_indexed(component, time: dae.ContinuousSet) -> bool:
    """True when ``component`` is indexed by the time set ``time`` alone."""
    return component.is_indexed() and component.index_set() is time


def time_components(m) -> tuple[list, list, list]:
    """The model's time-indexed components: derivative variables, other variables, expressions.

    Returns
    -------
    (derivatives, variables, expressions) : lists of Pyomo components indexed by ``m.t`` alone
        ``variables`` holds states, algebraic outputs and inputs, not the derivative variables.
        Call before discretization: collocation turns DerivativeVars into plain Vars.
    """
    derivatives = [d for d in m.component_objects(dae.DerivativeVar, descend_into=True) if time_indexed(d, m.t)]
    skip = {id(d) for d in derivatives}
    variables = [v for v in m.component_objects(pyo.Var, descend_into=True)
                 if time_indexed(v, m.t) and id(v) not in skip]
    expressions = [e for e in m.component_objects(pyo.Expression, descend_into=True) if time_indexed(e, m.t)]
    return derivatives, variables, expressions


def derivative(state, time: dae.ContinuousSet, time_unit: str) -> dae.DerivativeVar:
    """A ``DerivativeVar`` of ``state`` with respect to ``time`` carrying units.

    Pyomo gives derivative variables no units by itself; this one has
    ``[state unit / time_unit]`` so that ``assert_units_consistent`` checks the balances.
    """
    unit = pyo.units.get_units(state)
    t_unit = parse_unit(time_unit, "time unit")
    return dae.DerivativeVar(state, wrt=time, units=(unit if unit is not None else pyo.units.dimensionless) / t_unit)
