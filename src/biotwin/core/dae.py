"""Small helpers for writing ``model.py`` files."""

from __future__ import annotations

import pyomo.environ as pyo
from pyomo import dae

from biotwin.core.units import parse_unit


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
    variables = [
        v for v in m.component_objects(pyo.Var, descend_into=True) if time_indexed(v, m.t) and id(v) not in skip
    ]
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


def declare(
    m,
    time_unit: str,
    parameters: dict | None = None,
    states: dict | None = None,
    inputs: dict | None = None,
    state_initialize: float = 1.0,
) -> None:
    """Add a model's variables to ``m`` from ``{name: unit}`` tables.

    Parameters
    ----------
    m : pyomo.environ.ConcreteModel
        With its time set ``m.t``.
    time_unit : str
        The model's time unit (for the derivatives' units).
    parameters : dict, optional
        Scalar ``Var``s (fixed by the engine at their ``parameters.yaml`` values).
    states : dict, optional
        ``Var``s indexed by ``m.t``, each with a ``DerivativeVar`` ``d<name>`` (see :func:`derivative`).
    inputs : dict, optional
        ``Var``s indexed by ``m.t``, fixed (at 0 until the scenario's programs set them).
    state_initialize : float
        Initial value of the states (the engine's forward integration replaces it).
    """
    for name, unit in (parameters or {}).items():
        m.add_component(name, pyo.Var(units=parse_unit(unit)))
    for name, unit in (states or {}).items():
        m.add_component(name, pyo.Var(m.t, units=parse_unit(unit), initialize=state_initialize))
    for name, unit in (inputs or {}).items():
        m.add_component(name, pyo.Var(m.t, units=parse_unit(unit), initialize=0.0))
        getattr(m, name).fix()
    for name in states or {}:
        m.add_component(f"d{name}", derivative(getattr(m, name), m.t, time_unit))
