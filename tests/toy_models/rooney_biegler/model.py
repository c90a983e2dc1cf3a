"""Rooney & Biegler (2001, AIChE J 47:1794), the parmest example: y = asymptote (1 - exp(-rate t)).

Algebraic: the 'time' axis is the sampling hour; there are no differential states.
"""

import pyomo.environ as pyo

from biotwin.core.dae import time_set

TIME_UNIT = "h"


def build(settings=None):
    u = pyo.units
    m = pyo.ConcreteModel(name="rooney_biegler")
    m.t = time_set(settings, 7.0)
    m.asymptote = pyo.Var(units=u.dimensionless)
    m.rate_constant = pyo.Var(units=1 / u.h)
    m.y = pyo.Var(m.t, initialize=10.0, units=u.dimensionless)
    m.response = pyo.Constraint(
        m.t, rule=lambda m, t: m.y[t] == m.asymptote * (1 - pyo.exp(-m.rate_constant * t * u.h))
    )
    return m
