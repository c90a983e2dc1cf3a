"""Bad or unusual inputs found by hand (issue #12): each reproduced, each with its named error or correct result."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

import biotwin
from biotwin.core.checks import UnusualValueError, allow_unusual
from biotwin.core.data import Experiment
from biotwin.core.errors import BiotwinError, DataError, ModelDefinitionError, ScenarioError, SolverError
from support import ROOT, TEST_MODELS

MAB_NOMINAL = ROOT / "models" / "mab_fedbatch" / "scenarios" / "nominal_14d.yaml"
LYO_CASE1 = ROOT / "models" / "lyophilization" / "scenarios" / "case1_standard.yaml"


def test_reused_model_does_not_keep_an_input_of_the_previous_recipe():
    model = biotwin.load_model("mab_fedbatch")
    fed = yaml.safe_load(MAB_NOMINAL.read_text())
    fed["continuous_feed"] = {
        "unit": "L/d",
        "points": [[0, 0], [3, 0], [3, 0.03], [14, 0.03]],
        "composition": {"Glc": "400 mM", "Gln": "40 mM"},
    }
    model.simulate(scenario=fed)
    reused = model.simulate(scenario="nominal_14d").final()
    fresh = biotwin.load_model("mab_fedbatch").simulate(scenario="nominal_14d").final()
    print(
        f"re-used V {reused['V']:.6f} L titer {reused['titer']:.6f}; fresh V {fresh['V']:.6f} titer {fresh['titer']:.6f}"
    )
    assert reused["V"] == pytest.approx(fresh["V"], rel=1e-8)
    assert reused["titer"] == pytest.approx(fresh["titer"], rel=1e-6)


def test_monod_fed_batch_then_batch_on_one_model(monod_folder):
    model = biotwin.load_model(monod_folder)
    model.simulate()  # the default recipe switches the feed on at 8 h
    batch = model.simulate(scenario={"t_end": 20}).final()
    fresh = biotwin.load_model(monod_folder).simulate(scenario={"t_end": 20}).final()
    assert batch["V"] == pytest.approx(1.0, abs=1e-9)  # no feed: the volume stays at V0
    assert batch["X"] == pytest.approx(fresh["X"], rel=1e-7)


def _xv_only(tmp_path, rows=None):
    data = pd.read_csv(ROOT / "models" / "mab_fedbatch" / "data" / "run1.csv")[["time", "Xv", "Xv_sigma"]]
    if rows is not None:
        data = data.iloc[:rows]
    path = tmp_path / "xv_only.csv"
    data.to_csv(path, index=False)
    (tmp_path / "xv_only.yaml").write_text((ROOT / "models" / "mab_fedbatch" / "data" / "run1.yaml").read_text())
    return path


def test_a_parameter_the_data_do_not_inform_has_no_finite_interval(tmp_path):
    with pytest.warns(UserWarning, match="NOT IDENTIFIABLE"):
        result = biotwin.calibrate("mab_fedbatch", _xv_only(tmp_path), ["mu_max", "beta_P"], nfe=40)
    beta, mu = result.parameters["beta_P"], result.parameters["mu_max"]
    print(result.summary())
    assert beta["identifiable"] is False and beta["std_error"] is None and beta["ci95_low"] is None
    assert math.isinf(result.table().loc["beta_P", "std_error"])
    assert mu["identifiable"] is True and 0 < mu["std_error"] < math.inf and mu["ci95_low"] < mu["ci95_high"]
    assert "NOT IDENTIFIABLE" in result.summary()
    saved = biotwin.CalibrationResult.load(result.save(tmp_path / "fit.json"))
    assert saved.parameters["beta_P"]["ci95_low"] is None  # never a zero-width interval on disk


def test_covariance_is_infinite_along_an_uninformed_direction():
    from biotwin.calibration.statistics import covariance

    jac = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [3.0, 6.0, 0.5]])  # columns 1 and 2 collinear
    cov, _, _ = covariance(jac, np.ones(3), np.zeros(3), np.ones(3, bool), True)
    assert np.isinf(cov[0, 0]) and np.isinf(cov[1, 1]) and np.isfinite(cov[2, 2]) and cov[2, 2] > 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"duration": 336}, "outside the plausible range"),
        ({"samples": {"times": [1, 2, 3, 4, 5], "volume": "0.4 L"}}, "breaks physics"),
    ],
)
def test_culture_recipe_mistakes_are_errors(change, message):
    raw = {**yaml.safe_load(MAB_NOMINAL.read_text()), **change}
    with pytest.raises(ScenarioError, match=message):
        biotwin.load_model("mab_fedbatch").simulate(scenario=raw, nfe=30)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"shelf_temperature": {"unit": "degC", "points": [[0, 238], [1, 293], [12, 293]]}}, "plausible range"),
        ({"chamber_pressure": {"unit": "mtorr", "points": [[0, 0.15], [12, 0.15]]}}, "plausible range"),
        ({"chamber_pressure": {"unit": "mtorr", "points": [[0, 20000], [12, 20000]]}}, "plausible range"),
        ({"vial": {"Av": "3.8 cm^2", "Ap": "3.14 cm^2", "Vfill": "-2 mL"}}, "Vfill: must be positive"),
        ({"vial": {"Vfill": "2 cm^2"}}, "Vfill: 'cm\\^2' is not a unit of the same kind as 'mL'"),
    ],
)
def test_lyophilization_unit_mistakes_are_errors(change, message):
    raw = {**yaml.safe_load(LYO_CASE1.read_text()), **change}
    with pytest.raises(ScenarioError, match=message):
        biotwin.load_model("lyophilization").load_scenario(raw)


def test_unusual_values_run_when_the_recipe_says_so():
    raw = {**yaml.safe_load(MAB_NOMINAL.read_text()), "duration": 70}
    model = biotwin.load_model("mab_fedbatch")
    with pytest.raises(UnusualValueError):
        model.load_scenario(raw)
    assert model.load_scenario({**raw, "allow_unusual": True}).t_end == 70 * 24
    with allow_unusual():
        assert model.load_scenario(raw).t_end == 70 * 24


@pytest.mark.parametrize(
    "params, message",
    [
        ({"beta_P": 1000.0}, "outside its bounds"),
        ({"mu_max": -0.03}, "outside its bounds"),
        ({"k_ice": 0.0}, "'k_ice' = 0 cal/cm/s/K is outside its bounds"),
        ("beta_P=30", "must be a mapping"),
        (["beta_P", 30], "must be a mapping"),
    ],
)
def test_parameter_overrides_are_checked(params, message):
    name = "lyophilization" if "k_ice" in str(params) else "mab_fedbatch"
    with pytest.raises(ScenarioError, match=message):
        biotwin.load_model(name).parameter_values(params)


def test_duplicate_yaml_keys_are_errors(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(MAB_NOMINAL.read_text() + "\nduration: 20\n")
    with pytest.raises(ScenarioError, match="duplicate key 'duration'"):
        biotwin.load_model("mab_fedbatch").load_scenario(path)


def test_yaml_words_on_off_yes_no_stay_words():
    """YAML 1.1 reads ``on``/``yes``/``no`` as booleans, which turned a hand-written protocol criterion
    ``{metric: rmse_sd, on: validation}`` into the key True; biotwin reads YAML 1.2 booleans only."""
    from biotwin.core import yaml_io

    text = "criteria:\n  - {metric: rmse_sd, on: validation}\nflags: [yes, no, off, y, n]\nok: true\nbad: False\n"
    assert yaml_io.load(text) == {
        "criteria": [{"metric": "rmse_sd", "on": "validation"}],
        "flags": ["yes", "no", "off", "y", "n"],
        "ok": True,
        "bad": False,
    }


def test_data_file_without_its_recipe_is_an_error(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("time,X\n1,0.2\n2,0.4\n3,0.8\n")
    with pytest.raises(DataError, match="no recipe for this experiment"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", path, ["mu_max"], nfe=10)


def test_a_header_with_a_unit_names_the_column(tmp_path):
    frame = pd.DataFrame({"time": [1.0, 2.0], "Xv [Mcell/mL]": [1.0, 2.0], "Xv_sigma": [0.1, 0.1]})
    with pytest.raises(DataError, match=r"column 'Xv \[Mcell/mL\]' is not a variable name.*rename it to 'Xv'"):
        Experiment.from_frame(frame, "e")


def test_t_end_past_the_recipe_names_the_recipe_not_an_internal_input():
    with pytest.raises(ScenarioError, match=r"after the end of the recipe \(14 d") as info:
        biotwin.load_model("mab_fedbatch").simulate("nominal_14d", t_end=500)
    assert "F_bolus" not in str(info.value)


def test_overlapping_boluses_are_quoted_in_the_recipe_unit():
    raw = {
        **yaml.safe_load(MAB_NOMINAL.read_text()),
        "boluses": [
            {"time": 3, "volume": "30 mL", "Glc": "400 mM"},
            {"time": 3.001, "volume": "30 mL", "Glc": "400 mM"},
        ],
    }
    with pytest.raises(ScenarioError, match=r"at 3 d and 3.001 d overlap"):
        biotwin.load_model("mab_fedbatch").load_scenario(raw)


def test_hek_growth_rate_point_with_one_value():
    raw = yaml.safe_load((ROOT / "models" / "hek293_vlp" / "scenarios" / "batch_transfection.yaml").read_text())
    raw["growth_rate"] = {"unit": "1/h", "points": [[0, 0.03], [10]]}
    with pytest.raises(ScenarioError, match=r"growth_rate: points\[1\]: expected \[time, value\]"):
        biotwin.load_model("hek293_vlp").load_scenario(raw)


def _copy_model(tmp_path, edit):
    folder = tmp_path / "monod_copy"
    folder.mkdir()
    (folder / "scenarios").mkdir()
    for name in ("parameters.yaml", "scenarios/default.yaml"):
        (folder / name).write_text((TEST_MODELS / "monod_switch" / name).read_text())
    (folder / "model.py").write_text(edit((TEST_MODELS / "monod_switch" / "model.py").read_text()))
    return folder


def test_build_raising_names_the_model_file_and_line(tmp_path):
    folder = _copy_model(
        tmp_path, lambda s: s.replace("m.mu_max = pyo.Var(", "settings['no_such_key']\n    m.mu_max = pyo.Var(")
    )
    with pytest.raises(ModelDefinitionError, match=r"model.py: build\(\) failed \(line \d+: .*KeyError"):
        biotwin.load_model(folder).simulate(nfe=5)


def test_build_returning_a_discretized_model(tmp_path):
    folder = _copy_model(
        tmp_path,
        lambda s: s.replace(
            "    return m\n",
            "    pyo.TransformationFactory('dae.finite_difference').apply_to(m, nfe=3)\n    return m\n",
        ),
    )
    with pytest.raises(ModelDefinitionError, match="already discretized"):
        biotwin.load_model(folder).simulate(nfe=5)


def test_parameter_missing_from_parameters_yaml_is_named(tmp_path):
    folder = _copy_model(
        tmp_path,
        lambda s: s.replace(
            "m.mu_max = pyo.Var(units=1 / u.h)",
            "m.mu_max = pyo.Var(units=1 / u.h)\n    m.k_extra = pyo.Var(initialize=0.0)",
        ).replace("- m.F[t] / m.V[t] * m.X[t]", "- m.F[t] / m.V[t] * m.X[t] - m.k_extra * m.X[t]"),
    )
    with pytest.raises(ModelDefinitionError, match="k_extra is a scalar variable .* parameters.yaml"):
        biotwin.load_model(folder).simulate(nfe=5)


def test_infeasible_optimize_limit_is_named():
    raw = yaml.safe_load((ROOT / "models" / "lyophilization" / "scenarios" / "optimize_case1.yaml").read_text())
    raw.setdefault("optimize", {}).setdefault("constraints", {})["T_bottom_max"] = "-60 degC"
    with pytest.raises(ScenarioError, match="infeasible optimization.*raise T_bottom_max"):
        biotwin.load_model("lyophilization").load_scenario(raw)


def test_failed_simulation_names_parameters_far_from_their_defaults():
    # on the given grid (mesh_tol=None): refinement to 257 elements before the failure took 14 s, and the
    # failure and its note are what is tested here (the restoration phase fails after 28 iterations)
    with allow_unusual(), pytest.raises(BiotwinError, match="mu_max = 10 1/h"):
        biotwin.load_model("mab_fedbatch").simulate(
            "nominal_14d", params={"mu_max": 10.0}, nfe=30, options={"max_wall_time": 20.0}, mesh_tol=None
        )


def test_lyophilization_result_reads_at_most_100_percent_dried_and_units_say_percent():
    # the recipe of case 1 holds the shelf at 20 degC until 12 h; primary drying ends at 6.65 h
    result = biotwin.load_model("lyophilization").simulate(scenario="case1_standard")
    assert result.wide["percent_dried"].max() <= 100.0 + 1e-6
    assert result.wide["percent_dried"].iloc[-1] == pytest.approx(100.0, abs=1e-4)
    assert result.units["percent_dried"] == "%" and result.units["residual_moisture"] == "%"


def test_viability_column_is_in_percent():
    result = biotwin.load_model("mab_fedbatch").simulate(scenario="nominal_14d", nfe=28)
    assert result.units["viability"] == "%"
    assert 50.0 < result.wide["viability"].iloc[0] <= 100.0


@pytest.mark.parametrize("warm", [False, True])
def test_time_limit_is_named_with_the_fix(warm):
    """Ipopt stopped by max_wall_time: the error names the limit and how to raise it (it was
    "KeyError: b'Unknown status'", from Pyomo's cyipopt interface, on a cold solve)."""
    model = biotwin.load_model("mab_fedbatch")
    if warm:
        model.simulate(nfe=40)  # the next solve re-uses the persistent NLP
    with pytest.raises(SolverError, match=r"time limit reached \(max_wall_time=0.001 s\).*--solver-option") as err:
        model.simulate(nfe=40, params={"mu_max": 0.05}, options={"max_wall_time": 0.001})
    assert err.value.termination_condition == "maxTimeLimit"


def test_an_explicitly_time_dependent_rate_is_solved_exactly_and_refused_where_it_would_be_frozen():
    """dX/dt = -k (1 + a t) X: the forward template compiles the equations at one time, so it freezes t.

    The collocation solve uses the true equations (the analytic X0 exp(-k (t + a t^2/2)) to 1e-6); the
    uses that would silently take the frozen form -- rates at a state, the twin's filter -- refuse by name
    (they returned dX/dt at t = 1 h and predicted with t = t_end before), and the parmest Rooney-Biegler
    response y = a (1 - exp(-k t)) is recognised as time-explicit too."""

    model = biotwin.load_model(TEST_MODELS / "time_varying")
    wide = model.simulate("default", nfe=40).wide
    t, x = wide["time"].to_numpy(), wide["X"].to_numpy()
    exact = 2.0 * np.exp(-0.5 * (t + 0.5 * t**2 / 2))
    assert np.max(np.abs(x - exact) / exact) < 1e-6
    with pytest.raises(ModelDefinitionError, match="decay depend.*on time explicitly.*d\\(tau\\)/dt = 1"):
        model.rates({"X": 1.0})
    with pytest.raises(ModelDefinitionError, match="the twin of model 'time_varying'"):
        biotwin.Twin(model, "default", estimate=["k"])
    from biotwin.engine.forward import ForwardIntegrator

    m = biotwin.load_model(TEST_MODELS / "rooney_biegler").build({"t_end": 7.0})
    assert ForwardIntegrator(m, m.t).time_explicit == ["response"]
    m = biotwin.load_model(TEST_MODELS / "monod_switch").build({"t_end": 7.0})
    assert ForwardIntegrator(m, m.t).time_explicit == []


def test_parameter_sliders_start_at_the_recipes_values():
    """An explorer on LyoPRONTO's case 2 starts its R0, A1 and KC sliders at case 2's values (0.8, 14,
    3.58e-4), not at parameters.yaml's (case 1): the sliders' values are applied on every solve, so a slider
    at the wrong start silently replaced the recipe's product and vial."""
    from biotwin.engine.knobs import explorer_spec

    model = biotwin.load_model("lyophilization")
    knobs = {k.name: k.value for k in explorer_spec(model, "case2_10R_sucrose").knobs if k.apply is None}
    assert knobs == pytest.approx({"R0": 0.8, "A1": 14.0, "KC": 3.58e-4})
    default = {k.name: k.value for k in explorer_spec(model).knobs if k.apply is None}
    assert default == pytest.approx({"R0": 1.4, "A1": 16.0, "KC": 2.75e-4})  # its explorer recipe: case 1
