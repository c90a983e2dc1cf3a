"""COPS 3.0 gas-oil catalytic cracking (Dolan, Moré & Munson 2004, ANL/MCS-TM-273).

dy1/dt = -(theta1 + theta3) y1^2,   dy2/dt = theta1 y1^2 - theta2 y2,   y(0) = (1, 0)
"""

import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set

TIME_UNIT = "dimensionless"


def build(settings=None):
    m = pyo.ConcreteModel(name="cops_gasoil")
    m.t = time_set(settings, 0.95)
    for name in ("theta1", "theta2", "theta3", "y1_0", "y2_0"):
        m.add_component(name, pyo.Var())
    m.y1 = pyo.Var(m.t, initialize=1.0)
    m.y2 = pyo.Var(m.t, initialize=0.0)
    m.dy1 = derivative(m.y1, m.t, TIME_UNIT)
    m.dy2 = derivative(m.y2, m.t, TIME_UNIT)
    m.ode1 = pyo.Constraint(m.t, rule=lambda m, t: m.dy1[t] == -(m.theta1 + m.theta3) * m.y1[t] ** 2)
    m.ode2 = pyo.Constraint(m.t, rule=lambda m, t: m.dy2[t] == m.theta1 * m.y1[t] ** 2 - m.theta2 * m.y2[t])
    m.init1 = pyo.Constraint(expr=m.y1[0] == m.y1_0)
    m.init2 = pyo.Constraint(expr=m.y2[0] == m.y2_0)
    return m
