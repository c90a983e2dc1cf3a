"""HEK293 transient transfection and virus-like-particle (VLP) production as a Pyomo DAE.

States: viable and dead cells ``Xv``, ``Xd`` [Mcell/mL]; glucose, glutamine, lactate, ammonia
``Glc``, ``Gln``, ``Lac``, ``Amm`` [mM]; volume ``V`` [L]; per mL of culture: plasmid DNA in the medium
``DNA_med`` [ug/mL] and in the cells' endosomes, cytosol and nuclei ``DNA_endo``, ``DNA_cyto``,
``DNA_nuc`` [copies/nL = 1e6 copies/mL, so that divided by Mcell/mL they are copies per cell]; free PEI in the medium ``PEI_med`` and PEI carried by the cells ``PEI_cell``
[ug/mL]; medium conditioning ``M_cond`` [Mcell h/mL] (viable-cell hours the medium has seen since it
was fresh); intracellular product ``Gag`` and membrane-assembling ``Asm`` [vp/cell, VLP
equivalents]; extracellular ``VLP`` [Gvp/mL = 1e9 particles/mL]. Time in hours.

The per-cell quantities a scientist reads are expressions of those: plasmid copies per viable cell
``P_ext`` (medium), ``P_endo``, ``P_cyto``, ``P_nuc`` [1/cell] and cell-associated PEI ``PEI``
[pg/cell]. (1 pg/cell times 1 Mcell/mL is 1 ug/mL exactly.)

**Sourced.** Plasmid delivery, Nguyen et al. 2021 (Mol Ther Methods Clin Dev 21:642, the published
code's ``ode_viralProd``): uptake, endosomal escape, nuclear entry and degradation constants. Written
per mL, uptake is a first-order rate on the plasmid in the medium shared by the cells, and the cells'
pools are not diluted by growth (dividing cells share them; per cell, the ``P = DNA/Xv`` expressions
fall as the cells grow, exactly Nguyen et al.'s growth-dilution term):

    dDNA_med/dt  = dose Xv - r_up - k_inact DNA_med - (D_ex + D) DNA_med
    dDNA_endo/dt = r_up - (k_escape + k_pdeg + mu_d + D) DNA_endo
    dDNA_cyto/dt = k_escape DNA_endo - (k_nuclear + k_pdeg + mu_d + D) DNA_cyto
    dDNA_nuc/dt  = k_nuclear DNA_cyto - (k_pdeg + mu_d + D) DNA_nuc
    r_up = eta_PEI g_cond k_uptake DNA_med

(``mu_d DNA`` leaves with the dying cells, ``D`` is dilution by feeds, ``D_ex`` medium exchange or
perfusion). Nguyen et al.'s own form keeps the medium plasmid per cell with no growth term, i.e. the
medium gains ``(mu - mu_d) DNA_med``; it is ``settings: {plasmid_medium: per_cell}``, used only to
reproduce their trajectories (it makes DNA as the cells grow: 2.6x the dose by 96 hpt in a batch).

Growth and metabolism: the Monod/inhibition structure of Xing et al. 2010 shared with the CHO model
(:mod:`biotwin.processes.kinetics`), plus lactate consumption once glucose is limiting (documented for HEK293:
Petiot et al. 2011, BMC Biotechnol 11:84; Martinez-Monge et al. 2018, Appl Microbiol Biotechnol
102:10465).

**Proposed** (this model; forms chosen to give the published orders of magnitude, constants to be
fitted): PEI uptake efficiency ``eta_PEI`` (1 at 2:1 w/w PEI:DNA); polyplexes losing their
transfection competence in the medium (``k_inact``: they aggregate and settle); free PEI binding to the
cells (``k_PEI_bind``; at 2:1 w/w most PEI is free, Boeckle et al. 2004, J Gene Med 6:1102) and the
transfection burden of cell-associated PEI (growth inhibition and death); the cell-density effect as
medium conditioning (conditioned medium lowers PEI transfection efficiency and fresh medium at
transfection restores it: Durocher et al. 2002, Nucleic Acids Res 30:e9; Cervera et al. 2013,
J Biotechnol 166:152), a Hill decline ``g_cond`` of uptake in the conditioning ``M_cond``, which a
medium exchange resets; transfected
fraction ``f_T`` saturating at ``f_max`` (~60 %); expression from nuclear plasmid in transfected cells
reduced when growth drops; two-step assembly/budding delay; VLP degradation:

    eta_PEI = r/(K_PEI + r) (K_PEI + 2)/2,       r = PEI:DNA [w/w]
    g_cond  = 1/(1 + (M_cond/K_cond)^n_cond),    dM_cond/dt = Xv - (D_ex + D) M_cond
    dPEI_med/dt  = r dose Xv - k_PEI_bind PEI_med - (D_ex + D) PEI_med
    dPEI_cell/dt = k_PEI_bind PEI_med - (k_PEI_clear + mu_d + D) PEI_cell,   PEI = PEI_cell/Xv
    mu      = mu_Xing(Glc, Gln, Lac, Amm) K_burden/(K_burden + PEI)
    mu_d    = mu_d_Xing(Lac, Amm) + k_tox PEI
    f_T     = f_max P_nuc/(P_nuc + K_T)
    q_Gag   = k_expr f_T n/(K_nuc + n) (alpha_phys + (1 - alpha_phys) mu/mu_max),  n = P_nuc/f_T
    dGag/dt = q_Gag - (k_asm + k_gdeg + mu) Gag
    dAsm/dt = k_asm Gag - (k_bud + mu) Asm
    dVLP/dt = k_bud Asm Xv - k_vdeg VLP - (D_ex + D) VLP

Medium exchange and perfusion enter as a medium-replacement rate ``D_ex`` [1/h] that keeps the
volume and the cells and replaces the medium by fresh medium (``Glc_medium``, ``Gln_medium``, no
lactate, ammonia, plasmid, free PEI, conditioning or VLP). Feeds, boluses and samples as in the CHO model.
"""

import pyomo.environ as pyo

from biotwin.core.dae import declare, time_set
from biotwin.core.units import parse_unit
from biotwin.processes.cell_culture import FEED_INPUTS, add_uptake_and_dilution
from biotwin.processes.culture_recipes import culture_spellings, read_culture_scenario
from biotwin.processes.kinetics import (
    inhibition,
    monod,
    positive_part,
    smooth_switch,
    xing_death_rate,
    xing_growth_rate,
)

TIME_UNIT = "h"
AVOGADRO = 6.02214076e23  # [1/mol]
BP_MOLAR_MASS = 650.0  # mean molar mass of a DNA base pair [g/mol]

STATES = {
    "Xv": "Mcell/mL",
    "Xd": "Mcell/mL",
    "Glc": "mM",
    "Gln": "mM",
    "Lac": "mM",
    "Amm": "mM",
    "V": "L",
    "DNA_med": "ug/mL",
    "DNA_endo": "1/nL",
    "DNA_cyto": "1/nL",
    "DNA_nuc": "1/nL",
    "PEI_med": "ug/mL",
    "PEI_cell": "ug/mL",
    "M_cond": "Mcell*h/mL",
    "Gag": "vp/cell",
    "Asm": "vp/cell",
    "VLP": "Gvp/mL",
}
CULTURE_STATES = ["Xv", "Xd", "Glc", "Gln", "Lac", "Amm", "V"]  # those a recipe may set initially
INITIAL_PARAMETERS = CULTURE_STATES + ["DNA_med", "PEI_med", "M_cond"]  # states starting at <name>0
INPUTS = {
    **FEED_INPUTS,
    "DNA_dose": "pg/cell/h",
    "D_ex": "1/h",
    "mu_in": "1/h",
}
DNA_POOLS = ("endo", "cyto", "nuc")


# How the plasmid in the medium is kept (``settings['plasmid_medium']``):
#   per_volume  (default) a per-mL amount: it changes only by dosing, uptake, loss of competence, medium
#               exchange and dilution by feeds -- the medium never holds more than was dosed;
#   per_cell    Nguyen et al. 2021's form (their ode_viralProd): copies per cell with no growth term, so the
#               medium gains (mu - mu_d) DNA_med; kept to reproduce their published delivery trajectories
#               (tests/models/test_hek293_vlp.py).
PLASMID_MEDIUM_FORMS = ("per_volume", "per_cell")


def build(settings=None):
    """Build the (not discretized) model; ``settings['t_end']`` [h].

    ``settings['growth'] == 'prescribed'``: the specific growth rate is the input ``mu_in`` and no
    cell dies (to run the delivery sub-model on a given growth curve, as Nguyen et al. did).
    """
    settings = dict(settings or {})
    prescribed = settings.get("growth", "kinetic") == "prescribed"
    medium_form = settings.get("plasmid_medium", "per_volume")
    if medium_form not in PLASMID_MEDIUM_FORMS:
        raise ValueError(f"settings: plasmid_medium {medium_form!r} is not one of {', '.join(PLASMID_MEDIUM_FORMS)}")
    u = pyo.units
    m = pyo.ConcreteModel(name="hek293_vlp")
    m.t = time_set(settings, 144.0)
    declare(m, TIME_UNIT, settings["parameter_units"], STATES, INPUTS, state_initialize=0.0)
    conc_rate = u.mM / u.h
    dna_rate = 1 / u.nL / u.h  # plasmid copies per nL (1e6 copies/mL) per hour

    def pos(c):
        return positive_part(c, m.C_eps)

    def viable(t):  # [Mcell/mL], kept away from 0 for the per-cell expressions
        return positive_part(m.Xv[t], 1e-9 * u.Mcell / u.mL)

    m.copies_per_pg = pyo.Expression(
        expr=u.convert(AVOGADRO / u.mol / (m.plasmid_bp * BP_MOLAR_MASS * u.g / u.mol), to_units=1 / u.pg),
        doc="plasmid copies per pg DNA",
    )
    m.eta_PEI = pyo.Expression(
        expr=m.PEI_DNA_ratio / (m.K_PEI + m.PEI_DNA_ratio) * (m.K_PEI + 2) / 2,
        doc="PEI uptake efficiency relative to 2:1 w/w [-]",
    )

    def per_cell(amount, t, to_units):
        return u.convert(amount / viable(t), to_units=to_units)

    def per_volume(rate_per_cell, t, to_units):
        return u.convert(rate_per_cell * m.Xv[t], to_units=to_units)

    m.P_ext = pyo.Expression(
        m.t,
        rule=lambda m, t: per_cell(m.DNA_med[t], t, u.pg / u.cell) * m.copies_per_pg,
        doc="plasmid in the medium per viable cell [copies/cell]",
    )
    for pool in DNA_POOLS:
        m.add_component(
            f"P_{pool}",
            pyo.Expression(
                m.t,
                rule=lambda m, t, pool=pool: per_cell(getattr(m, f"DNA_{pool}")[t], t, 1 / u.cell),
                doc=f"plasmid copies per viable cell, {pool} [copies/cell]",
            ),
        )
    m.PEI = pyo.Expression(
        m.t, rule=lambda m, t: per_cell(m.PEI_cell[t], t, u.pg / u.cell), doc="PEI carried per viable cell [pg/cell]"
    )

    def pos_pei(c):
        return positive_part(c, 1e-9 * u.pg / u.cell)

    @m.Expression(m.t, doc="specific growth rate [1/h]")
    def mu(m, t):
        if prescribed:
            return m.mu_in[t]
        return xing_growth_rate(
            pos(m.Glc[t]), pos(m.Gln[t]), pos(m.Lac[t]), pos(m.Amm[t]), m.mu_max, m.K_Glc, m.K_Gln, m.KI_Lac, m.KI_Amm
        ) * inhibition(pos_pei(m.PEI[t]), m.K_burden)

    @m.Expression(m.t, doc="specific death rate [1/h]")
    def mu_d(m, t):
        if prescribed:
            return 0.0 / u.h
        return xing_death_rate(pos(m.Lac[t]), pos(m.Amm[t]), m.mu_d_max, m.KD_Lac, m.KD_Amm) + m.k_tox * pos_pei(
            m.PEI[t]
        )

    add_uptake_and_dilution(m, pos)  # q_Glc, q_Gln, q_Amm, D, viability

    @m.Expression(m.t, doc="specific lactate production, net of consumption once glucose is low [mmol/cell/h]")
    def q_Lac(m, t):
        return m.Y_Lac_Glc * m.q_Glc[t] - m.q_Lac_up * (1 - smooth_switch(m.Glc[t], m.Glc_switch, m.W_switch)) * monod(
            pos(m.Lac[t]), m.K_Lac_up
        )

    def pos_copies(c):
        return positive_part(c, 1e-9 / u.cell)

    m.g_cond = pyo.Expression(
        m.t,
        rule=lambda m, t: 1 / (1 + (positive_part(m.M_cond[t], 1e-9 * u.Mcell * u.h / u.mL) / m.K_cond) ** m.n_cond),
        doc="transfection (uptake) in conditioned medium relative to fresh medium [-]",
    )

    @m.Expression(m.t, doc="fraction of transfected cells [-]")
    def f_T(m, t):
        return m.f_max * pos_copies(m.P_nuc[t]) / (pos_copies(m.P_nuc[t]) + m.K_T)

    @m.Expression(m.t, doc="Gag expression per cell, VLP equivalents [vp/cell/h]")
    def q_Gag(m, t):
        per_transfected = (pos_copies(m.P_nuc[t]) + m.K_T) / m.f_max  # P_nuc / f_T, without 0/0
        return (
            m.k_expr
            * m.f_T[t]
            * per_transfected
            / (m.K_nuc + per_transfected)
            * (m.alpha_phys + (1 - m.alpha_phys) * m.mu[t] / m.mu_max)
        )

    # plasmid and PEI flows per mL of culture (the terms of the per-mL DNA balance)
    def copies(rate_ug_per_ml):  # [ug/mL/h] of plasmid -> [copies/nL/h]
        return u.convert(rate_ug_per_ml * m.copies_per_pg, to_units=dna_rate)

    m.dna_medium = pyo.Expression(
        m.t,
        rule=lambda m, t: u.convert(m.DNA_med[t] * m.copies_per_pg, to_units=1 / u.nL),
        doc="plasmid in the medium [copies/nL = 1e6 copies/mL]",
    )
    m.dna_dosed = pyo.Expression(
        m.t, rule=lambda m, t: copies(m.DNA_dose[t] * m.Xv[t]), doc="plasmid dosed [copies/nL/h]"
    )
    m.dna_uptake = pyo.Expression(
        m.t,
        rule=lambda m, t: copies(m.eta_PEI * m.g_cond[t] * m.k_uptake * m.DNA_med[t]),
        doc="plasmid taken up by the cells [copies/nL/h]",
    )
    m.dna_inactivated = pyo.Expression(
        m.t,
        rule=lambda m, t: copies(m.k_inact * m.DNA_med[t]),
        doc="plasmid in polyplexes losing their competence in the medium [copies/nL/h]",
    )
    m.dna_cells = pyo.Expression(m.t, rule=lambda m, t: m.DNA_endo[t] + m.DNA_cyto[t] + m.DNA_nuc[t], doc="[copies/nL]")
    m.dna_degraded = pyo.Expression(m.t, rule=lambda m, t: m.k_pdeg * m.dna_cells[t], doc="[copies/nL/h]")
    m.dna_with_dying = pyo.Expression(m.t, rule=lambda m, t: m.mu_d[t] * m.dna_cells[t], doc="[copies/nL/h]")
    m.dna_removed = pyo.Expression(
        m.t,
        rule=lambda m, t: copies((m.D_ex[t] + m.D[t]) * m.DNA_med[t]) + m.D[t] * m.dna_cells[t],
        doc="plasmid removed by medium exchange and diluted by feeds [copies/nL/h]",
    )
    medium_growth = 1.0 if medium_form == "per_cell" else 0.0
    m.dna_from_growth = pyo.Expression(
        m.t,
        rule=lambda m, t: copies(medium_growth * (m.mu[t] - m.mu_d[t]) * m.DNA_med[t]),
        doc="per_cell form only: medium plasmid made by viable-cell growth [copies/nL/h]",
    )

    c = m.add_component
    c("V_balance", pyo.Constraint(m.t, rule=lambda m, t: m.dV[t] == m.F_cont[t] + m.F_bolus[t] - m.F_out[t]))
    c("Xv_balance", pyo.Constraint(m.t, rule=lambda m, t: m.dXv[t] == (m.mu[t] - m.mu_d[t] - m.D[t]) * m.Xv[t]))
    c(
        "Xd_balance",
        pyo.Constraint(m.t, rule=lambda m, t: m.dXd[t] == m.mu_d[t] * m.Xv[t] - (m.k_lys + m.D[t]) * m.Xd[t]),
    )
    c(
        "Glc_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dGlc[t]
                == -per_volume(m.q_Glc[t], t, conc_rate)
                + m.F_cont[t] / m.V[t] * (m.Glc_feed - m.Glc[t])
                + m.F_bolus[t] / m.V[t] * (m.Glc_bolus[t] - m.Glc[t])
                + m.D_ex[t] * (m.Glc_medium - m.Glc[t])
            ),
        ),
    )
    c(
        "Gln_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dGln[t]
                == -per_volume(m.q_Gln[t], t, conc_rate)
                - m.d_Gln * m.Gln[t]
                + m.F_cont[t] / m.V[t] * (m.Gln_feed - m.Gln[t])
                + m.F_bolus[t] / m.V[t] * (m.Gln_bolus[t] - m.Gln[t])
                + m.D_ex[t] * (m.Gln_medium - m.Gln[t])
            ),
        ),
    )
    c(
        "Lac_balance",
        pyo.Constraint(
            m.t, rule=lambda m, t: m.dLac[t] == per_volume(m.q_Lac[t], t, conc_rate) - (m.D[t] + m.D_ex[t]) * m.Lac[t]
        ),
    )
    c(
        "Amm_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dAmm[t] == per_volume(m.q_Amm[t], t, conc_rate) + m.d_Gln * m.Gln[t] - (m.D[t] + m.D_ex[t]) * m.Amm[t]
            ),
        ),
    )
    c(
        "DNA_med_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                copies(m.dDNA_med[t])
                == m.dna_dosed[t]
                - m.dna_uptake[t]
                - m.dna_inactivated[t]
                - copies((m.D_ex[t] + m.D[t]) * m.DNA_med[t])
                + m.dna_from_growth[t]
            ),
        ),
    )
    leaving = lambda m, t: m.k_pdeg + m.mu_d[t] + m.D[t]
    c(
        "DNA_endo_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: m.dDNA_endo[t] == m.dna_uptake[t] - (m.k_escape + leaving(m, t)) * m.DNA_endo[t],
        ),
    )
    c(
        "DNA_cyto_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dDNA_cyto[t] == m.k_escape * m.DNA_endo[t] - (m.k_nuclear + leaving(m, t)) * m.DNA_cyto[t]
            ),
        ),
    )
    c(
        "DNA_nuc_balance",
        pyo.Constraint(
            m.t, rule=lambda m, t: m.dDNA_nuc[t] == m.k_nuclear * m.DNA_cyto[t] - leaving(m, t) * m.DNA_nuc[t]
        ),
    )
    pei_rate = u.ug / u.mL / u.h
    c(
        "PEI_med_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dPEI_med[t]
                == u.convert(m.PEI_DNA_ratio * m.DNA_dose[t] * m.Xv[t], to_units=pei_rate)
                - (m.k_PEI_bind + m.D_ex[t] + m.D[t]) * m.PEI_med[t]
            ),
        ),
    )
    c(
        "PEI_cell_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dPEI_cell[t] == m.k_PEI_bind * m.PEI_med[t] - (m.k_PEI_clear + m.mu_d[t] + m.D[t]) * m.PEI_cell[t]
            ),
        ),
    )
    c(
        "M_cond_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dM_cond[t] == u.convert(m.Xv[t], to_units=u.Mcell / u.mL) - (m.D_ex[t] + m.D[t]) * m.M_cond[t]
            ),
        ),
    )
    c(
        "Gag_balance",
        pyo.Constraint(m.t, rule=lambda m, t: m.dGag[t] == m.q_Gag[t] - (m.k_asm + m.k_gdeg + m.mu[t]) * m.Gag[t]),
    )
    c(
        "Asm_balance",
        pyo.Constraint(m.t, rule=lambda m, t: m.dAsm[t] == m.k_asm * m.Gag[t] - (m.k_bud + m.mu[t]) * m.Asm[t]),
    )
    c(
        "VLP_balance",
        pyo.Constraint(
            m.t,
            rule=lambda m, t: (
                m.dVLP[t]
                == per_volume(m.k_bud * m.Asm[t], t, parse_unit("Gvp/mL/h"))
                - (m.k_vdeg + m.D[t] + m.D_ex[t]) * m.VLP[t]
            ),
        ),
    )
    t0 = m.t.first()
    for name in STATES:
        state = getattr(m, name)
        if name in INITIAL_PARAMETERS:
            c(f"{name}_init", pyo.Constraint(expr=state[t0] == getattr(m, f"{name}0")))
        else:
            state[t0].fix(0.0)
    return m


# -- recipe schema -------------------------------------------------------------------------------
HEK_KEYS = {"transfections", "pei_to_dna", "medium_exchanges", "perfusion", "growth_rate", "transfection_duration"}
EXCHANGE_DURATION_H = 0.1
COMPLETE_EXCHANGE_RESIDUAL = 1e-6  # fraction of the old medium left by a complete exchange
SPECIES = ["Glc", "Gln"]
#: Old spellings (unit in the key, numbers without unit), read with a RecipeSpellingWarning giving the new one.
RECIPE_SPELLINGS = {
    **culture_spellings({k: STATES[k] for k in CULTURE_STATES}, SPECIES),
    "transfections.dna_pg_per_cell": ("dna", "pg/cell"),
    "transfections.copies_per_cell": ("copies", "1/cell"),
    "transfection_duration_h": ("transfection_duration", "h"),
    "medium_exchanges.duration_h": ("duration", "h"),
    "perfusion.rate": ("points", "", {"unit": "1/d"}),  # the old reader's default unit
    "growth_rate_1_per_h": ("growth_rate", "1/h"),
}


def transfection_item_config():
    """One transfection: ``{time: 40, dna: 1.0 pg/cell}`` or ``{time: 0, copies: 7.6e4 1/cell}``."""
    from pyomo.common.config import ConfigDict, ConfigValue

    from biotwin.core.schema import Number, Quantity

    tf = ConfigDict(description="a PEI/plasmid addition")
    tf.declare("time", ConfigValue(domain=Number(non_negative=True), default=None, description="[time_unit]"))
    tf.declare("dna", ConfigValue(domain=Quantity("pg/cell", positive=True), default=None, description="[pg/cell]"))
    tf.declare("copies", ConfigValue(domain=Quantity("1/cell", positive=True), default=None, description="[1/cell]"))
    return tf


def exchange_item_config():
    """One medium exchange: ``{time: 46, fraction: 1.0, duration: 0.1 h}``."""
    from pyomo.common.config import ConfigDict, ConfigValue

    from biotwin.core.schema import Number, Quantity

    ex = ConfigDict(description="cells kept, medium replaced by fresh medium")
    ex.declare("time", ConfigValue(domain=Number(non_negative=True), default=None, description="[time_unit]"))
    ex.declare("fraction", ConfigValue(domain=Number(positive=True), default=1.0, description="replaced [-]"))
    ex.declare("duration", ConfigValue(domain=Quantity("h", positive=True), default=f"{EXCHANGE_DURATION_H} h"))
    return ex


def transfection_config():
    """The transfection operations of a HEK293 recipe (``pyomo.common.config``), beside the culture recipe."""
    from pyomo.common.config import ConfigDict, ConfigValue

    from biotwin.core.schema import Number, Points, Quantity

    c = ConfigDict(description="transfection operations")
    c.declare("transfections", ConfigValue(domain=list, default=[], description="each transfection_item_config"))
    c.declare("pei_to_dna", ConfigValue(domain=Number(positive=True), default=None, description="PEI:DNA [w/w]"))
    c.declare(
        "transfection_duration",
        ConfigValue(domain=Quantity("h", positive=True), default=f"{EXCHANGE_DURATION_H} h", description="pulses"),
    )
    c.declare("medium_exchanges", ConfigValue(domain=list, default=[], description="each exchange_item_config"))
    perfusion = c.declare("perfusion", ConfigDict(description="vessel volumes of fresh medium per time"))
    perfusion.declare("unit", ConfigValue(domain=str, default=None, description="e.g. 1/d"))
    perfusion.declare("points", ConfigValue(domain=list, default=None, description="[[time, rate], ...]"))
    c.declare("growth_rate", ConfigValue(domain=Points("1/h"), default=None, description="prescribed growth"))
    return c


def _exchange_program(exchanges, t_end):
    """Points of the medium-replacement rate: each exchange a pulse cut into steps of about one e-fold.

    A complete exchange is ln(1e6) = 13.8 e-folds; across one collocation element Radau IIA's
    stability function R(-13.8) = 0.06 would leave 6 % of the old medium. The steps' corners become
    element boundaries, so each element sees about one e-fold (R(-1) matches exp(-1) to 3e-5).
    """
    import math

    points = [[0.0, 0.0]]
    for start, end, rate in sorted(exchanges):
        steps = max(1, math.ceil(rate * (end - start)))
        if points[-1][0] < start:
            points.append([start, 0.0])
        points.append([start, rate])
        points.extend([[start + (end - start) * k / steps, rate] for k in range(1, steps + 1)])
        points.append([end, 0.0])
    if points[-1][0] < t_end:
        points.append([t_end, 0.0])
    return points


def read_scenario(raw, where):
    """The cell-culture recipe (:mod:`biotwin.processes.culture_recipes`) plus transfection operations.

    Extra keys (times in the recipe's ``time_unit``)::

        transfections:                       # PEI/plasmid additions, 0.1 h pulses
          - {time: 40, dna: 1.0 pg/cell}       # or copies: 7.6e4 1/cell; at time 0: the initial state
        pei_to_dna: 2.0                      # PEI:DNA [w/w] of the transfections
        transfection_duration: 0.1 h         # length of the plasmid pulses (default 0.1 h)
        medium_exchanges:                    # cells kept, medium replaced by fresh medium
          - {time: 46, fraction: 1.0}          # 1.0 leaves 1e-6 of the old medium (over duration, 0.1 h)
        perfusion: {unit: 1/d, points: [[0, 0], [100, 0.5]]}   # vessel volumes of fresh medium per time
        growth_rate: {unit: 1/h, points: [[0, 0.049], ...]}    # prescribed growth (delivery studies)
    """
    import math
    from pathlib import Path

    from biotwin.core.errors import ScenarioError
    from biotwin.core.parameters import default_values
    from biotwin.core.schema import Points, validate
    from biotwin.processes.culture_recipes import check_overlaps, hours_per, pulse_program

    out = read_culture_scenario(raw, where, {k: STATES[k] for k in CULTURE_STATES}, SPECIES, model_keys=HEK_KEYS)
    cfg = validate(transfection_config(), {k: v for k, v in raw.items() if k in HEK_KEYS}, where)
    unit = raw.get("time_unit", "h")
    hours = hours_per(str(unit))
    t_end = out["t_end"]
    params = out["parameters"]
    defaults = default_values(Path(__file__).with_name("parameters.yaml"))
    bp = float(params.get("plasmid_bp", defaults["plasmid_bp"]))
    copies_per_pg = AVOGADRO / (bp * BP_MOLAR_MASS) * 1e-12

    tf_duration = cfg.transfection_duration
    pulses = []
    for i, given in enumerate(cfg.transfections):
        label = f"{where}: transfection {i}"
        tf = validate(transfection_item_config(), given, label)
        if tf.time is None:
            raise ScenarioError(f"{label}: give its time [{unit}]")
        if (tf.dna is None) == (tf.copies is None):
            raise ScenarioError(f"{label}: give exactly one of dna (e.g. 1.0 pg/cell = 1 ug per 1e6 cells) and copies")
        dna = tf.dna if tf.dna is not None else tf.copies / copies_per_pg
        start = tf.time * hours
        if start + tf_duration > t_end + 1e-9:
            raise ScenarioError(f"{label}: at {tf.time:g} {unit}, after the end of the culture")
        if start == 0.0:  # at the start: the initial state, exactly (as Nguyen et al. 2021)
            if "DNA_med0" in params or "PEI_med0" in params:
                raise ScenarioError(
                    f"{label}: at time 0 it sets DNA_med0 and PEI_med0; do not give them as parameters too"
                )
            xv0 = float(params.get("Xv0", defaults["Xv0"]))  # [Mcell/mL]; pg/cell x Mcell/mL = ug/mL
            ratio = cfg.pei_to_dna if cfg.pei_to_dna is not None else defaults["PEI_DNA_ratio"]
            params["DNA_med0"] = dna * xv0
            params["PEI_med0"] = dna * xv0 * float(ratio)
            continue
        pulses.append((start, start + tf_duration, dna / tf_duration))
    check_overlaps(pulses, "transfections", where, unit, hours)
    out["inputs"]["DNA_dose"] = {"unit": "pg/cell/h", "points": pulse_program(pulses, t_end)}
    if cfg.pei_to_dna is not None:
        params["PEI_DNA_ratio"] = cfg.pei_to_dna

    exchanges = []
    for i, given in enumerate(cfg.medium_exchanges):
        label = f"{where}: medium exchange {i}"
        ex = validate(exchange_item_config(), given, label)
        if ex.time is None:
            raise ScenarioError(f"{label}: give its time [{unit}] (fraction of the medium replaced, default 1)")
        if ex.fraction > 1:
            raise ScenarioError(f"{label}: fraction {ex.fraction} above 1")
        residual = max(1 - ex.fraction, COMPLETE_EXCHANGE_RESIDUAL)
        start = ex.time * hours
        if start + ex.duration > t_end + 1e-9:
            raise ScenarioError(f"{label}: at {ex.time:g} {unit}, after the end of the culture")
        exchanges.append((start, start + ex.duration, -math.log(residual) / ex.duration))
    check_overlaps(exchanges, "medium exchanges", where, unit, hours)
    points = _exchange_program(exchanges, t_end)
    if raw.get("perfusion") and cfg.perfusion.points is None:
        raise ScenarioError(f"{where}: perfusion: give its points, [[time, vessel volumes per time], ...]")
    if cfg.perfusion.points is not None:
        if exchanges:
            raise ScenarioError(f"{where}: give medium_exchanges or perfusion, not both")
        if cfg.perfusion.unit is None:
            raise ScenarioError(f"{where}: perfusion: give the rate's unit (unit: 1/d, vessel volumes per day)")
        try:
            rate = Points("1/h", non_negative=True)({"unit": cfg.perfusion.unit, "points": cfg.perfusion.points})
        except ValueError as exc:
            raise ScenarioError(f"{where}: perfusion: {exc}") from None
        points = [[t * hours, v] for t, v in rate]
    out["inputs"]["D_ex"] = {"unit": "1/h", "points": points}

    if cfg.growth_rate is not None:
        out.setdefault("settings", {})["growth"] = "prescribed"
        out["inputs"]["mu_in"] = {"unit": "1/h", "points": [[t * hours, v] for t, v in cfg.growth_rate]}
    return out


# -- outputs -------------------------------------------------------------------------------------
def summary(result):
    """Key numbers of a run: peak VCD, final viability and titer, and the timing of delivery and production."""
    w = result.wide
    out = {
        "final_time_h": float(w["time"].iloc[-1]),
        "peak_VCD_Mcell_per_mL": float(w["Xv"].max()),
        "final_viability_percent": float(w["viability"].iloc[-1]),
        "final_VLP_per_mL": float(w["VLP"].iloc[-1]) * 1e9,
        "peak_VLP_per_mL": float(w["VLP"].max()) * 1e9,
        "max_nuclear_plasmid_per_cell": float(w["P_nuc"].max()),
        "max_transfected_fraction": float(w["f_T"].max()),
    }
    return out


# -- interactive explorer (biotwin.explore) -------------------------------------------------------
def _explorer_transfection_time(raw, value):
    out = dict(raw)
    shift = value - float(raw["transfections"][0]["time"])
    out["transfections"] = [{**tf, "time": float(tf["time"]) + shift} for tf in raw["transfections"]]
    out["medium_exchanges"] = [{**ex, "time": float(ex["time"]) + shift} for ex in raw.get("medium_exchanges") or []]
    if not out["medium_exchanges"]:
        out.pop("medium_exchanges")
    return out


def _explorer_dna(raw, value):
    return {
        **raw,
        "transfections": [
            {k: v for k, v in tf.items() if k != "copies"} | {"dna": {"value": value, "unit": "pg/cell"}}
            for tf in raw["transfections"]
        ],
    }


def _explorer_readouts(result):
    s = summary(result)
    return {
        "final VLP titer [1e9 vp/mL]": s["final_VLP_per_mL"] / 1e9,
        "peak VCD [1e6 cells/mL]": s["peak_VCD_Mcell_per_mL"],
        "final viability [%]": s["final_viability_percent"],
        "transfected fraction [-]": s["max_transfected_fraction"],
    }


EXPLORER = {
    "scenario": "batch_transfection",
    "nfe": 68,
    "knobs": [
        {
            "name": "transfection_h",
            "label": "transfection time",
            "unit": "h",
            "min": 24,
            "max": 72,
            "step": 1,
            "value": 40,
            "apply": _explorer_transfection_time,
        },
        {
            "name": "dna",
            "label": "plasmid DNA",
            "unit": "pg/cell",
            "min": 0.25,
            "max": 2.0,
            "step": 0.05,
            "value": 1.0,
            "apply": _explorer_dna,
        },
    ],
    "parameters": ["k_expr", "mu_max"],
    "panels": [
        ("Xv", "viable cells [1e6 cells/mL]"),
        ("viability", "viability [%]"),
        ("Glc", "glucose [mM]"),
        ("Lac", "lactate [mM]"),
        ("P_nuc", "nuclear plasmid [copies/cell]"),
        ("VLP", "VLP [1e9 vp/mL]"),
    ],
    "readouts": _explorer_readouts,
}
