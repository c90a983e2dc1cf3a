"""Sweeps on Dask: the same points as a serial run, nothing lost or counted twice when a worker dies or a
sweep is interrupted, failures recorded, bad specs refused by name; Sobol indices checked on Ishigami."""

import os
import signal

import numpy as np
import pandas as pd
import pytest
import yaml

from biotwin.sweep import SweepError, load_sweep, probability_map, read_sweep, run_sweep
from support import TEST_MODELS

MONOD = TEST_MODELS / "monod_switch"
OUTPUTS = ["X:final@all", "S:min@all"]


def spec_dict(**changes):
    spec = {
        "recipe": "default",
        "nfe": 30,
        # 3.0 1/h is outside mu_max's bounds in parameters.yaml: that cell's points must fail, recorded
        "grid": {"mu_max": [0.3, 0.5, 3.0]},
        "samples": {
            "n": 6,
            "method": "lhs",
            "seed": 7,
            "parameters": {
                "Ks": {"dist": "lognormal", "median": 0.2, "rsd": 0.3},
                "Yxs": {"dist": "uniform", "low": 0.4, "high": 0.6},
            },
        },
        "outputs": ["X:final", "S:min"],
        "limits": [{"output": "X:final", "min": 10.0}],
        "chunk": 4,
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "sweep"
    return run_sweep(read_sweep(spec_dict(), MONOD), out, scheduler="serial")


def _same(a, b):
    fa, fb = a.frame, b.frame
    assert fa["point"].tolist() == fb["point"].tolist() == list(range(18))
    pd.testing.assert_series_equal(fa["error"], fb["error"])
    np.testing.assert_allclose(fa[OUTPUTS].to_numpy(float), fb[OUTPUTS].to_numpy(float), rtol=1e-6, equal_nan=True)


def test_a_serial_sweep_records_every_point_and_every_failure(serial):
    frame = serial.frame
    failed = frame[frame["error"].notna()]
    print(f"\n{len(frame)} points, {len(failed)} failed: {failed['error'].iloc[0][:120]}")
    assert serial.stats["complete"] and len(frame) == 18
    assert (failed["mu_max"] == 3.0).all() and len(failed) == 6 and failed["error"].str.contains("mu_max").all()
    assert frame.loc[frame["error"].isna(), OUTPUTS].notna().all().all()
    cells = probability_map(serial)
    # recomputed by hand from the frame: X at 20 h at least 10 g/L in every sample of a cell
    by_hand = frame.assign(ok=frame["X:final@all"] >= 10.0).groupby("cell")["ok"].mean()
    np.testing.assert_allclose(cells["probability"], by_hand.to_numpy())
    assert cells.loc[cells["mu_max"] == 3.0, "n_failed"].item() == 6
    assert cells.loc[cells["mu_max"] == 3.0, "probability"].item() == 0.0
    p, n = cells["probability"], cells["n"]
    np.testing.assert_allclose(cells["se"], np.sqrt(p * (1 - p) / n))


def test_two_dask_workers_give_the_serial_points_even_when_one_is_killed(serial, tmp_path):
    """A 2-worker LocalCluster equals the serial sweep point for point (to the solver's tolerance: each worker
    starts warm from its own previous solution); a worker killed (SIGKILL) after the first chunk arrived has its
    tasks re-run by Dask and every point is written exactly once."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_once(text):
            if text.startswith("chunk") and not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        result = run_sweep(read_sweep(spec_dict(), MONOD), tmp_path / "dask", scheduler=client, progress=kill_once)
    print(f"\nkilled worker {killed}; results from {result.stats['workers']}")
    assert killed and result.stats["complete"]
    _same(result, serial)


def test_an_interrupted_sweep_resumes_to_the_same_content(serial, tmp_path):
    spec = read_sweep(spec_dict(), MONOD)
    out = tmp_path / "resumed"
    first = run_sweep(spec, out, scheduler="serial", stop_after_chunks=2)
    assert not first.stats["complete"] and first.stats["n_done"] == 8
    with pytest.raises(SweepError, match="holds a sweep already; --resume"):
        run_sweep(spec, out, scheduler="serial")
    with pytest.raises(SweepError, match="incomplete"):
        probability_map(first)
    resumed = run_sweep(spec, out, scheduler="serial", resume=True)
    assert resumed.stats["complete"]
    _same(resumed, serial)
    other = read_sweep(spec_dict(nfe=31), MONOD)
    with pytest.raises(SweepError, match="holds a different sweep"):
        run_sweep(other, out, scheduler="serial", resume=True)
    assert load_sweep(out).stats["n_done"] == 18  # nothing written twice


def test_the_cli_runs_a_sweep_and_writes_the_probability_map(tmp_path, capsys):
    from biotwin.tools.cli import main

    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(grid={"mu_max": [0.3, 0.5]}, samples={"n": 0})))
    assert main(["sweep", str(MONOD), "--spec", str(spec), "--out", str(tmp_path / "o"), "--workers", "0"]) == 0
    cells = pd.read_csv(tmp_path / "o" / "probability.csv")
    assert cells["n"].tolist() == [1, 1] and set(cells["probability"]) <= {0.0, 1.0}  # deterministic map
    assert (cells["se"] == 0).all()
    assert main(["sweep", str(MONOD), "--spec", str(spec), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grid": {"shelf": [1, 2]}}, "grid 'shelf' is neither a recipe knob"),
        ({"grid": {"mu_max": []}}, "non-empty list"),
        ({"grid": {"mu_max": {"from": 0.1, "to": 0.5}}}, r"\{from, to, n\}"),
        (
            {"samples": {"n": 4, "parameters": {"Kz": {"dist": "normal", "mean": 1, "sd": 0.1}}}},
            "unknown parameter 'Kz'",
        ),
        (
            {"samples": {"n": 4, "parameters": {"Ks": {"dist": "normal", "mean": 1}}}},
            r"normal distribution is \{dist, mean, sd",
        ),
        ({"samples": {"n": 4, "parameters": {"Ks": {"dist": "beta", "a": 1}}}}, "dist: one of"),
        (
            {"samples": {"n": 4, "parameters": {"Ks": {"dist": "normal", "mean": 1, "sd": 0.1, "unit": "K"}}}},
            "cannot be expressed",
        ),
        ({"samples": {"n": 4, "method": "grid", "parameters": {}}}, "not in domain"),
        ({"samples": {"n": 4}}, "no parameters"),
        ({"limits": [{"output": "X:final", "below": 3}]}, r"\{output: ..., max: value\}"),
        ({"classes": {"edge": {"scale": {"Kz": 1.3}}}}, "scales unknown parameter 'Kz'"),
        ({"outputs": [], "limits": []}, "name the outputs"),
        ({"model": "lyophilization"}, "is for model 'lyophilization'"),
    ],
)
def test_bad_sweeps_are_refused_by_name(change, message):
    with pytest.raises(SweepError, match=message):
        read_sweep(spec_dict(**change), MONOD)


def test_an_unknown_output_stops_the_sweep_before_any_task(tmp_path):
    spec = read_sweep(spec_dict(outputs=["titer"], limits=[]), MONOD)
    with pytest.raises(SweepError, match=r"output 'titer' is not .* <variable>:final"):
        run_sweep(spec, tmp_path / "o", scheduler="serial")
    assert not list((tmp_path / "o" / "chunks").glob("*.parquet"))


@pytest.mark.unit
def test_sobol_indices_of_the_ishigami_function_match_their_analytic_values():
    """The sampling (Saltelli through biotwin's uniform -> distribution transform) and SALib's estimator on the
    Ishigami function f = sin x1 + 7 sin^2 x2 + 0.1 x3^4 sin x1, x_i uniform on [-pi, pi], whose indices are
    known: S1 = (0.3139, 0.4424, 0), ST = (0.5576, 0.4424, 0.2437) (Saltelli et al. 2008, Global Sensitivity
    Analysis: The Primer, Wiley, section 4.7)."""
    from biotwin.sweep.analysis import sobol_from_samples
    from biotwin.sweep.spec import _uniforms, transform

    x = transform(_uniforms("saltelli", 2048, 3, seed=3), [("uniform", -np.pi, np.pi)] * 3)
    y = np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])
    s = sobol_from_samples(["x1", "x2", "x3"], y)
    print("\n" + s.to_string())
    np.testing.assert_allclose(s["S1"], [0.3139, 0.4424, 0.0], atol=0.03)
    np.testing.assert_allclose(s["ST"], [0.5576, 0.4424, 0.2437], atol=0.03)


def test_samples_from_a_calibration_have_its_estimates_and_covariance(tmp_path):
    """samples.calibration: the draws are normal with the saved estimates as mean and its covariance: over
    4000 draws the mean is within 4 standard errors of the estimate and the sample covariance within 10 % of
    the saved one (element by element, relative to the diagonal)."""
    import biotwin

    model = biotwin.load_model(MONOD)
    times = np.arange(1.0, 20.01, 1.0)
    truth = model.simulate("default", params={"mu_max": 0.45, "Ks": 0.3}, times=times, nfe=40).wide
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"time": times, "X": truth["X"].to_numpy() + rng.normal(0, 0.05, times.size)})
    frame["X_sigma"] = 0.05
    frame.to_csv(tmp_path / "run.csv", index=False)
    (tmp_path / "run.yaml").write_text((MONOD / "scenarios" / "default.yaml").read_text())
    fit = biotwin.calibrate(model, [str(tmp_path / "run.csv")], ["mu_max", "Ks"], nfe=40, bands=False)
    fit.save(tmp_path / "fit.json")
    # the calibration file's path is relative to the spec file
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(
            spec_dict(grid={}, samples={"n": 4000, "method": "random", "seed": 3, "calibration": "fit.json"}, limits=[])
        )
    )
    spec = read_sweep(tmp_path / "sweep.yaml", MONOD)
    x = spec.points[["mu_max", "Ks"]].to_numpy()
    mean = np.array([fit.parameters[p]["value"] for p in ("mu_max", "Ks")])
    cov = fit.covariance_frame().loc[["mu_max", "Ks"], ["mu_max", "Ks"]].to_numpy()
    se = np.sqrt(np.diag(cov) / len(x))
    print(f"\nmean {x.mean(axis=0)} vs {mean} (se {se}); cov {np.cov(x.T).ravel()} vs {cov.ravel()}")
    assert spec.sampled == ["mu_max", "Ks"] and len(x) == 4000
    assert np.all(np.abs(x.mean(axis=0) - mean) < 4 * se)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(np.cov(x.T) - cov) / scale < 0.1)


def test_a_sweep_without_knobs_runs_the_base_recipe_as_written(tmp_path):
    """A sweep over no recipe knob must run its base recipe with the recipe's own programs and parameters:
    LyoPRONTO's case 2 (shelf -45 -> -25 degC, 70 mTorr, its own vial and product) gives the drying time of
    a plain simulation, 45.649 h in LyoPRONTO (../shared/data/lyophilization). (The sweep once applied every
    explorer knob and parameter slider at its default: case 1's resistance, a 20 degC shelf, 150 mTorr.)"""
    import biotwin

    model = biotwin.load_model("lyophilization")
    classes = {"centre": {}, "edge": {"scale": {"KC": 1.3, "KP": 1.3}}}
    spec = read_sweep(
        {"recipe": "case2_10R_sucrose", "nfe": 60, "classes": classes, "outputs": ["primary_drying_time_h"]}, model
    )
    result = run_sweep(spec, tmp_path / "o", scheduler="serial")
    swept = result.frame["primary_drying_time_h@centre"].item()
    plain = model.module.summary(model.simulate("case2_10R_sucrose", nfe=60))["primary_drying_time_h"]
    print(f"\ncase 2: sweep {swept:.4f} h, plain simulation {plain:.4f} h, LyoPRONTO 45.649 h")
    assert swept == pytest.approx(plain, rel=1e-6)
    assert swept == pytest.approx(45.649, rel=5e-3)
    # the edge class scales case 2's own KC (3.58e-4), not parameters.yaml's (case 1: 2.75e-4)
    edge = {"KC": 3.58e-4 * 1.3, "KP": 8.93e-4 * 1.3}
    plain_edge = model.module.summary(model.simulate("case2_10R_sucrose", params=edge, nfe=60))
    assert result.frame["primary_drying_time_h@edge"].item() == pytest.approx(
        plain_edge["primary_drying_time_h"], rel=1e-6
    )


def test_with_zero_variance_the_probability_map_is_lyopronto_case_6(tmp_path, shared_data):
    """No uncertain parameter, one vial class: every cell's probability is 0 or 1, and the map is the
    deterministic design space of LyoPRONTO's case 6 (case-1 vial and product, shelf loaded at -5 degC and
    ramped at 1 degC/min to each set point, 20-150 mTorr). Checked against LyoPRONTO's output
    (``case6_design_space_shelf_isotherms.csv``): drying time within 1 %, maximum product temperature within
    0.3 K (the tolerances of notebook 04's grid), and pass/fail of the critical temperature (-5 degC) and of
    the equipment capability computed from LyoPRONTO's own peak flux."""
    import biotwin

    model = biotwin.load_model("lyophilization")
    ref = pd.read_csv(shared_data / "lyophilization" / "case6_design_space_shelf_isotherms.csv")
    base = {
        **model.load_scenario("case1_standard").raw,
        "shelf_temperature": {"unit": "degC", "points": [[0, -5], [40, -5]]},
        "chamber_pressure": {"unit": "mtorr", "points": [[0, 150], [40, 150]]},
    }
    spec = read_sweep(
        {
            "recipe": base,
            "nfe": 100,  # as notebook 04: on 60 elements the sharp end of drying at a 90 degC shelf misses mesh_tol
            "grid": {"shelf_C": sorted(set(ref["Tsh_setpt_degC"])), "pressure_mTorr": [20, 50, 100, 150]},
            "outputs": ["primary_drying_time_h", "max_T_bottom_C", "max_equipment_load"],
            "limits": [{"output": "max_T_bottom_C", "max": -5.0}, {"output": "max_equipment_load", "max": 1.0}],
        },
        model,
    )
    result = run_sweep(spec, tmp_path / "o", scheduler="serial")
    swept = result.frame.rename(columns=lambda c: c.removesuffix("@all"))
    cells = probability_map(result).merge(swept[["cell", "primary_drying_time_h", "max_T_bottom_C"]], on="cell")
    ref["pressure_mTorr"] = (ref["Pch_Torr"] * 1000).round().astype(int)
    both = cells.merge(ref, left_on=["shelf_C", "pressure_mTorr"], right_on=["Tsh_setpt_degC", "pressure_mTorr"])
    assert len(both) == 16 and set(both["probability"]) <= {0.0, 1.0} and (both["se"] == 0).all()
    p = model.parameter_values()
    capacity = p["equipment_a"] + p["equipment_b"] * both["Pch_Torr"]
    ref_load = p["n_vials"] * both["max_flux_kg_hr_m2"] * p["Ap"] * 1e-4 / capacity
    assert ((ref_load - 1).abs() > 0.05).all()  # no reference cell sits on the equipment line
    expected = ((both["max_Tbot_degC"] <= -5.0) & (ref_load <= 1.0)).astype(float)
    time_diff = (both["primary_drying_time_h"] / both["drying_time_hr"] - 1).abs()
    temp_diff = (both["max_T_bottom_C"] - both["max_Tbot_degC"]).abs()
    print(
        f"\ncase 6 through the sweep: {int(both['probability'].sum())} of 16 cells pass (LyoPRONTO: "
        f"{int(expected.sum())}); drying time within {100 * time_diff.max():.2f} %, max product temperature "
        f"within {temp_diff.max():.3f} K; {result.stats['median_point_s']:.2f} s per point"
    )
    assert time_diff.max() < 0.01 and temp_diff.max() < 0.3
    assert (both["probability"] == expected).all()


def test_the_fed_batch_design_space_spec_passes_its_knobs_and_samples_to_the_model(tmp_path):
    """The shipped fed-batch sweep (models/mab_fedbatch/sweeps/glucose_target_design_space.yaml) on one cell and
    two samples, serial: the grid's glucose target and the sampled constants reach the model -- a direct
    simulation with them gives the same final titer and peak lactate -- and the cell's probability is formed."""
    import biotwin
    from biotwin.core import yaml_io

    model = biotwin.load_model("mab_fedbatch")
    raw = yaml_io.load((model.folder / "sweeps" / "glucose_target_design_space.yaml").read_text())
    raw["grid"] = {"Glc_target": [17.0], "seeding": [0.3]}  # 0.3: the recipe's own seeding
    raw["samples"]["n"] = 2
    spec = read_sweep(raw, model)
    result = run_sweep(spec, tmp_path / "fb", scheduler="serial")
    frame = result.frame
    assert len(frame) == 2 and frame["error"].isna().all()
    row = frame.sort_values("point").iloc[1]
    params = {name: float(row[name]) for name in ("mu_max", "beta_P", "q_ov_max")}
    direct = model.simulate("glucose_target_14d", params={**params, "Glc_target": 17.0}, nfe=spec.nfe).wide
    print(f"\nsweep point {params}: titer {row['titer:final@all']:.6f} vs direct {direct['titer'].iloc[-1]:.6f} g/L")
    assert row["titer:final@all"] == pytest.approx(direct["titer"].iloc[-1], rel=1e-5)
    assert row["Lac:max@all"] == pytest.approx(direct["Lac"].max(), rel=1e-5)
    cells = probability_map(result)
    assert len(cells) == 1 and cells["n"].iloc[0] == 2 and 0.0 <= cells["probability"].iloc[0] <= 1.0


def test_the_hek293_design_space_spec_passes_its_knobs_and_samples_to_the_model(tmp_path):
    """The shipped HEK293 sweep (models/hek293_vlp/sweeps/transfection_design_space.yaml) on two cells and two
    samples, serial: at the recipe's own transfection (40 h, 1 pg/cell) the sampled constants reach the model
    -- a direct simulation gives the same harvest titer and viability --, a later transfection (60 h) gives
    less titer at the same harvest time, and each cell's probability comes with its Wilson interval."""
    import biotwin
    from biotwin.core import yaml_io

    model = biotwin.load_model("hek293_vlp")
    raw = yaml_io.load((model.folder / "sweeps" / "transfection_design_space.yaml").read_text())
    raw["grid"] = {"transfection_h": [40.0, 60.0], "dna": [1.0]}
    raw["samples"]["n"] = 2
    spec = read_sweep(raw, model)
    frame = run_sweep(spec, tmp_path / "hek", scheduler="serial").frame
    assert len(frame) == 4 and frame["error"].isna().all()
    row = frame[frame["transfection_h"] == 40.0].sort_values("point").iloc[1]
    params = {name: float(row[name]) for name in ("k_expr", "mu_max")}
    direct = model.simulate("batch_transfection", params=params, nfe=spec.nfe).wide
    print(f"\nsweep point {params}: VLP {row['VLP:final@all']:.6f} vs direct {direct['VLP'].iloc[-1]:.6f}")
    assert row["VLP:final@all"] == pytest.approx(direct["VLP"].iloc[-1], rel=1e-5)
    assert row["viability:final@all"] == pytest.approx(direct["viability"].iloc[-1], rel=1e-5)
    later = frame[(frame["transfection_h"] == 60.0) & (frame["sample"] == row["sample"])].iloc[0]
    assert later["VLP:final@all"] < row["VLP:final@all"]
    cells = probability_map(run_sweep(spec, tmp_path / "hek", scheduler="serial", resume=True))
    assert list(cells["n"]) == [2, 2]
    # the Wilson score interval of k passing in 2 (Wilson 1927; by hand from its formula, z = 1.96)
    wilson = {0: (0.0, 0.6576), 1: (0.0945, 0.9055), 2: (0.3424, 1.0)}
    for _, cell in cells.iterrows():
        low, high = wilson[round(cell["probability"] * 2)]
        assert (cell["ci95_low"], cell["ci95_high"]) == pytest.approx((low, high), abs=1e-4)
