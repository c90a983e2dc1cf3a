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

**Metabolism** (``settings: {metabolism: ...}``):

``xing`` (default) the equations above, as published and as kkiviat/of-compartments implements them
(the reference check in ``tests/models/test_mab_fedbatch.py``). In it glucose uptake does not depend on
glucose, lactate is a fixed share of it and cells die only through lactate times ammonia, so feeding
only dilutes: use it to reproduce Xing et al., not for feeding decisions.

``platform`` (proposed forms, constants marked *proposed* in parameters.yaml) adds what makes feeding
matter:

    ov     = q_ov_max Glc/(K_ov + Glc)                        overflow glucose uptake [mmol/cell/h]
    q_Glc  = m_Glc s(Glc) + mu/Y_X_Glc + ov                   uptake rises with glucose
    q_Lac  = Y_Lac_ov ov - q_Lac_up Lac/(K_Lac_up + Lac) K_shift/(K_shift + Glc)
    mu_d   = mu_d_Xing(Lac, Amm) + k_starv (1 - s_starv(Glc))  death from glucose exhaustion

Lactate comes from overflow glycolysis (2 mol per mol glucose), which grows with the glucose level
(high glucose, more lactate: the reason for low-glucose feeding, Gagnon et al. 2011, Biotechnol Bioeng
108:1328); cells switch to consuming lactate as glucose falls (the metabolic shift, Mulukutla et al.
2012, Metab Eng 14:138); and a culture that runs out of glucose dies (``s_starv``, a smooth switch at
``C_starv``).

**Glucose control** (a recipe's ``glucose_control``): in each window after a sample, glucose stock
(``Glc_stock``) is added at ``F_ctrl = w(t) k_ctrl V (Glc_target - Glc)+ / (Glc_stock - Glc)``, which
brings glucose to the target within the window (``k_ctrl`` x window = 5 e-folds), as an automated
glucose controller acting on each at-line measurement does. ``F_ctrl`` adds to the volume and dilutes
the culture like a bolus.
"""

import pyomo.environ as pyo

from biotwin.core.dae import declare, time_set
from biotwin.processes.cell_culture import FEED_INPUTS, add_uptake_and_dilution
from biotwin.processes.culture_recipes import culture_spellings, read_culture_scenario
from biotwin.processes.kinetics import monod, positive_part, smooth_switch, xing_death_rate, xing_growth_rate

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
INPUTS = {**FEED_INPUTS, "Glc_window": "dimensionless"}  # 1 while the glucose controller acts (glucose_control)
METABOLISMS = ("xing", "platform")


def build(settings=None):
    """Build the (not discretized) fed-batch model; ``settings['t_end']`` [h], ``settings['metabolism']``.

    ``settings['glucose_control']`` (set by a recipe's ``glucose_control`` block) adds the controller's
    stock feed ``F_ctrl``; without it no balance carries that term.
    """
    settings = dict(settings or {})
    metabolism = settings.get("metabolism", "xing")
    if metabolism not in METABOLISMS:
        raise ValueError(f"settings: metabolism {metabolism!r} is not one of {', '.join(METABOLISMS)}")
    platform = metabolism == "platform"
    control = bool(settings.get("glucose_control", False))
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
        rate = xing_death_rate(pos(m.Lac[t]), pos(m.Amm[t]), m.mu_d_max, m.KD_Lac, m.KD_Amm)
        if platform:
            rate += m.k_starv * (1 - smooth_switch(m.Glc[t], m.C_starv, m.W_starv))
        return rate

    if platform:
        m.overflow = pyo.Expression(
            m.t,
            rule=lambda m, t: m.q_ov_max * monod(pos(m.Glc[t]), m.K_ov),
            doc="overflow glucose uptake, to lactate [mmol/cell/h] (platform metabolism)",
        )
    if control:
        m.F_ctrl = pyo.Expression(
            m.t,
            rule=lambda m, t: (
                m.Glc_window[t]
                * m.k_ctrl
                * m.V[t]
                * positive_part(m.Glc_target - m.Glc[t], m.C_eps)
                / (m.Glc_stock - m.Glc[t])
            ),
            doc="glucose stock added by the glucose controller [L/h]",
        )
    add_uptake_and_dilution(
        m,
        pos,
        extra_feed=(lambda t: m.F_ctrl[t]) if control else None,
        overflow=(lambda t: m.overflow[t]) if platform else None,
    )

    def controller(t, into):  # the controller's stock feed [L/h] times what it carries (1 for volume)
        return m.F_ctrl[t] * into if control else 0

    @m.Expression(m.t, doc="specific lactate production, net [mmol/cell/h]")
    def q_Lac(m, t):
        if not platform:
            return m.Y_Lac_Glc * m.q_Glc[t]
        consumption = m.q_Lac_up * monod(pos(m.Lac[t]), m.K_Lac_up) * m.K_shift / (m.K_shift + pos(m.Glc[t]))
        return m.Y_Lac_ov * m.overflow[t] - consumption

    @m.Expression(m.t, doc="specific antibody productivity [pg/cell/d]")
    def q_P(m, t):
        return m.alpha_P * u.convert(m.mu[t], to_units=1 / u.d) + m.beta_P

    def per_volume(rate_per_cell, t, to_units):
        """Specific rate times viable cell density, in the balance's units."""
        return u.convert(rate_per_cell * m.Xv[t], to_units=to_units)

    m.V_balance = pyo.Constraint(
        m.t, rule=lambda m, t: m.dV[t] == m.F_cont[t] + m.F_bolus[t] + controller(t, 1) - m.F_out[t]
    )
    m.Xv_balance = pyo.Constraint(m.t, rule=lambda m, t: m.dXv[t] == (m.mu[t] - m.mu_d[t] - m.D[t]) * m.Xv[t])
    m.Xd_balance = pyo.Constraint(m.t, rule=lambda m, t: m.dXd[t] == m.mu_d[t] * m.Xv[t] - (m.k_lys + m.D[t]) * m.Xd[t])
    m.Glc_balance = pyo.Constraint(
        m.t,
        rule=lambda m, t: (
            m.dGlc[t]
            == -per_volume(m.q_Glc[t], t, conc_rate)
            + m.F_cont[t] / m.V[t] * (m.Glc_feed - m.Glc[t])
            + m.F_bolus[t] / m.V[t] * (m.Glc_bolus[t] - m.Glc[t])
            + controller(t, (m.Glc_stock - m.Glc[t]) / m.V[t])
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
        m.t, rule=lambda m, t: m.dLac[t] == per_volume(m.q_Lac[t], t, conc_rate) - m.D[t] * m.Lac[t]
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


CONTROL_WINDOW_H = 0.25  # default length of a glucose-control window [h]


SPECIES = ["Glc", "Gln"]
#: Old spellings (unit in the key, numbers without unit), read with a RecipeSpellingWarning giving the new one.
RECIPE_SPELLINGS = {
    **culture_spellings(STATES, SPECIES),
    "glucose_control.target_mM": ("target", "mM"),
    "glucose_control.stock_mM": ("stock", "mM"),
    "glucose_control.window_h": ("window", "h"),
    "optimize.glucose_target_mM": ("glucose_target", "mM"),
    "optimize.tolerance_mM": ("tolerance", "mM"),
    **{f"optimize.{side}.{name}": (name, unit) for side in ("max", "min") for name, unit in STATES.items()},
}


def glucose_control_config():
    """The ``glucose_control`` block (``pyomo.common.config``)."""
    from pyomo.common.config import ConfigDict, ConfigValue, ListOf

    from biotwin.core.schema import Number, Quantity

    c = ConfigDict(description="bring glucose to a target after each at-line measurement")
    c.declare("target", ConfigValue(domain=Quantity("mM", positive=True), default=None, description="[mM]"))
    c.declare("times", ConfigValue(domain=ListOf(float, Number(non_negative=True)), default=None, description="starts"))
    c.declare("stock", ConfigValue(domain=Quantity("mM", positive=True), default=None, description="glucose stock"))
    c.declare("window", ConfigValue(domain=Quantity("h", positive=True), default=f"{CONTROL_WINDOW_H} h"))
    return c


def optimize_config():
    """The ``optimize`` block (``pyomo.common.config``)."""
    from pyomo.common.config import ConfigDict, ConfigValue, ListOf

    from biotwin.core.schema import Quantity

    c = ConfigDict(description="the glucose target `biotwin optimize` chooses")
    c.declare("glucose_target", ConfigValue(domain=ListOf(str, Quantity("mM", positive=True)), default=None))
    c.declare("tolerance", ConfigValue(domain=Quantity("mM", positive=True), default="0.2 mM"))
    c.declare("maximize", ConfigValue(domain=str, default="titer", description="a variable's final value"))
    for side in ("max", "min"):  # a state with its unit, or any other variable as a number in its own unit
        c.declare(side, ConfigValue(domain=dict, default={}, description=f"{side}imum of a variable over the run"))
    return c


def read_scenario(raw, where):
    """Translate this model's recipe schema (see :mod:`biotwin.processes.culture_recipes`) to the generic one.

    Extra keys (times in the recipe's ``time_unit``)::

        glucose_control:              # bring glucose to a target after each at-line measurement
          target: 20 mM
          times: [3.03, 4.03, ...]    # start of each window (after a sample)
          stock: 2775 mM              # glucose stock (500 g/L); default parameters.yaml Glc_stock
          window: 0.25 h              # length of each window (k_ctrl x window = 5 e-folds)
        optimize:                     # with glucose_control: the target chosen by `biotwin optimize`
          glucose_target: [14 mM, 26 mM]   # the range searched
          tolerance: 0.2 mM
          maximize: titer             # a variable's final value
          max: {Lac: 35 mM}           # limits over the whole run: a state with its unit, another
          min: {viability: 80}        #   variable as a number in its own unit (viability [%])
          min: {}
    """
    from biotwin.core.errors import ScenarioError
    from biotwin.core.schema import validate
    from biotwin.processes.culture_recipes import check_overlaps, hours_per, pulse_program

    out = read_culture_scenario(raw, where, STATES, SPECIES, model_keys=("glucose_control", "optimize"))
    if raw.get("optimize") is not None:
        read_optimize_block(raw, where)
    if raw.get("glucose_control") is None:
        return out
    label = f"{where}: glucose_control"
    control = validate(glucose_control_config(), raw["glucose_control"], label)
    if control.target is None or not control.times:
        raise ScenarioError(f"{label}: give target and times (e.g. target: 20 mM, times: [3.03, 4.03])")
    unit = raw.get("time_unit", "h")
    hours = hours_per(str(unit))
    window = control.window
    out.setdefault("settings", {})["glucose_control"] = True
    params = out["parameters"]
    params["Glc_target"] = float(control.target)
    params["k_ctrl"] = 5.0 / window
    if control.stock is not None:
        params["Glc_stock"] = float(control.stock)
    windows = []
    for value in control.times:
        start = value * hours
        if start + window > out["t_end"] + 1e-9:
            raise ScenarioError(f"{label}: window at {value:g} {unit} ends after the culture")
        windows.append((start, start + window, 1.0))
    check_overlaps(windows, "glucose-control windows", where, unit, hours)
    out["inputs"]["Glc_window"] = {"unit": "dimensionless", "points": pulse_program(windows, out["t_end"])}
    return out


def read_optimize_block(raw, where) -> dict:
    """The recipe's ``optimize`` block, checked: ``{bounds, xtol, objective, limits}`` (see :func:`read_scenario`)."""
    from biotwin.core.errors import ScenarioError
    from biotwin.core.schema import Number, Quantity, validate

    label = f"{where}: optimize"
    if raw.get("glucose_control") is None:
        raise ScenarioError(
            f"{label}: the recipe feeds no glucose to a target; add a glucose_control block (the target it searches)"
        )
    block = validate(optimize_config(), raw.get("optimize"), label)
    bounds = block.glucose_target
    if bounds is None or len(bounds) != 2:
        raise ScenarioError(f"{label}: glucose_target: expected [lowest, highest], e.g. [14 mM, 26 mM], got {bounds!r}")
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise ScenarioError(f"{label}: glucose_target: expected lowest < highest, got {lo:g} and {hi:g} mM")
    xtol = float(block.tolerance)
    if xtol >= hi - lo:
        raise ScenarioError(f"{label}: tolerance {xtol:g} mM must be below the range searched ({hi - lo:g} mM)")
    bounds_of = {}
    for side in ("min", "max"):
        for var, value in block[side].items():
            try:  # a state carries its unit; another variable (viability [%]) is a number in its own unit
                bounds_of.setdefault(var, {})[side] = Quantity(STATES[var])(value) if var in STATES else Number()(value)
            except ValueError as exc:
                raise ScenarioError(f"{label}: {side}.{var}: {exc}") from None
    limits = {}
    for var, b in bounds_of.items():
        vlo, vhi = b.get("min"), b.get("max")
        if vlo is not None and vhi is not None and vlo > vhi:
            raise ScenarioError(f"{label}: {var}: min {vlo:g} is above max {vhi:g} {STATES.get(var, '')}".rstrip())
        limits[var] = (None if vlo is None else float(vlo), None if vhi is None else float(vhi))
    return {"bounds": (lo, hi), "xtol": xtol, "objective": block.maximize, "limits": limits}


def optimize(model, scenario, nfe=40, progress=None):
    """The glucose target of a recipe with ``glucose_control`` and an ``optimize`` block (``biotwin optimize``).

    Every trial target is a refined simulation (:func:`biotwin.optimize.setpoint.optimize_setpoint`);
    returns its ``SetpointResult`` (``.table``, ``.summary()``, ``.evaluations``).
    """
    from biotwin.core.errors import ScenarioError
    from biotwin.optimize.setpoint import optimize_setpoint

    sc = model.load_scenario(scenario)
    if sc.raw.get("optimize") is None:
        raise ScenarioError(
            f"{sc.source}: this scenario has no optimize block; glucose_target_14d has one "
            "(optimize: {glucose_target: [14 mM, 26 mM], tolerance: 0.2 mM, maximize: titer, max: {Lac: 35 mM}})"
        )
    spec = read_optimize_block(sc.raw, sc.source)
    return optimize_setpoint(
        model,
        sc,
        "Glc_target",
        spec["bounds"],
        objective=spec["objective"],
        limits=spec["limits"],
        xtol=spec["xtol"],
        progress=progress,
        simulate_options={"nfe": nfe},
    )


# -- interactive explorer (biotwin.explore) -------------------------------------------------------
def _set_seeding(raw, value):
    return {**raw, "initial": {**(raw.get("initial") or {}), "Xv": {"value": value, "unit": "Mcell/mL"}}}


def _scale_feeds(raw, factor):
    from biotwin.core.schema import quantity_in

    boluses = [
        {**b, "volume": {"value": quantity_in(b["volume"], "L") * factor, "unit": "L"}}
        for b in raw.get("boluses") or []
    ]
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
            "label": "feed bolus volume, x nominal",
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
    # a 14-day fed-batch is read in days (the model runs in hours; measured data are drawn the same way)
    "time_scale": 1.0 / 24.0,
    "time_label": "culture time [d]",
}
