"""Monoclonal-antibody fed-batch CHO culture (Xing et al. 2010 kinetics) as a Pyomo DAE.

States (user-facing units): viable and dead cell density ``Xv``, ``Xd`` [Mcell/mL =
1e6 cells/mL], glucose ``Glc``, glutamine ``Gln``, lactate ``Lac``, ammonia ``Amm``
[mM], antibody ``titer`` [g/L], broth volume ``V`` [L]. Time in hours.

Kinetics: Xing et al. (2010), Biotechnol Prog 26:208, in the form of the
independent implementation kkiviat/of-compartments (see :mod:`biotwin.processes.kinetics`):

    mu     = mu_max Glc/(K_Glc+Glc) Gln/(K_Gln+Gln) KI_Lac/(KI_Lac+Lac) KI_Amm/(KI_Amm+Amm)
    mu_d   = mu_d_max Lac/(KD_Lac+Lac) Amm/(KD_Amm+Amm)
    q_Glc  = m_Glc s(Glc) + mu/Y_X_Glc                      glucose uptake [mmol/cell/h]
    q_Gln  = a1_Gln Gln/(a2_Gln+Gln) + mu/Y_X_Gln            glutamine uptake
    q_Lac  = Y_Lac_Glc q_Glc                                 lactate from glucose
    q_Amm  = Y_Amm_Gln mu/Y_X_Gln - r_Amm s(Amm)             ammonia from glutamine, Xing's removal term
    d_Gln                                                    first-order glutamine degradation (gives ammonia)
    q_P    = alpha_P mu + beta_P                             Luedeking-Piret antibody productivity [pg/cell/d]

s(c) is a smooth switch (algebraic sigmoid, centre C_exh = 1e-3 mM, width
W_exh = 1e-5 mM) that stops the zero-order glucose maintenance and ammonia removal
terms at exhaustion, so the concentrations stay non-negative; above 0.01 mM it
changes those terms by less than 3e-7 relative. Concentrations enter the rate
laws through a smooth positive part (``C_eps`` = 1e-6 mM), so a collocation
polynomial dipping slightly below zero at exhaustion meets no Monod pole.

Fed-batch balances with a continuous feed ``F_cont`` (composition ``Glc_feed``,
``Gln_feed``), bolus pulses ``F_bolus`` (composition inputs ``Glc_bolus``,
``Gln_bolus``) and broth withdrawal ``F_out`` (samples), all in L/h:

    dV/dt      = F_cont + F_bolus - F_out
    dXv/dt     = (mu - mu_d) Xv - D Xv,       D = (F_cont + F_bolus)/V
    dXd/dt     = mu_d Xv - k_lys Xd - D Xd
    dGlc/dt    = -q_Glc Xv + F_cont/V (Glc_feed - Glc) + F_bolus/V (Glc_bolus - Glc)
    dGln/dt    = -q_Gln Xv - d_Gln Gln + F_cont/V (Gln_feed - Gln) + F_bolus/V (Gln_bolus - Gln)
    dLac/dt    = q_Lac Xv - D Lac
    dAmm/dt    = q_Amm Xv + d_Gln Gln - D Amm
    dtiter/dt  = q_P Xv - D titer

Withdrawal removes broth at its own composition, so it changes V but no concentration.
"""

import pyomo.environ as pyo

from biotwin.core.dae import declare, time_set
from biotwin.processes.cell_culture import add_uptake_and_dilution
from biotwin.processes.culture_recipes import read_culture_scenario
from biotwin.processes.kinetics import positive_part, xing_death_rate, xing_growth_rate

TIME_UNIT = "h"

STATES = {
    "Xv": "Mcell/mL",
    "Xd": "Mcell/mL",
    "Glc": "mM",
    "Gln": "mM",
    "Lac": "mM",
    "Amm": "mM",
    "titer": "g/L",
    "V": "L",
}
INPUTS = {"F_cont": "L/h", "F_bolus": "L/h", "F_out": "L/h", "Glc_bolus": "mM", "Gln_bolus": "mM"}


def build(settings=None):
    """Build the (not discretized) fed-batch model; ``settings['t_end']`` [h]."""
    u = pyo.units
    m = pyo.ConcreteModel(name="mab_fedbatch")
    m.t = time_set(settings, 336.0)
    declare(m, TIME_UNIT, settings["parameter_units"], STATES, INPUTS, state_initialize=1.0)

    conc_rate = u.mM / u.h

    def pos(c):
        return positive_part(c, m.C_eps)

    @m.Expression(m.t, doc="specific growth rate [1/h]")
    def mu(m, t):
        return xing_growth_rate(
            pos(m.Glc[t]), pos(m.Gln[t]), pos(m.Lac[t]), pos(m.Amm[t]), m.mu_max, m.K_Glc, m.K_Gln, m.KI_Lac, m.KI_Amm
        )

    @m.Expression(m.t, doc="specific death rate [1/h]")
    def mu_d(m, t):
        return xing_death_rate(pos(m.Lac[t]), pos(m.Amm[t]), m.mu_d_max, m.KD_Lac, m.KD_Amm)

    add_uptake_and_dilution(m, pos)  # q_Glc, q_Gln, q_Amm, D, viability

    @m.Expression(m.t, doc="specific antibody productivity [pg/cell/d]")
    def q_P(m, t):
        return m.alpha_P * u.convert(m.mu[t], to_units=1 / u.d) + m.beta_P

    def per_volume(rate_per_cell, t, to_units):
        """Specific rate times viable cell density, in the balance's units."""
        return u.convert(rate_per_cell * m.Xv[t], to_units=to_units)

    m.V_balance = pyo.Constraint(m.t, rule=lambda m, t: m.dV[t] == m.F_cont[t] + m.F_bolus[t] - m.F_out[t])
    m.Xv_balance = pyo.Constraint(m.t, rule=lambda m, t: m.dXv[t] == (m.mu[t] - m.mu_d[t] - m.D[t]) * m.Xv[t])
    m.Xd_balance = pyo.Constraint(m.t, rule=lambda m, t: m.dXd[t] == m.mu_d[t] * m.Xv[t] - (m.k_lys + m.D[t]) * m.Xd[t])
    m.Glc_balance = pyo.Constraint(
        m.t,
        rule=lambda m, t: (
            m.dGlc[t]
            == -per_volume(m.q_Glc[t], t, conc_rate)
            + m.F_cont[t] / m.V[t] * (m.Glc_feed - m.Glc[t])
            + m.F_bolus[t] / m.V[t] * (m.Glc_bolus[t] - m.Glc[t])
        ),
    )
    m.Gln_balance = pyo.Constraint(
        m.t,
        rule=lambda m, t: (
            m.dGln[t]
            == -per_volume(m.q_Gln[t], t, conc_rate)
            - m.d_Gln * m.Gln[t]
            + m.F_cont[t] / m.V[t] * (m.Gln_feed - m.Gln[t])
            + m.F_bolus[t] / m.V[t] * (m.Gln_bolus[t] - m.Gln[t])
        ),
    )
    m.Lac_balance = pyo.Constraint(
        m.t, rule=lambda m, t: m.dLac[t] == per_volume(m.Y_Lac_Glc * m.q_Glc[t], t, conc_rate) - m.D[t] * m.Lac[t]
    )
    m.Amm_balance = pyo.Constraint(
        m.t,
        rule=lambda m, t: m.dAmm[t] == per_volume(m.q_Amm[t], t, conc_rate) + m.d_Gln * m.Gln[t] - m.D[t] * m.Amm[t],
    )
    m.titer_balance = pyo.Constraint(
        m.t, rule=lambda m, t: m.dtiter[t] == per_volume(m.q_P[t], t, u.g / u.L / u.h) - m.D[t] * m.titer[t]
    )

    t0 = m.t.first()
    for name in STATES:
        state, init = getattr(m, name), getattr(m, f"{name}0")
        m.add_component(f"{name}_init", pyo.Constraint(expr=state[t0] == init))
    return m


def read_scenario(raw, where):
    """Translate this model's recipe schema (see :mod:`biotwin.processes.culture_recipes`) to the generic one."""
    return read_culture_scenario(raw, where, STATES, ["Glc", "Gln"])


# -- interactive explorer (biotwin.explore) -------------------------------------------------------
def _set_seeding(raw, value):
    return {**raw, "initial": {**(raw.get("initial") or {}), "Xv": value}}


def _scale_feeds(raw, factor):
    boluses = [{**b, "volume_L": b["volume_L"] * factor} for b in raw.get("boluses") or []]
    return {**raw, "boluses": boluses}


def _readouts(result):
    w = result.wide
    return {
        "final titer [g/L]": float(w["titer"].iloc[-1]),
        "peak VCD [1e6 cells/mL]": float(w["Xv"].max()),
        "final viability [%]": float(w["viability"].iloc[-1]),
        "peak lactate [mM]": float(w["Lac"].max()),
    }


EXPLORER = {
    "scenario": "nominal_14d",
    "nfe": 56,
    "knobs": [
        {
            "name": "seeding",
            "label": "seeding density",
            "unit": "1e6 cells/mL",
            "min": 0.1,
            "max": 1.0,
            "step": 0.05,
            "value": 0.3,
            "apply": _set_seeding,
        },
        {
            "name": "feed_factor",
            "label": "bolus volumes x",
            "unit": "-",
            "min": 0.05,
            "max": 2.5,
            "step": 0.05,
            "value": 1.0,
            "apply": _scale_feeds,
        },
    ],
    "parameters": ["mu_max", "beta_P"],
    "panels": [
        ("Xv", "viable cells [1e6 cells/mL]"),
        ("viability", "viability [%]"),
        ("Glc", "glucose [mM]"),
        ("Lac", "lactate [mM]"),
        ("Amm", "ammonia [mM]"),
        ("titer", "titer [g/L]"),
    ],
    "readouts": _readouts,
}
