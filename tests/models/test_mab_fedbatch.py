"""mAb fed-batch model against the independent Xing 2010 implementation (kkiviat/of-compartments).

References in ../shared/data/mab_fedbatch: 200 random states with that code's derivatives,
and its batch trajectory from the published initial state. Units there: Xv in cells/L,
metabolites in mM, time in h; the model's Xv is in Mcell/mL (1e9 cells/L).
"""

import json

import numpy as np
import pandas as pd
import pytest

import biotwin
from biotwin.core.errors import ScenarioError
from support import radau3_integral

CELLS_PER_L_PER_MCELL_PER_ML = 1e9


@pytest.fixture(scope="module")
def model():
    return biotwin.load_model("mab_fedbatch")


@pytest.fixture(scope="module")
def reference_inputs(shared_data):
    return json.loads((shared_data / "mab_fedbatch" / "xing2010_kkiviat.inputs.json").read_text())


def test_parameters_are_the_reference_set(model, reference_inputs):
    ref = reference_inputs["params"]
    mapping = {
        "mu_max": "mu_m",
        "mu_d_max": "mu_dm",
        "K_Glc": "K_S",
        "K_Gln": "K_G",
        "KI_Lac": "KI_L",
        "KI_Amm": "KI_A",
        "KD_Lac": "KD_L",
        "KD_Amm": "KD_A",
        "d_Gln": "d_G",
        "r_Amm": "r_A",
        "Y_X_Glc": "Y_XS",
        "Y_X_Gln": "Y_XG",
        "Y_Lac_Glc": "Y_LS",
        "Y_Amm_Gln": "Y_AG",
        "m_Glc": "m_S",
        "a1_Gln": "a_1",
        "a2_Gln": "a_2",
    }
    values = model.parameter_set.values()
    for ours, theirs in mapping.items():
        assert values[ours] == pytest.approx(ref[theirs], rel=1e-12), ours


def test_rates_match_independent_code(model, shared_data):
    checks = pd.read_csv(shared_data / "mab_fedbatch" / "xing2010_kkiviat_derivative_checks.csv")
    worst = {}
    for _, row in checks.iterrows():
        states = {
            "Xv": row["Xv_cells_per_L"] / CELLS_PER_L_PER_MCELL_PER_ML,
            "Xd": 0.0,
            "Glc": row["Glc_mM"],
            "Gln": row["Gln_mM"],
            "Lac": row["Lac_mM"],
            "Amm": row["Amm_mM"],
            "titer": 0.0,
            "V": 1.0,
        }
        rates = model.rates(states)
        ours = {
            "Glc": rates["dGlc/dt"],
            "Gln": rates["dGln/dt"],
            "Lac": rates["dLac/dt"],
            "Amm": rates["dAmm/dt"],
            "Xv_cells_per_L": rates["dXv/dt"] * CELLS_PER_L_PER_MCELL_PER_ML,
        }
        theirs = {
            "Glc": row["dGlc_mM_dt"],
            "Gln": row["dGln_mM_dt"],
            "Lac": row["dLac_mM_dt"],
            "Amm": row["dAmm_mM_dt"],
            "Xv_cells_per_L": row["dXv_cells_per_L_dt"],
        }
        for key, value in ours.items():
            rel = abs(value - theirs[key]) / abs(theirs[key])
            worst[key] = max(worst.get(key, 0.0), rel)
    print(f"rates vs independent code, worst relative deviation: {worst}")
    assert max(worst.values()) < 1e-6, worst


def test_batch_trajectory_matches_independent_code(model, shared_data):
    ref = pd.read_csv(shared_data / "mab_fedbatch" / "xing2010_kkiviat_batch_singlecompartment.csv")
    times = ref["t_h"].to_numpy(dtype=float)
    result = model.simulate(scenario="xing2010_batch", times=times[1:], nfe=120)
    ours = result.wide.set_index("time")
    columns = {"Glc": "Glc_mM", "Gln": "Gln_mM", "Lac": "Lac_mM", "Amm": "Amm_mM", "Xv": "Xv_cells_per_L"}
    scale = {"Xv": CELLS_PER_L_PER_MCELL_PER_ML}
    worst = {}
    for name, col in columns.items():
        expected = ref[col].to_numpy()[1:]
        got = ours[name].to_numpy() * scale.get(name, 1.0)
        # relative error against the species' own range (glutamine runs down to 1e-3 mM)
        err = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-3 * np.max(np.abs(expected)))
        worst[name] = float(err.max())
    print(f"batch trajectory vs independent code, worst relative deviation: {worst}")
    assert max(worst.values()) < 0.005, worst


def test_glucose_mass_balance_with_feeds_and_samples(model):
    result = model.simulate(scenario="nominal_14d", nfe=80, ncp=3)
    w = result.wide
    m = result.pyomo_model
    V, Glc = w["V"].to_numpy(), w["Glc"].to_numpy()
    # glucose fed [mmol], exactly from the recipe: 11 feed boluses of 0.03 L at 400 mM, 4 top-ups of 0.004 L at 2775 mM
    fed_recipe = 11 * 0.03 * 400 + 4 * 0.004 * 2775
    fed = radau3_integral(result, (w["F_bolus"] * w["Glc_bolus"] + w["F_cont"] * m.Glc_feed.value).to_numpy())
    assert fed == pytest.approx(fed_recipe, rel=1e-9)
    withdrawn = radau3_integral(result, (w["F_out"] * w["Glc"]).to_numpy())
    consumed = radau3_integral(result, (w["q_Glc"] * w["Xv"] * 1e9 * w["V"]).to_numpy())  # mmol/cell/h * cell
    change = V[-1] * Glc[-1] - V[0] * Glc[0]
    assert fed_recipe - consumed - withdrawn == pytest.approx(change, rel=1e-5, abs=1e-6 * fed_recipe)
    # exact volume balance: boluses in, samples out
    assert V[-1] == pytest.approx(1.0 + 11 * 0.03 + 4 * 0.004 - 13 * 0.002, rel=1e-9)


def test_glucose_exhaustion_is_resolved_by_the_refined_grid(model):
    """5 mM glucose runs out on day ~3 and maintenance uptake stops within 1e-5 mM (the smooth switch): a
    kink no element of a fixed grid can follow. On 60 fixed elements the collocation polynomial undershoots
    to -0.026 mM and is off by 5.4e-3 of glucose's range; the engine's mesh refinement (from its forward
    integration, biotwin.engine.mesh) adds the elements where glucose runs out, and the result meets an
    adaptive integrator (LSODA, rtol 1e-10) on the same equations to 5.5e-5 of each state's range (measured).
    The exact solution creeps to about -2e-4 mM: the switch leaves 2e-5 of the maintenance uptake there."""
    from biotwin.engine.simulation import Simulation

    run = {"scenario": "xing2010_batch", "params": {"Glc0": 5.0}, "nfe": 60}
    fixed = model.simulate(**run, mesh_tol=None).wide
    refined = model.simulate(**run)
    w, mesh = refined.wide, refined.stats["mesh"]
    sim = Simulation(model, run["scenario"], run["params"], nfe=60, mesh_tol=None)
    integ = sim.discretization.integrator
    names = [s.local_name for s in integ.states]
    ref = integ.integrate(sim.programs, w["time"].to_numpy(), rtol=1e-10)["x"]
    err = np.abs(w[names].to_numpy() - ref) / np.abs(ref).max(axis=0)
    print(
        f"\nfixed 60 elements: Glc min {fixed['Glc'].min():.2e} mM; refined {mesh['elements_after']} elements: "
        f"Glc min {w['Glc'].min():.2e} mM, largest deviation from LSODA {err.max():.1e} of a state's range"
    )
    assert fixed["Glc"].min() < -0.02  # the fixed grid's undershoot is real
    assert mesh["checked"] and mesh["met"] and mesh["elements_after"] > 60
    assert err.max() < 2e-4
    assert w["Glc"].min() > -1e-3 and abs(w["Glc"].iloc[-1]) < 1e-3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"initial": {"V": "-1 L"}}, "initial.V: must not be negative"),
        ({"initial": {"Xv": "0.3 g/L"}}, "initial.Xv: 'g/L' is not a unit of the same kind as 'Mcell/mL'"),
        ({"boluses": [{"time": 20, "volume": "10 mL", "Glc": "100 mM"}]}, "after the end of the culture"),
        ({"boluses": [{"time": 3, "volume": "-10 mL"}]}, "bolus 0: volume: must be positive"),
        ({"boluses": [{"time": 3, "volume": "10 mL", "Sucrose": "10 mM"}]}, "bolus 0: unknown key 'Sucrose'; allowed"),
        ({"boluses": [{"time": 3, "volume": 0.01}]}, "bolus 0: volume: 0.01 has no unit; write it with its unit"),
        ({"initial": {"Biomass": "1 Mcell/mL"}}, "initial: unknown key 'Biomass'; allowed: Amm, Glc"),
        ({"samples": {"times": [3, 3.001], "volume": "2 mL"}}, "overlap"),
        ({"duration": -1}, "must be positive"),
        ({"feeds": []}, "unknown key 'feeds'; allowed: bolus_duration, boluses"),
        ({"continuous_feed": {"unit": "g/d", "points": [[0, 0]]}}, "'g/d' is not a unit of the same kind as 'L/h'"),
        ({"continuous_feed": {"unit": "L/d", "composition": {"Glc": "400 mM"}}}, "continuous_feed: give its points"),
        ({"initial": {"Xv": None}}, "initial.Xv: no value given"),
    ],
)
def test_bad_recipes(model, change, message):
    recipe = {"time_unit": "d", "duration": 14, "initial": {"Xv": "0.3 Mcell/mL"}, **change}
    with pytest.raises(ScenarioError, match=message):
        model.simulate(scenario=recipe, nfe=20)


# The calibration on the synthetic example data (all six true values inside their 95 % intervals, chi-square
# in its range) is asserted once, in notebooks/mab_fedbatch/02_calibrate (tests/notebooks).


# -- platform metabolism and glucose control (issue #15 items 4-5) ------------------------------------
def platform_rates(p, s, u):
    """The platform metabolism written from the model card (models/mab_fedbatch/model.py docstring), not
    from the Pyomo code: numpy, cells per L, concentrations in mM, rates per hour. Returns d/dt of
    Xv [cells/L], Xd, Glc, Lac [mM] and V [L]."""

    def pos(c):
        return 0.5 * (c + np.sqrt(c * c + p["C_eps"] ** 2))

    def switch(c, centre, width):
        x = (c - centre) / width
        return 0.5 * (1 + x / np.sqrt(1 + x * x))

    G, Q, L, A = pos(s["Glc"]), pos(s["Gln"]), pos(s["Lac"]), pos(s["Amm"])
    mu = p["mu_max"] * G / (p["K_Glc"] + G) * Q / (p["K_Gln"] + Q) * p["KI_Lac"] / (p["KI_Lac"] + L)
    mu *= p["KI_Amm"] / (p["KI_Amm"] + A)
    mu_d = p["mu_d_max"] * L / (p["KD_Lac"] + L) * A / (p["KD_Amm"] + A)
    mu_d += p["k_starv"] * (1 - switch(s["Glc"], p["C_starv"], p["W_starv"]))
    ov = p["q_ov_max"] * G / (p["K_ov"] + G)
    q_glc = p["m_Glc"] * switch(s["Glc"], p["C_exh"], p["W_exh"]) + mu / p["Y_X_Glc"] + ov
    q_lac = p["Y_Lac_ov"] * ov - p["q_Lac_up"] * L / (p["K_Lac_up"] + L) * p["K_shift"] / (p["K_shift"] + G)
    f_ctrl = u["Glc_window"] * p["k_ctrl"] * s["V"] * pos(p["Glc_target"] - s["Glc"]) / (p["Glc_stock"] - s["Glc"])
    X = s["Xv"] * CELLS_PER_L_PER_MCELL_PER_ML
    D = (u["F_bolus"] + f_ctrl) / s["V"]
    return {
        "Xv": (mu - mu_d - D) * X,
        "Xd": mu_d * X - D * s["Xd"] * CELLS_PER_L_PER_MCELL_PER_ML,
        "Glc": -q_glc * X
        + u["F_bolus"] / s["V"] * (u["Glc_bolus"] - s["Glc"])
        + f_ctrl / s["V"] * (p["Glc_stock"] - s["Glc"]),
        "Lac": q_lac * X - D * s["Lac"],
        "V": u["F_bolus"] + f_ctrl,
    }


def test_platform_rates_match_a_second_implementation(model):
    """Every platform rate (overflow, lactate shift, starvation death, glucose controller) at states from
    starved to glucose-rich, with and without the controller and a bolus, within 1e-9 of the numpy
    implementation from the model card."""
    p = model.parameter_values()
    worst = {}
    rng = np.random.default_rng(20261202)
    for glc in (0.0, 0.05, 0.3, 1.0, 2.0, 10.0, 22.0, 60.0):
        for window, bolus in ((0.0, 0.0), (1.0, 0.0), (0.0, 0.3)):
            s = {
                "Xv": float(rng.uniform(0.5, 10)),
                "Xd": float(rng.uniform(0, 2)),
                "Glc": glc,
                "Gln": float(rng.uniform(0, 6)),
                "Lac": float(rng.uniform(0, 80)),
                "Amm": float(rng.uniform(0, 8)),
                "titer": 1.0,
                "V": float(rng.uniform(0.9, 1.4)),
            }
            u = {"F_bolus": bolus, "Glc_bolus": 400.0 if bolus else 0.0, "Glc_window": window}
            ours = model.rates(s, inputs=u, settings={"metabolism": "platform", "glucose_control": True})
            theirs = platform_rates(p, s, u)
            for name, value in theirs.items():
                got = ours[f"d{name}/dt"] * (CELLS_PER_L_PER_MCELL_PER_ML if name in ("Xv", "Xd") else 1.0)
                worst[name] = max(worst.get(name, 0.0), abs(got - value) / max(abs(value), 1e-12))
    print(f"\nplatform rates vs the model-card implementation, worst relative deviation: {worst}")
    assert max(worst.values()) < 1e-9, worst


def test_glucose_target_feeding_beats_fixed_top_ups(model):
    """With the platform metabolism the shipped fixed-bolus recipe runs out of glucose (the cells starve
    and die) and glucose fed to 22 mM after each sample gives a higher titer without exhaustion; the
    controller brings glucose up to its target within each 15-min window (it never removes glucose)."""
    fixed = model.simulate(
        scenario={**model.load_scenario("nominal_14d").raw, "settings": {"metabolism": "platform"}}, nfe=112
    )
    target = model.simulate(scenario="glucose_target_14d", nfe=112)
    f, g = fixed.wide, target.wide
    for name, w in (("fixed top-ups", f), ("glucose to 22 mM", g)):
        print(
            f"\n{name:17s} titer {w['titer'].iloc[-1]:.3f} g/L, peak VCD {w['Xv'].max():.2f} Mcell/mL, glucose "
            f"{w['Glc'].min():.2f}-{w['Glc'].max():.1f} mM, peak lactate {w['Lac'].max():.1f} mM, final viability "
            f"{w['viability'].iloc[-1]:.1f} %",
            end="",
        )
    assert f["Glc"].min() < 0.3 and f["viability"].iloc[-1] < 60  # exhausted: starvation death
    assert g["Glc"].min() > 1.0  # never exhausted
    assert g["titer"].iloc[-1] > 1.05 * f["titer"].iloc[-1]
    after = g.set_index("time")
    raised = 0
    for day in range(3, 14):  # each window starts at day + 0.03 d and lasts 0.25 h; it only adds glucose
        before, end = (float(np.interp(day * 24 + 0.72 + dt, after.index, after["Glc"])) for dt in (0.0, 0.25))
        assert end == pytest.approx(max(22.0, before), abs=0.6), (day, before, end)
        raised += before < 21.0
    assert raised >= 5  # the controller acted, not only the feed boluses
    # glucose stock added = volume balance: boluses and stock in, samples out
    stock = radau3_integral(target, g["F_ctrl"])
    assert g["V"].iloc[-1] == pytest.approx(1.0 + 11 * 0.03 + stock - 13 * 0.002, rel=1e-9)


@pytest.mark.parametrize(
    "control, message",
    [
        ({"times": [3.03]}, "give target and times"),
        ({"target": "-5 mM", "times": [3.03]}, "target: must be positive"),
        ({"target": "20 mM", "times": [13.99]}, "ends after the culture"),
        ({"target": "20 mM", "times": [3.0, 3.005]}, "overlap"),
        (
            {"target": "20 mM", "times": [3.03], "gain": 2},
            "glucose_control: unknown key 'gain'; allowed: stock, target",
        ),
    ],
)
def test_bad_glucose_control(model, control, message):
    recipe = {**model.load_scenario("glucose_target_14d").raw, "glucose_control": control}
    with pytest.raises(ScenarioError, match=message):
        model.simulate(scenario=recipe, nfe=20)


def test_the_glucose_target_search_stops_on_the_lactate_limit(model):
    """Every trial target is a refined simulation: the answer's own run keeps lactate below the limit, a
    target ``xtol`` higher breaks it, and the titer still rose towards it (the limit, not the culture,
    sets the target: without it the scan's 20 mM gives more titer)."""
    from biotwin.optimize.setpoint import optimize_setpoint

    r = optimize_setpoint(model, "glucose_target_14d", "Glc_target", (14, 20), limits={"Lac": 35}, n_scan=3, xtol=0.5)
    runs = r.evaluations.set_index("setpoint")
    print(f"\n{r.evaluations[['setpoint', 'stage', 'titer', 'Lac_max', 'feasible']].to_string()}")
    print(f"best {r.optimum:.3f} mM: titer {r.value:.4f} g/L, peak lactate {r.best.wide['Lac'].max():.2f} mM")
    assert r.binding == ["Lac <= 35"]
    assert r.best.wide["Lac"].max() <= 35.0 and r.best.wide["Glc"].min() > -0.1
    broken = runs[~runs["feasible"]].index
    assert min(b for b in broken if b > r.optimum) - r.optimum <= 0.5  # the limit within xtol above
    assert runs.loc[20.0, "titer"] > r.value > runs.loc[17.0, "titer"] > runs.loc[14.0, "titer"]
    assert r.value == pytest.approx(float(r.best.wide["titer"].iloc[-1]))


@pytest.mark.parametrize(
    "block, message",
    [
        ({"tolerance": "0.2 mM"}, r"glucose_target: expected \[lowest, highest\]"),
        ({"glucose_target": ["26 mM", "14 mM"]}, "lowest < highest"),
        ({"glucose_target": ["14 mM", "26 mM"], "max": {"Lac": "a lot"}}, "max.Lac: 'a lot' is not a number"),
        ({"glucose_target": ["14 mM", "26 mM"], "max": {"Lac": "35 g/L"}}, "max.Lac: 'g/L' is not a unit of the same"),
        ({"glucose_target": ["14 mM", "26 mM"], "min": {"viability": "high"}}, "min.viability: 'high' is not a finite"),
        ({"glucose_target": ["14 mM", "26 mM"], "target": 3}, "optimize: unknown key 'target'"),
        ({"glucose_target": ["14 mM", "16 mM"], "tolerance": "2 mM"}, "must be below the range searched"),
        (
            {"glucose_target": ["14 mM", "26 mM"], "max": {"Lac": "30 mM"}, "min": {"Lac": "40 mM"}},
            "min 40 is above max 30",
        ),
    ],
)
def test_bad_optimize_block(model, block, message):
    recipe = {**model.load_scenario("glucose_target_14d").raw, "optimize": block}
    with pytest.raises(ScenarioError, match=message):
        model.simulate(scenario=recipe, nfe=20)


def test_optimizing_a_recipe_without_an_optimize_block_names_the_block(model):
    with pytest.raises(ScenarioError, match="has no optimize block; glucose_target_14d has one"):
        model.hook("optimize")(model, "nominal_14d")


def test_an_optimize_block_needs_glucose_control(model):
    recipe = {k: v for k, v in model.load_scenario("glucose_target_14d").raw.items() if k != "glucose_control"}
    with pytest.raises(ScenarioError, match="add a glucose_control block"):
        model.simulate(scenario=recipe, nfe=20)


def test_a_recipe_in_the_old_spelling_still_loads_with_a_note(model):
    """Issue #13: the unit in the key (volume_L, target_mM) and concentrations without a unit keep loading,
    with one note giving the new spelling, and read exactly as the new spelling does."""
    from biotwin.core.schema import RecipeSpellingWarning

    old = {
        "time_unit": "d",
        "duration": 14,
        "initial": {"Xv": 0.3, "Glc": 35.0, "V": 1.0},
        "boluses": [{"time": 3, "volume_L": 0.03, "Glc": 400, "Gln": 40}],
        "samples": {"times": [1.02, 2.02], "volume_L": 0.002},
        "continuous_feed": {
            "unit": "L/d",
            "rate": [[0, 0], [3, 0], [3, 0.03], [14, 0.03]],
            "composition": {"Glc": 400},
        },
        "bolus_duration_h": 0.1,
        "settings": {"metabolism": "platform"},
        "glucose_control": {"target_mM": 22, "times": [3.03, 4.03], "stock_mM": 2775, "window_h": 0.25},
        "optimize": {"glucose_target_mM": [14, 26], "tolerance_mM": 0.2, "max": {"Lac": 35}},
    }
    new = {
        "time_unit": "d",
        "duration": 14,
        "initial": {"Xv": "0.3 Mcell/mL", "Glc": "35 mM", "V": "1000 mL"},
        "boluses": [{"time": 3, "volume": "30 mL", "Glc": "400 mM", "Gln": "40 mM"}],
        "samples": {"times": [1.02, 2.02], "volume": "2 mL"},
        "continuous_feed": {
            "unit": "L/d",
            "points": [[0, 0], [3, 0], [3, 0.03], [14, 0.03]],
            "composition": {"Glc": "400 mM"},
        },
        "bolus_duration": "6 min",
        "settings": {"metabolism": "platform"},
        "glucose_control": {"target": "22 mM", "times": [3.03, 4.03], "stock": "2775 mM", "window": "15 min"},
        "optimize": {"glucose_target": ["14 mM", "26 mM"], "tolerance": "0.2 mM", "max": {"Lac": "35 mM"}},
    }
    with pytest.warns(RecipeSpellingWarning) as notes:
        a = model.load_scenario(old)
    assert len(notes) == 1
    for spelled in ("volume_L: 0.03 -> volume: 0.03 L", "Glc: 400 -> Glc: 400 mM", "target_mM: 22 -> target: 22 mM"):
        assert spelled in str(notes[0].message)
    b = model.load_scenario(new)
    assert a.t_end == b.t_end and a.settings == b.settings
    assert a.parameters == pytest.approx(b.parameters, rel=1e-12)
    for name, program in a.inputs.items():
        other = b.inputs[name]
        assert program["unit"] == other["unit"]
        assert np.asarray(program["points"]) == pytest.approx(np.asarray(other["points"]), rel=1e-12)
    assert model.module.read_optimize_block(a.raw, "a") == model.module.read_optimize_block(b.raw, "b")


def test_old_defaults_and_limits_on_other_variables(model):
    """The old reader's default rate unit (L/h) still applies to an old continuous feed; a limit on a
    variable that is not a state (viability [%]) is a number in that variable's unit."""
    from biotwin.core.schema import RecipeSpellingWarning

    old = {"time_unit": "d", "duration": 14, "continuous_feed": {"rate": [[0, 0.001], [14, 0.001]]}}
    with pytest.warns(RecipeSpellingWarning, match="unit: L/h"):
        sc = model.load_scenario(old)
    assert sc.inputs["F_cont"]["unit"] == "L/h" and sc.inputs["F_cont"]["points"][-1] == [336.0, 0.001]
    raw = {**model.load_scenario("glucose_target_14d").raw}
    raw["optimize"] = {**raw["optimize"], "min": {"viability": 80}}
    spec = model.module.read_optimize_block(raw, "r")
    assert spec["limits"] == {"Lac": (None, 35.0), "viability": (80.0, None)}
