"""Decay whose rate constant rises linearly in time: the rate depends on time explicitly.

dX/dt = -k (1 + a t) X,  X(0) = X0  ->  X(t) = X0 exp(-k (t + a t^2 / 2))

The forward-integration start compiles the equations at one time point, so it cannot represent an
explicit time dependence; this model is how the tests check that biotwin says so instead of
integrating the wrong equation.
"""

import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set

TIME_UNIT = "h"


def build(settings=None):
    u = pyo.units
    m = pyo.ConcreteModel(name="time_varying")
    m.t = time_set(settings, 4.0)
    m.k = pyo.Var(units=1 / u.h)
    m.a = pyo.Var(units=1 / u.h)
    m.X0 = pyo.Var(units=u.g / u.L)
    m.X = pyo.Var(m.t, initialize=1.0, units=u.g / u.L)
    m.dX = derivative(m.X, m.t, TIME_UNIT)
    m.decay = pyo.Constraint(m.t, rule=lambda m, t: m.dX[t] == -m.k * (1 + m.a * t * u.h) * m.X[t])
    m.init = pyo.Constraint(expr=m.X[0] == m.X0)
    return m
