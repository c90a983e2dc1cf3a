"""The calibration engine against published optima and known truths.

Independent references: COPS 3.0 gasoil and methanol optima, the parmest Rooney-Biegler
estimates and covariance (../shared/data/estimation_benchmarks), and synthetic data made by
scipy's solve_ivp from known parameters.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import minimize_scalar

import biotwin
from biotwin.calibration import CalibrationResult
from biotwin.core.data import Experiment
from biotwin.core.errors import BiotwinError, DataError, ScenarioError, SolverError
from support import TEST_MODELS

BENCH = "estimation_benchmarks"


def benchmark_experiment(shared_data, name, time_column):
    frame = pd.read_csv(shared_data / BENCH / name / "data.csv").rename(columns={time_column: "time"})
    return Experiment.from_frame(frame, name)


def test_cops_gasoil_reaches_published_optimum(shared_data):
    # COPS uses nh = 100 elements (Gauss-Legendre, 4 points); Radau with 3 points at 100 elements
    # gives the same optimum (SPEC.md's independent check: 5.2365958e-3 for both).
    exp = benchmark_experiment(shared_data, "cops_gasoil", "t")
    result = biotwin.calibrate(TEST_MODELS / "cops_gasoil", exp, ["theta1", "theta2", "theta3"], nfe=100, ncp=3)
    assert result.objective == pytest.approx(5.2366e-3, rel=1e-3)
    assert result.objective_kind == "SSE" and result.status == "optimal"
    values = [result.parameters[f"theta{i}"]["value"] for i in (1, 2, 3)]
    assert values == pytest.approx([11.84674, 8.34452, 1.00144], rel=1e-3)  # SPEC.md's independent scipy fit
    assert result.n_observations == 42


def test_cops_methanol_optimum_and_parameter_at_bound(shared_data):
    exp = benchmark_experiment(shared_data, "cops_methanol", "t")
    result = biotwin.calibrate(TEST_MODELS / "cops_methanol", exp, ["th1", "th2", "th3", "th4", "th5"], nfe=100)
    assert result.objective == pytest.approx(9.02229e-3, rel=1e-3)
    th5 = result.parameters["th5"]
    assert th5["at_bound"] == "lower"
    assert th5["ci95_low"] is None and th5["std_error"] is None
    assert any("th5 is at its lower bound" in w for w in result.warnings)
    for name in ("th1", "th2", "th3", "th4"):
        assert result.parameters[name]["at_bound"] is None and result.parameters[name]["std_error"] > 0
    # th1..th3 are strongly correlated: flagged
    pairs = {(c["a"], c["b"]) for c in result.identifiability["high_correlations"]}
    assert ("th1", "th2") in pairs


def test_rooney_biegler_estimates_and_covariance(shared_data):
    exp = benchmark_experiment(shared_data, "parmest_rooney_biegler", "hour")
    result = biotwin.calibrate(TEST_MODELS / "rooney_biegler", exp, ["asymptote", "rate_constant"], nfe=7, ncp=1)
    assert result.parameters["asymptote"]["value"] == pytest.approx(19.1426, rel=1e-4)
    assert result.parameters["rate_constant"]["value"] == pytest.approx(0.5311, rel=1e-3)
    assert result.objective == pytest.approx(25.99027, rel=1e-5)
    cov = result.covariance_frame().to_numpy()
    published = np.array([[6.2296, -0.4323], [-0.4323, 0.04124]])
    assert np.allclose(cov, published, rtol=0.01, atol=0)


def test_rooney_biegler_profile_interval_matches_brute_force(shared_data):
    exp = benchmark_experiment(shared_data, "parmest_rooney_biegler", "hour")
    result = biotwin.calibrate(
        TEST_MODELS / "rooney_biegler", exp, ["asymptote", "rate_constant"], nfe=7, ncp=1, profile=["asymptote"]
    )
    prof = result.profiles["asymptote"]
    t, y = exp.data["time"].to_numpy(), exp.data["y"].to_numpy()

    def sse_at(a):  # independent profile: minimize over the rate with scipy
        return minimize_scalar(
            lambda k: np.sum((y - a * (1 - np.exp(-k * t))) ** 2),
            bounds=(1e-6, 10),
            method="bounded",
            options={"xatol": 1e-12},
        ).fun

    from scipy import stats

    limit = 25.99027 * (1 + stats.f.ppf(0.95, 1, 4) / 4)
    for side in ("low", "high"):
        edge = prof[f"ci95_{side}"]
        assert edge is not None
        assert sse_at(edge) == pytest.approx(limit, rel=2e-3)
    assert prof["ci95_low"] < 19.1426 < prof["ci95_high"]
    assert result.parameters["asymptote"]["profile_ci95_low"] == prof["ci95_low"]


# -- synthetic multi-experiment fed-batch ------------------------------------------------------
TRUE = {"mu_max": 0.45, "Ks": 0.5, "Yxs": 0.45, "Sf": 100.0, "V0": 1.0}
RECIPES = [  # (X0, S0, switch time, feed rate)
    (0.10, 10.0, 8.0, 0.02),
    (0.20, 5.0, 6.0, 0.03),
    (0.05, 15.0, 10.0, 0.015),
]
SIGMA = {"X": 0.15, "S": 0.2}


def truth(x0, s0, t_switch, f_on, times):
    def rhs(t, y, F):
        X, S, V = y
        mu = TRUE["mu_max"] * S / (TRUE["Ks"] + S)
        return [mu * X - F / V * X, -mu * X / TRUE["Yxs"] + F / V * (TRUE["Sf"] - S), F]

    a = solve_ivp(rhs, (0, t_switch), [x0, s0, TRUE["V0"]], args=(0.0,), rtol=1e-10, atol=1e-12, dense_output=True)
    b = solve_ivp(rhs, (t_switch, 20), a.y[:, -1], args=(f_on,), rtol=1e-10, atol=1e-12, dense_output=True)
    return np.array([a.sol(t) if t <= t_switch else b.sol(t) for t in times])


def synthetic_experiments(rng, with_sigma=True, known=None):
    times = np.arange(1.0, 20.01, 1.0)
    out = []
    for i, (x0, s0, ts, f) in enumerate(RECIPES):
        y = truth(x0, s0, ts, f, times)
        frame = pd.DataFrame(
            {
                "time": times,
                "X": y[:, 0] + rng.normal(0, SIGMA["X"], times.size),
                "S": y[:, 1] + rng.normal(0, SIGMA["S"], times.size),
            }
        )
        if with_sigma:
            frame["X_sigma"], frame["S_sigma"] = SIGMA["X"], SIGMA["S"]
        scenario = {"t_end": 20, "inputs": {"F": [[0, 0], [ts, 0], [ts, f], [20, f]]}}
        out.append(
            Experiment.from_frame(
                frame, f"batch{i + 1}", scenario=scenario, params={"X0": x0, "S0": s0, **(known or {})}
            )
        )
    return out


def test_synthetic_three_experiments_recover_truth_and_save(tmp_path):
    exps = synthetic_experiments(np.random.default_rng(1))
    result = biotwin.calibrate(TEST_MODELS / "monod_switch", exps, ["mu_max", "Ks", "Yxs"], nfe=60)
    assert result.objective_kind == "weighted SSE"
    for name in ("mu_max", "Ks", "Yxs"):
        p = result.parameters[name]
        assert p["ci95_low"] < TRUE[name] < p["ci95_high"], (name, p)
    diag = result.diagnostics
    residuals = result.residual_frame()
    chi2 = float((((residuals.value - residuals.fitted) / residuals.sigma) ** 2).sum())
    assert diag["chi2"] == pytest.approx(chi2, rel=1e-12) == pytest.approx(result.objective, rel=1e-12)
    assert diag["dof"] == 120 - 3 and diag["chi2_expected_95"][0] < 117 < diag["chi2_expected_95"][1]
    assert set(diag["per_variable"]) == {"X", "S"} and diag["per_variable"]["X"]["r2"] > 0.95
    # trajectories with bands for every experiment
    band = result.trajectories["batch2"]
    assert len(band["X"]) == len(band["time"]) and all(
        l <= v <= h for l, v, h in zip(band["X_low"], band["X"], band["X_high"])
    )
    # persistence: save, refuse to overwrite, reload identical
    path = result.save(tmp_path / "fit.json")
    with pytest.raises(BiotwinError, match="exists; not overwriting"):
        result.save(path)
    again = CalibrationResult.load(path)
    assert again.parameters == json.loads(json.dumps(result.to_dict()))["parameters"]
    assert again.provenance["model_sha256"] == result.provenance["model_sha256"]
    assert len(again.provenance["data"]) == 3 and all(len(d["sha256"]) == 64 for d in again.provenance["data"])
    assert again.provenance["solver_options"]["mumps_scaling"] == 0
    assert "pyomo" in again.provenance["versions"]
    result.save(path, overwrite=True)


def test_experiment_specific_parameter():
    exps = synthetic_experiments(np.random.default_rng(2), known={"Ks": TRUE["Ks"]})
    result = biotwin.calibrate(
        TEST_MODELS / "monod_switch",
        exps,
        ["mu_max", "Yxs"],
        local=["X0"],
        nfe=40,
        start={"X0[batch1]": 0.3, "X0[batch2]": 0.3, "X0[batch3]": 0.3},
    )
    for i, (x0, *_rest) in enumerate(RECIPES):
        p = result.parameters[f"X0[batch{i + 1}]"]
        assert p["experiment"] == f"batch{i + 1}"
        assert p["ci95_low"] < x0 < p["ci95_high"]


def test_multistart_is_reproducible_and_lists_optima(shared_data):
    exp = benchmark_experiment(shared_data, "cops_gasoil", "t")
    kwargs = {"nfe": 40, "multistart": 4, "seed": 7, "workers": 2}
    a = biotwin.calibrate(TEST_MODELS / "cops_gasoil", exp, ["theta1", "theta2", "theta3"], **kwargs)
    b = biotwin.calibrate(TEST_MODELS / "cops_gasoil", exp, ["theta1", "theta2", "theta3"], **kwargs)
    assert a.multistart and sum(o["count"] for o in a.multistart) <= 4
    assert a.multistart[0]["objective"] == pytest.approx(a.objective, rel=1e-6)
    assert [o["objective"] for o in a.multistart] == pytest.approx([o["objective"] for o in b.multistart], rel=1e-9)
    assert a.provenance["seed"] == 7


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"estimate": ["mu_maxx"]}, ScenarioError, "cannot estimate 'mu_maxx': unknown parameter"),
        ({"estimate": ["Sf"]}, ScenarioError, "cannot estimate 'Sf': it has no bounds"),
        ({"estimate": ["mu_max"], "profile": ["Ks"]}, ScenarioError, r"cannot profile \['Ks'\]"),
        ({"estimate": ["mu_max"], "start": {"Ks": 1.0}}, ScenarioError, "not estimated"),
        ({"estimate": ["mu_max"], "start": {"mu_max": 50.0}}, ScenarioError, "outside its bounds"),
    ],
)
def test_bad_requests(kwargs, error, message):
    exps = synthetic_experiments(np.random.default_rng(3))
    with pytest.raises(error, match=message):
        biotwin.calibrate(TEST_MODELS / "monod_switch", exps, nfe=20, **kwargs)


def test_bad_data():
    frame = pd.DataFrame({"time": [1.0, 2.0, 3.0], "X": [0.1, 0.2, 0.3], "Biomass": [1, 2, 3]})
    with pytest.raises(DataError, match="column 'Biomass' names nothing in model 'monod_switch'"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", Experiment.from_frame(frame, "e"), ["mu_max"], nfe=20)
    few = pd.DataFrame({"time": [1.0, 2.0], "X": [0.1, 0.2]})
    with pytest.raises(DataError, match="too few observations: 2 for 3"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", Experiment.from_frame(few, "e"), ["mu_max", "Ks", "Yxs"])
    mixed = pd.DataFrame({"time": [1.0, 2.0, 3.0], "X": [0.1, 0.2, 0.3], "X_sigma": [0.1, 0.1, 0.1], "S": [9, 8, 7]})
    with pytest.raises(DataError, match="sigma is given for some observations but not for S"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", Experiment.from_frame(mixed, "e"), ["mu_max"], nfe=20)
    late = pd.DataFrame({"time": [1.0, 25.0], "X": [0.1, 0.2]})
    with pytest.raises(DataError, match="after the end of its recipe"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", Experiment.from_frame(late, "e"), ["mu_max"], nfe=20)
    # a (DataFrame, recipe) pair is read like a (path, recipe) pair: the recipe's end applies (it was a
    # TypeError from pathlib); a tuple of three is refused by name
    with pytest.raises(DataError, match="after the end of its recipe"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", (late, {"t_end": 10}), ["mu_max"], nfe=20)
    with pytest.raises(DataError, match=r"a \(data, scenario\) pair, not 3 items"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", [(late, "default", "x")], ["mu_max"], nfe=20)


def test_failed_solve_is_a_clear_error(monkeypatch):
    exps = synthetic_experiments(np.random.default_rng(4))
    # no forward-integration start and Ipopt fails on the experiment: the error names it
    from biotwin.engine.simulation import Simulation

    monkeypatch.setattr(Simulation, "initialize", lambda sim: "forward integration failed")
    with pytest.raises(SolverError, match="experiment 'batch1' cannot be simulated at the start values.*maxIterations"):
        biotwin.calibrate(TEST_MODELS / "monod_switch", exps, ["mu_max", "Ks"], nfe=20, options={"max_iter": 0})
    monkeypatch.undo()
    # the estimation itself fails: named, with iterations and residuals
    with pytest.raises(SolverError, match="calibration of monod_switch: termination condition 'maxIterations' after 3"):
        biotwin.calibrate(
            TEST_MODELS / "monod_switch",
            exps,
            ["mu_max", "Ks"],
            nfe=20,
            options={"max_iter": 3},
            start={"mu_max": 0.2, "Ks": 2.0},
        )


@pytest.mark.slow
def test_wald_intervals_cover_truth_in_repeated_experiments():
    """95 % intervals cover the true values in ~95 % of 50 noisy replicates (binomial: >= 43 of 50)."""
    rng = np.random.default_rng(2026)
    hits = {name: 0 for name in ("mu_max", "Ks", "Yxs")}
    chi2_inside = 0
    model = biotwin.load_model(TEST_MODELS / "monod_switch")
    for _ in range(50):
        result = biotwin.calibrate(model, synthetic_experiments(rng), list(hits), nfe=40, bands=False)
        for name in hits:
            p = result.parameters[name]
            hits[name] += p["ci95_low"] <= TRUE[name] <= p["ci95_high"]
        lo, hi = result.diagnostics["chi2_expected_95"]
        chi2_inside += lo <= result.diagnostics["chi2"] <= hi
    # P(Binomial(50, 0.95) <= 42) = 0.038; a correct 95 % interval passes this with 96 % probability
    print(f"intervals covering the truth in 50 replicates: {hits}; chi^2 inside its range: {chi2_inside}")
    assert all(h >= 43 for h in hits.values()), hits
    assert chi2_inside >= 43, f"chi^2 inside its expected 95 % range in {chi2_inside} of 50 replicates"


def test_figures_from_a_saved_result(tmp_path):
    from biotwin.ui.calibration_figures import plot_correlation, plot_fit, plot_parity, plot_residuals

    exps = synthetic_experiments(np.random.default_rng(5))
    result = biotwin.calibrate(TEST_MODELS / "monod_switch", exps, ["mu_max", "Ks", "Yxs"], nfe=30)
    loaded = CalibrationResult.load(result.save(tmp_path / "r.json"))
    fit = plot_fit(loaded)
    assert len([t for t in fit.data if t.name == "data"]) == 6  # 3 experiments x 2 variables
    assert fit.layout.yaxis.title.text == "S [g/l]" and "time [h]" in fit.layout.xaxis5.title.text
    assert len(plot_parity(loaded).data) == 2 * 3 + 2
    residuals = plot_residuals(loaded)
    ys = np.concatenate([np.asarray(t.y) for t in residuals.data if t.mode == "markers"])
    assert ys.size == 120 and np.isfinite(ys).all()
    heat = plot_correlation(loaded)
    assert np.allclose(np.diag(np.asarray(heat.data[0].z, dtype=float)), 1.0)


def test_structural_non_identifiability_is_reported():
    times = np.linspace(0.5, 5, 10)
    frame = pd.DataFrame({"time": times, "X": np.exp(-0.6 * times)})
    with pytest.warns(UserWarning, match="near-null direction"):
        result = biotwin.calibrate(
            TEST_MODELS / "product_rate", Experiment.from_frame(frame, "decay"), ["k1", "k2"], nfe=30, sigma={"X": 0.01}
        )
    k1, k2 = result.parameters["k1"]["value"], result.parameters["k2"]["value"]
    assert k1 * k2 == pytest.approx(0.6, rel=1e-4), "the identifiable product is recovered"
    (direction,) = result.identifiability["null_directions"]
    loadings = direction["loadings"]
    assert set(loadings) == {"k1", "k2"}
    assert abs(loadings["k1"]) == pytest.approx(abs(loadings["k2"]), rel=1e-3)
    assert loadings["k1"] * loadings["k2"] < 0, "raising k1 and lowering k2 leaves the fit unchanged"
