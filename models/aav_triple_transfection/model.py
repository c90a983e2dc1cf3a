"""AAV production by triple transfection of HEK293 cells (Nguyen et al. 2021) as a Pyomo DAE.

The published mechanistic model of Nguyen, Sha, Hong, Maloney, Barone, Neufeld, Wolfrum, Springs,
Sinskey and Braatz (2021), *Mol Ther Methods Clin Dev* 21:642-655, written from its equations:
three plasmids (``RC``: Rep/Cap, ``Vec``: the vector genome, ``Help``: adenoviral helper) are
delivered to the nucleus; Rep and Cap proteins are made from nuclear Rep/Cap plasmid where helper
plasmid is present; Cap assembles into empty capsids (60 subunits each); Rep replicates the vector
genome; Rep binds empty capsids, which package a replicated genome and become full; capsids leave
the nucleus. Every pool is per cell [1/cell] and is diluted by growth (dividing cells share it):

    delivery, for each plasmid p in (RC, Vec, Help):
    dp_ext/dt  = -k_uptake p_ext (1 - E) - w mu p_ext       w = 0 (per_cell, Nguyen) or 1 (per_volume)
    dp_endo/dt = k_uptake p_ext (1 - E) - (k_escape + k_pdeg + mu) p_endo
    dp_cyto/dt = k_escape p_endo - (k_nuclear + k_pdeg + mu) p_cyto
    dp_nuc/dt  = k_nuclear p_cyto - (k_pdeg + mu) p_nuc  [- r_bind_rc for RC]

    production:
    r_rep = k_rep_syn RC_nuc Help_nuc          r_cap = k_cap_syn RC_nuc Help_nuc
    r_dna = k_dna_rep Rep Vec_nuc Help_nuc     r_bind_rc = k_bind_rc RC_nuc Rep
    r_asm = k_assembly Cap                     r_bind_cap = k_bind_capsid Rep E_nuc
    r_pack = k_pack RepE vDNA
    dRep/dt    = r_rep - r_bind_rc - r_bind_cap + r_pack - (k_rep_deg + mu) Rep
    dvDNA/dt   = r_dna - r_pack - mu vDNA
    dE_cyto/dt = k_secrete E_nuc - mu E_cyto
    dF_cyto/dt = k_secrete F_nuc - mu F_cyto
    dRC_rep/dt = r_bind_rc                     (Rep-bound Rep/Cap plasmid, inactive)
    dRepE/dt   = r_bind_cap - r_pack           (Rep-bound empty capsid, ready to package)

    fast pools, at quasi-steady state (d/dt = 0):
    Cap   = r_cap/(n_cap k_assembly + k_cap_deg + mu)      (Cap protein)
    E_nuc = r_asm/(k_secrete + mu + k_bind_capsid Rep)     (empty capsids in the nucleus)
    F_nuc = r_pack/(k_secrete + mu)                        (full capsids in the nucleus)

Nguyen et al. carry Cap, E_nuc and F_nuc as ODEs, but their fitted assembly and secretion constants sit
at the top of their search (1e5 1/h: time constants of 0.6 ms for Cap, 36 ms for the nuclear capsids,
against hours for everything else). Collocation on elements of an hour cannot start Ipopt on such a
stiff system (the solve failed from the forward integration's start), and the quasi-steady pools are
the exact limit of the ODEs to a relative 1e-5 (``k_secrete`` against the slow rates); the check against
their published trajectory is in ``tests/models/test_aav_triple_transfection.py``.

``E`` is the input ``exchanged`` (0 before, 1 after the medium exchange): the exchange removes the
polyplexes still in the medium, instantly and completely, as in Nguyen et al.'s simulation of their
experiment E3 (exchange at 6 hpt). ``mu`` is the specific growth rate of the prescribed cell density
(their fit to the E3 counts), ``X(t) = X0 + (g_lin/k_g)(1 - exp(-k_g t))`` [Mcell/mL], carried as
``dX/dt = G``, ``dG/dt = -k_g G``, ``X(0) = X0``, ``G(0) = g_lin``; ``mu = G/X``.

Per mL of culture (what the experiment measured; Nguyen et al.'s definitions): total viral DNA =
``X (Vec_endo + Vec_cyto + Vec_nuc + vDNA + F_nuc + F_cyto)``, full capsids = ``X (F_nuc + F_cyto)``,
total capsids = ``X (E_nuc + F_nuc + E_cyto + F_cyto)``; each also as ``log10_<name>`` (log10 of the
count per mL), the form the calibration fits (measurement errors of qPCR and ELISA are multiplicative).

``settings['plasmid_medium']``: ``per_volume`` (default) keeps the medium's polyplexes per mL of
culture (per cell they fall as the cells grow: ``w = 1``); ``per_cell`` is Nguyen et al.'s own form
(no growth term, so per mL the medium gains plasmid as the cells grow), kept to reproduce their
published trajectory (``tests/models/test_aav_triple_transfection.py``).
"""

import pyomo.environ as pyo

from biotwin.core.dae import declare, time_set
from biotwin.processes.kinetics import positive_part

TIME_UNIT = "h"
PLASMIDS = ("RC", "Vec", "Help")
COMPARTMENTS = ("ext", "endo", "cyto", "nuc")
STATES = {
    "X": "Mcell/mL",
    "G": "Mcell/mL/h",
    **{f"{p}_{c}": "1/cell" for p in PLASMIDS for c in COMPARTMENTS},
    "Rep": "1/cell",
    "vDNA": "1/cell",
    "E_cyto": "1/cell",
    "F_cyto": "1/cell",
    "RC_rep": "1/cell",
    "RepE": "1/cell",
}
INPUTS = {"exchanged": "dimensionless"}
PLASMID_MEDIUM_FORMS = ("per_volume", "per_cell")
#: measured quantities per mL and the per-cell pools each one counts (Nguyen et al. 2021, Figure 4)
MEASURED = {
    "viral_DNA": ("Vec_endo", "Vec_cyto", "Vec_nuc", "vDNA", "F_nuc", "F_cyto"),
    "full_capsids": ("F_nuc", "F_cyto"),
    "total_capsids": ("E_nuc", "F_nuc", "E_cyto", "F_cyto"),
}


def build(settings=None):
    """Build the (not discretized) model; ``settings['t_end']`` [h], ``settings['plasmid_medium']``."""
    settings = dict(settings or {})
    medium_form = settings.get("plasmid_medium", "per_volume")
    if medium_form not in PLASMID_MEDIUM_FORMS:
        raise ValueError(f"settings: plasmid_medium {medium_form!r} is not one of {', '.join(PLASMID_MEDIUM_FORMS)}")
    w = 1.0 if medium_form == "per_volume" else 0.0
    u = pyo.units
    m = pyo.ConcreteModel(name="aav_triple_transfection")
    m.t = time_set(settings, 60.0)
    declare(m, TIME_UNIT, settings["parameter_units"], STATES, INPUTS, state_initialize=0.0)
    per_cell_rate = 1 / u.cell / u.h

    # -- the prescribed culture: cell density X [Mcell/mL] growing at G = g_lin exp(-k_g t) [Mcell/mL/h],
    # written as two autonomous ODEs (the engine's forward integration evaluates the right-hand side at a
    # template time point, so a rate may not depend on t explicitly)
    m.X_growth = pyo.Constraint(m.t, rule=lambda m, t: m.dX[t] == m.G[t])
    m.G_decay = pyo.Constraint(m.t, rule=lambda m, t: m.dG[t] == -m.k_g * m.G[t])
    m.mu = pyo.Expression(m.t, rule=lambda m, t: m.G[t] / m.X[t], doc="specific growth rate [1/h]")

    def uptake(m, p, t):
        return m.k_uptake * getattr(m, f"{p}_ext")[t] * (1 - m.exchanged[t])

    def delivery(p):
        ext, endo, cyto, nuc = (getattr(m, f"{p}_{c}") for c in COMPARTMENTS)
        d = {c: getattr(m, f"d{p}_{c}") for c in COMPARTMENTS}
        m.add_component(
            f"{p}_ext_balance",
            pyo.Constraint(m.t, rule=lambda m, t: d["ext"][t] == -uptake(m, p, t) - w * m.mu[t] * ext[t]),
        )
        m.add_component(
            f"{p}_endo_balance",
            pyo.Constraint(
                m.t,
                rule=lambda m, t: d["endo"][t] == uptake(m, p, t) - (m.k_escape + m.k_pdeg + m.mu[t]) * endo[t],
            ),
        )
        m.add_component(
            f"{p}_cyto_balance",
            pyo.Constraint(
                m.t,
                rule=lambda m, t: d["cyto"][t] == m.k_escape * endo[t] - (m.k_nuclear + m.k_pdeg + m.mu[t]) * cyto[t],
            ),
        )
        bind = (lambda t: m.r_bind_rc[t]) if p == "RC" else (lambda t: 0.0 * per_cell_rate)
        m.add_component(
            f"{p}_nuc_balance",
            pyo.Constraint(
                m.t,
                rule=lambda m, t: d["nuc"][t] == m.k_nuclear * cyto[t] - (m.k_pdeg + m.mu[t]) * nuc[t] - bind(t),
            ),
        )

    # -- production rates [1/cell/h]
    m.r_rep = pyo.Expression(m.t, rule=lambda m, t: m.k_rep_syn * m.RC_nuc[t] * m.Help_nuc[t])
    m.r_cap = pyo.Expression(m.t, rule=lambda m, t: m.k_cap_syn * m.RC_nuc[t] * m.Help_nuc[t])
    m.r_dna = pyo.Expression(m.t, rule=lambda m, t: m.k_dna_rep * m.Rep[t] * m.Vec_nuc[t] * m.Help_nuc[t])
    m.r_bind_rc = pyo.Expression(m.t, rule=lambda m, t: m.k_bind_rc * m.RC_nuc[t] * m.Rep[t])
    m.r_pack = pyo.Expression(m.t, rule=lambda m, t: m.k_pack * m.RepE[t] * m.vDNA[t])
    # the fast pools at quasi-steady state (see the module docstring)
    m.Cap = pyo.Expression(
        m.t, rule=lambda m, t: m.r_cap[t] / (m.n_cap * m.k_assembly + m.k_cap_deg + m.mu[t]), doc="[1/cell]"
    )
    m.r_asm = pyo.Expression(m.t, rule=lambda m, t: m.k_assembly * m.Cap[t])
    m.E_nuc = pyo.Expression(
        m.t, rule=lambda m, t: m.r_asm[t] / (m.k_secrete + m.mu[t] + m.k_bind_capsid * m.Rep[t]), doc="[1/cell]"
    )
    m.F_nuc = pyo.Expression(m.t, rule=lambda m, t: m.r_pack[t] / (m.k_secrete + m.mu[t]), doc="[1/cell]")
    m.r_bind_cap = pyo.Expression(m.t, rule=lambda m, t: m.k_bind_capsid * m.Rep[t] * m.E_nuc[t])
    for p in PLASMIDS:
        delivery(p)

    balances = {
        "Rep": lambda m, t: (
            m.r_rep[t] - m.r_bind_rc[t] - m.r_bind_cap[t] + m.r_pack[t] - (m.k_rep_deg + m.mu[t]) * m.Rep[t]
        ),
        "vDNA": lambda m, t: m.r_dna[t] - m.r_pack[t] - m.mu[t] * m.vDNA[t],
        "E_cyto": lambda m, t: m.k_secrete * m.E_nuc[t] - m.mu[t] * m.E_cyto[t],
        "F_cyto": lambda m, t: m.k_secrete * m.F_nuc[t] - m.mu[t] * m.F_cyto[t],
        "RC_rep": lambda m, t: m.r_bind_rc[t],
        "RepE": lambda m, t: m.r_bind_cap[t] - m.r_pack[t],
    }
    for name, rate in balances.items():
        state_dot = getattr(m, f"d{name}")
        m.add_component(
            f"{name}_balance",
            pyo.Constraint(m.t, rule=lambda m, t, rate=rate, state_dot=state_dot: state_dot[t] == rate(m, t)),
        )

    # -- what the experiment measured, per mL of culture [1/mL] and as log10 of the count per mL [-]
    for name, pools in MEASURED.items():
        m.add_component(
            name,
            pyo.Expression(
                m.t,
                rule=lambda m, t, pools=pools: u.convert(
                    m.X[t] * sum(getattr(m, s)[t] for s in pools), to_units=1 / u.mL
                ),
            ),
        )
        # the smooth positive part plus 1 per mL keeps the logarithm finite at time 0, where no capsid
        # exists yet, and at a collocation undershoot (1 per mL is far below any assay's detection limit,
        # so it changes no measured value)
        m.add_component(
            f"log10_{name}",
            pyo.Expression(
                m.t,
                rule=lambda m, t, name=name: pyo.log10(positive_part(getattr(m, name)[t] * u.mL, 1.0) + 1.0),
            ),
        )
    m.full_share = pyo.Expression(
        m.t,
        rule=lambda m, t: 100 * m.full_capsids[t] / (m.total_capsids[t] + 1.0 / u.mL),
        doc="full capsids as a share of all capsids [%]",
    )

    t0 = m.t.first()
    m.X_init = pyo.Constraint(expr=m.X[t0] == m.X0)
    m.G_init = pyo.Constraint(expr=m.G[t0] == m.g_lin)
    for p in PLASMIDS:
        m.add_component(f"{p}_ext_init", pyo.Constraint(expr=getattr(m, f"{p}_ext")[t0] == m.copies0))
    for name in STATES:
        if not name.endswith("_ext") and name not in ("X", "G"):
            getattr(m, name)[t0].fix(0.0)
    return m


def summary(result):
    """Viral DNA, full and total capsids per mL and the full share at the end of the run."""
    wide = result.wide
    last = wide.iloc[-1]
    return {
        "time_h": float(last["time"]),
        "viral_DNA_per_mL": float(last["viral_DNA"]),
        "full_capsids_per_mL": float(last["full_capsids"]),
        "total_capsids_per_mL": float(last["total_capsids"]),
        "full_share_percent": float(last["full_share"]),
    }
