"""COPS 3.0 methanol to hydrocarbons (Dolan, Moré & Munson 2004, ANL/MCS-TM-273).

D = (th2 + th5) y1 + y2
dy1/dt = -(2 th2 - th1 y2 / D + th3 + th4) y1
dy2/dt =  th1 y1 (th2 y1 - y2) / D + th3 y1
dy3/dt =  th1 y1 (y2 + th5 y1) / D + th4 y1,      y(0) = (1, 0, 0)
"""

import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set

TIME_UNIT = "dimensionless"


def build(settings=None):
    m = pyo.ConcreteModel(name="cops_methanol")
    m.t = time_set(settings, 1.122)
    for name in ("th1", "th2", "th3", "th4", "th5"):
        m.add_component(name, pyo.Var())
    m.y1 = pyo.Var(m.t, initialize=1.0)
    m.y2 = pyo.Var(m.t, initialize=0.0)
    m.y3 = pyo.Var(m.t, initialize=0.0)
    m.dy1 = derivative(m.y1, m.t, TIME_UNIT)
    m.dy2 = derivative(m.y2, m.t, TIME_UNIT)
    m.dy3 = derivative(m.y3, m.t, TIME_UNIT)
    m.D = pyo.Expression(m.t, rule=lambda m, t: (m.th2 + m.th5) * m.y1[t] + m.y2[t])
    m.ode1 = pyo.Constraint(
        m.t, rule=lambda m, t: m.dy1[t] == -(2 * m.th2 - m.th1 * m.y2[t] / m.D[t] + m.th3 + m.th4) * m.y1[t]
    )
    m.ode2 = pyo.Constraint(
        m.t, rule=lambda m, t: m.dy2[t] == m.th1 * m.y1[t] * (m.th2 * m.y1[t] - m.y2[t]) / m.D[t] + m.th3 * m.y1[t]
    )
    m.ode3 = pyo.Constraint(
        m.t, rule=lambda m, t: m.dy3[t] == m.th1 * m.y1[t] * (m.y2[t] + m.th5 * m.y1[t]) / m.D[t] + m.th4 * m.y1[t]
    )
    m.init1 = pyo.Constraint(expr=m.y1[0] == 1.0)
    m.init2 = pyo.Constraint(expr=m.y2[0] == 0.0)
    m.init3 = pyo.Constraint(expr=m.y3[0] == 0.0)
    return m
