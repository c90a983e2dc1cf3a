"""Monod fed-batch with a feed switch: the engine's test model.

Biomass ``X`` grows on substrate ``S`` (Monod kinetics); a feed of substrate
concentration ``Sf`` enters at rate ``F`` (an input program, e.g. switched on
at a given time), diluting the broth of volume ``V``:

    dX/dt = mu X - (F/V) X
    dS/dt = -mu X / Yxs + (F/V) (Sf - S)
    dV/dt = F,        mu = mu_max S / (Ks + S)

(Monod 1949, Annu Rev Microbiol 3:371; fed-batch balances e.g. Villadsen,
Nielsen & Lidén, Bioreaction Engineering Principles, 3rd ed., ch. 9.)
"""

import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set
from biotwin.processes.kinetics import positive_part

TIME_UNIT = "h"


def build(settings=None):
    u = pyo.units
    m = pyo.ConcreteModel(name="monod_switch")
    m.t = time_set(settings, 20.0)
    m.mu_max = pyo.Var(units=1 / u.h)
    m.Ks = pyo.Var(units=u.g / u.L)
    m.Yxs = pyo.Var(units=u.dimensionless)
    m.Sf = pyo.Var(units=u.g / u.L)
    m.X0 = pyo.Var(units=u.g / u.L)
    m.S0 = pyo.Var(units=u.g / u.L)
    m.V0 = pyo.Var(units=u.L)
    m.X = pyo.Var(m.t, units=u.g / u.L, initialize=1.0)
    m.S = pyo.Var(m.t, units=u.g / u.L, initialize=1.0)
    m.V = pyo.Var(m.t, units=u.L, initialize=1.0)
    m.F = pyo.Var(m.t, units=u.L / u.h, initialize=0.0)
    m.F.fix()
    m.dX = derivative(m.X, m.t, TIME_UNIT)
    m.dS = derivative(m.S, m.t, TIME_UNIT)
    m.dV = derivative(m.V, m.t, TIME_UNIT)
    # the rate law sees a smooth positive part of S (eps 1e-6 g/L), so a collocation polynomial or
    # an Ipopt iterate with S < 0 meets no pole at S = -Ks
    m.mu = pyo.Expression(
        m.t,
        rule=lambda m, t: (
            m.mu_max * positive_part(m.S[t], 1e-6 * u.g / u.L) / (m.Ks + positive_part(m.S[t], 1e-6 * u.g / u.L))
        ),
    )

    def x_balance(m, t):
        return m.dX[t] == m.mu[t] * m.X[t] - m.F[t] / m.V[t] * m.X[t]

    def s_balance(m, t):
        return m.dS[t] == -m.mu[t] * m.X[t] / m.Yxs + m.F[t] / m.V[t] * (m.Sf - m.S[t])

    m.x_balance = pyo.Constraint(m.t, rule=x_balance)
    m.s_balance = pyo.Constraint(m.t, rule=s_balance)
    m.v_balance = pyo.Constraint(m.t, rule=lambda m, t: m.dV[t] == m.F[t])
    t0 = m.t.first()
    m.X_init = pyo.Constraint(expr=m.X[t0] == m.X0)
    m.S_init = pyo.Constraint(expr=m.S[t0] == m.S0)
    m.V_init = pyo.Constraint(expr=m.V[t0] == m.V0)
    return m
