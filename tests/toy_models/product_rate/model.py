"""First-order decay whose rate is a product of two parameters: only k1*k2 is identifiable.

dX/dt = -k1 k2 X,  X(0) = 1
"""

import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set

TIME_UNIT = "h"


def build(settings=None):
    u = pyo.units
    m = pyo.ConcreteModel(name="product_rate")
    m.t = time_set(settings, 5.0)
    m.k1 = pyo.Var(units=1 / u.h)
    m.k2 = pyo.Var(units=u.dimensionless)
    m.X = pyo.Var(m.t, initialize=1.0, units=u.g / u.L)
    m.dX = derivative(m.X, m.t, TIME_UNIT)
    m.decay = pyo.Constraint(m.t, rule=lambda m, t: m.dX[t] == -m.k1 * m.k2 * m.X[t])
    m.init = pyo.Constraint(expr=m.X[0] == 1.0 * u.g / u.L)
    return m
