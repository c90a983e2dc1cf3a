"""Pyomo expressions shared by the cell-culture models (mAb CHO fed-batch, HEK293 VLP).

Both models have viable and dead cells ``Xv, Xd`` [Mcell/mL], glucose, glutamine, lactate and
ammonia [mM] and a volume ``V`` [L] fed continuously (``F_cont``) and by boluses (``F_bolus``), with
the Xing et al. (2010) metabolism of :mod:`biotwin.processes.kinetics`. The specific growth rate ``m.mu`` is
the model's own (the HEK293 model adds a PEI burden) and must be declared first.
"""

from __future__ import annotations

import pyomo.environ as pyo

from biotwin.processes.kinetics import smooth_switch, xing_glutamine_maintenance

#: Feed inputs every cell-culture model declares (what :mod:`biotwin.processes.culture_recipes` writes and
#: :func:`add_uptake_and_dilution` reads): continuous feed, bolus pulses and withdrawal [L/h], bolus composition [mM].
FEED_INPUTS = {"F_cont": "L/h", "F_bolus": "L/h", "F_out": "L/h", "Glc_bolus": "mM", "Gln_bolus": "mM"}


def add_uptake_and_dilution(m, pos, extra_feed=None, overflow=None) -> None:
    """Add ``q_Glc, q_Gln, q_Amm, D, viability`` (indexed by ``m.t``) to a culture model.

    Parameters
    ----------
    m : pyomo.environ.ConcreteModel
        With the states, the feeds and the parameters ``m_Glc, C_exh, W_exh, Y_X_Glc, a1_Gln,
        a2_Gln, Y_X_Gln, Y_Amm_Gln, r_Amm`` and the expression ``mu``.
    pos : callable
        The model's smooth positive part of a concentration (``biotwin.processes.kinetics.positive_part``).
    extra_feed : callable, optional
        ``t -> expression`` [L/h] of a further feed that dilutes the culture (a glucose controller's stock).
    overflow : callable, optional
        ``t -> expression`` [mmol/cell/h]: glucose taken up beyond growth and maintenance (overflow
        metabolism), added to ``q_Glc``.

    Notes
    -----
    Glucose uptake: maintenance, stopped smoothly at exhaustion, plus growth ``mu / Y_X_Glc``;
    glutamine: saturating maintenance plus growth; ammonia: from glutamine used for growth, minus
    a zero-order uptake stopped at exhaustion (Xing et al. 2010, as in kkiviat/of-compartments).
    """
    m.q_Glc = pyo.Expression(
        m.t,
        doc="specific glucose uptake [mmol/cell/h]",
        rule=lambda m, t: (
            m.m_Glc * smooth_switch(m.Glc[t], m.C_exh, m.W_exh) + m.mu[t] / m.Y_X_Glc + (overflow(t) if overflow else 0)
        ),
    )
    m.q_Gln = pyo.Expression(
        m.t,
        doc="specific glutamine uptake [mmol/cell/h]",
        rule=lambda m, t: xing_glutamine_maintenance(pos(m.Gln[t]), m.a1_Gln, m.a2_Gln) + m.mu[t] / m.Y_X_Gln,
    )
    m.q_Amm = pyo.Expression(
        m.t,
        doc="specific ammonia production by cells [mmol/cell/h]",
        rule=lambda m, t: m.Y_Amm_Gln * m.mu[t] / m.Y_X_Gln - m.r_Amm * smooth_switch(m.Amm[t], m.C_exh, m.W_exh),
    )
    m.D = pyo.Expression(
        m.t,
        doc="dilution rate by feeding [1/h]",
        rule=lambda m, t: (m.F_cont[t] + m.F_bolus[t] + (extra_feed(t) if extra_feed else 0)) / m.V[t],
    )
    m.viability = pyo.Expression(
        m.t, doc="viability [%]", rule=lambda m, t: 100 * pyo.units.percent * m.Xv[t] / (m.Xv[t] + m.Xd[t])
    )
