"""Primary drying against LyoPRONTO (an independent implementation of the same quasi-steady model).

Reference runs: ../shared/data/lyophilization/case1_knownRp_standard.csv and
case2_knownRp_10R_sucrose_A2.csv (LyoPRONTO integrates with BDF at rtol 1e-3, so its own timing
error is about 0.01 h; during the shelf ramp the flux rises steeply and that timing error dominates,
so flux is compared relatively after the ramp and absolutely during it).
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import biotwin
from biotwin.core.errors import ScenarioError
from references import lyophilization_scipy
from support import ROOT, radau3_integral

CASES = [  # reference file, scenario, nfe, end of the shelf ramp [h], drying time, max Tbot
    ("case1_knownRp_standard", "case1_standard", 120, 55 / 60, 6.654, -14.775),
    ("case2_knownRp_10R_sucrose_A2", "case2_10R_sucrose", 240, 20 / 60, 45.649, -32.181),
]


@pytest.fixture(scope="module")
def model():
    return biotwin.load_model("lyophilization")


@pytest.mark.parametrize("ref_name, scenario, nfe, ramp_end, t_dry, max_tbot", CASES)
def test_primary_drying_matches_lyopronto(model, shared_data, ref_name, scenario, nfe, ramp_end, t_dry, max_tbot):
    ref = pd.read_csv(shared_data / "lyophilization" / f"{ref_name}.csv")
    result = model.simulate(scenario=scenario, nfe=nfe)
    summary = model.summary(result)
    print(f"{ref_name}: {summary}")
    assert summary["primary_drying_time_h"] == pytest.approx(t_dry, rel=0.005)
    assert summary["max_T_bottom_C"] == pytest.approx(max_tbot, abs=0.2)
    values = [result.interpolate(t) for t in ref["time_hr"]]
    percent = np.array([v["percent_dried"] for v in values])
    flux = np.array([v["flux"] for v in values])
    after = ref["time_hr"].to_numpy() > ramp_end
    print(
        f"  percent dried max |diff| {np.max(np.abs(percent - ref['percent_dried'])):.3f} points; flux max rel diff "
        f"after the ramp {np.max(np.abs(flux[after] / ref['flux_kg_per_hr_m2'].to_numpy()[after] - 1)):.2e}, max abs "
        f"diff during it {np.max(np.abs(flux[~after] - ref['flux_kg_per_hr_m2'].to_numpy()[~after])):.3f}"
    )
    assert np.max(np.abs(percent - ref["percent_dried"])) < 1.0
    assert np.max(np.abs(flux[after] / ref["flux_kg_per_hr_m2"].to_numpy()[after] - 1)) < 0.02
    assert np.max(np.abs(flux[~after] - ref["flux_kg_per_hr_m2"].to_numpy()[~after])) < 0.02


def test_units_consistent(model):
    from pyomo.util.check_units import assert_units_consistent

    assert_units_consistent(model.build({"t_end": 10.0}))


def test_the_shelf_knob_ramps_from_the_recipes_loading_temperature(model):
    # the explorer's and the sweeps' shelf knob: a shelf isotherm reached at 1 degC/min from the recipe's own
    # loading temperature (case 2 loads at -45 degC; the knob used to start every recipe at -35 degC)
    raw = model.load_scenario("case2_10R_sucrose").raw
    shelf = model.module._explorer_shelf(raw, -25.0)["shelf_temperature"]["points"]
    assert shelf[0] == [0.0, -45.0]
    assert shelf[1] == pytest.approx([20.0 / 60.0, -25.0])  # 20 K at 1 K/min
    assert shelf[-1][1] == -25.0


def test_the_equipment_load_against_lyopronto_capability_line(model, shared_data):
    # LyoPRONTO's design-space output, its "Equipment Capability" row: the flux the example dryer
    # (a -0.182 kg/h, b 11.7 kg/h/Torr, 398 vials of 3.14 cm^2) carries at 150 mTorr [kg/h/m^2]
    lines = (shared_data / "lyophilization" / "lyopronto_more" / "reference_design_space.csv").read_text().splitlines()
    capability = float(lines[lines.index("Equipment Capability") + 1].split(";")[3])
    result = model.simulate(scenario="case1_standard", nfe=60)  # 150 mTorr throughout, the same vial and dryer
    table = model.output_table(result)
    peak_flux = table[table["time_h"] <= model.module.primary_drying_end(result)]["flux_kg_per_h_m2"].max()
    load = model.summary(result)["max_equipment_load"]
    print(f"\ncase 1: peak flux {peak_flux:.4f} kg/h/m2, LyoPRONTO capability {capability:.4f}: load {load:.5f}")
    assert load == pytest.approx(peak_flux / capability, rel=1e-9)
    # twice the vials on a recipe's own equipment block: twice the load
    recipe = {**model.load_scenario("case1_standard").raw, "equipment": {"n_vials": 796}}
    assert model.summary(model.simulate(scenario=recipe, nfe=60))["max_equipment_load"] == pytest.approx(2 * load)


def test_recipe_shorter_than_drying_is_an_error(model):
    recipe = model.module.with_programs(
        model.load_scenario("case1_standard").raw, [[0, -35], [0.9166667, 20], [5, 20]], [[0, 150], [5, 150]]
    )
    result = model.simulate(scenario=recipe, nfe=60)
    with pytest.raises(ScenarioError, match="before primary drying does"):
        model.output_table(result)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"vial": {"Av": 3.8}}, r"vial.Av: 3.8 has no unit; write it with its unit, e.g. '3.8 cm\^2'"),
        ({"vial": {"Av": "3.8 mL"}}, r"vial.Av: 'mL' is not a unit of the same kind as 'cm\^2'"),
        ({"vial": {"Av_cm2": 3.8, "Av": "3.8 cm^2"}}, "vial.Av_cm2 and Av both given; keep Av"),
        ({"shelf": [[0, -35]]}, "unknown key 'shelf'; allowed: chamber_pressure, description"),
        ({"equipment": {"n_vials": 0}}, "equipment.n_vials: must be positive, got 0"),
        ({"equipment": {"vials": 400}}, "equipment: unknown key 'vials'; allowed: a, b, n_vials"),
        ({"chamber_pressure": {"unit": "mtorr", "points": [[0, -5], [30, -5]]}}, "must be positive"),
        ({"chamber_pressure": [[0, 150], [30, 150]]}, r"expected \{unit: mtorr, points: "),
        ({"shelf_temperature": {"unit": "degC", "points": [[1, -35], [0, 20]]}}, "before the previous 1; sort"),
        (
            {
                "shelf_temperature": {"unit": "degC", "points": [[0, -45], [30, -45]]},
                "chamber_pressure": {"unit": "mtorr", "points": [[0, 150], [30, 150]]},
            },
            "above the ice vapour pressure .* nothing would sublime",
        ),
    ],
)
def test_bad_scenarios(model, change, message):
    recipe = {**model.load_scenario("case1_standard").raw, **change}
    with pytest.raises(ScenarioError, match=message):
        model.simulate(scenario=recipe, nfe=20)


def test_cli_columns_and_summary(tmp_path):
    out, summary = tmp_path / "run.csv", tmp_path / "s.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "biotwin",
            "simulate",
            "lyophilization",
            "--scenario",
            "case1_standard",
            "--out",
            str(out),
            "--summary",
            str(summary),
            "--nfe",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == [
        "time_h",
        "T_sublimation_C",
        "T_bottom_C",
        "T_shelf_C",
        "P_chamber_mTorr",
        "flux_kg_per_h_m2",
        "percent_dried",
        "T_product_C",
        "residual_moisture_percent",
    ]
    data = json.loads(summary.read_text())
    assert data["primary_drying_time_h"] == pytest.approx(6.654, rel=0.005)
    assert set(data) >= {
        "primary_drying_time_h",
        "max_T_bottom_C",
        "final_flux_kg_per_h_m2",
        "final_residual_moisture_percent",
    }
    primary = table[table["time_h"] <= data["primary_drying_time_h"]]
    secondary = table[table["time_h"] > data["primary_drying_time_h"]]
    assert primary["percent_dried"].iloc[-1] == pytest.approx(100.0, abs=1e-6)
    assert secondary["T_sublimation_C"].isna().all()
    # the dried layer desorbs as it forms: bound water falls through primary drying, from Cs0 = 0.10 g/g
    during = primary["residual_moisture_percent"].to_numpy()
    assert during[0] == pytest.approx(100 * 0.1 / 1.1, rel=1e-6) and (np.diff(during) <= 1e-9).all()
    assert data["residual_moisture_at_primary_end_percent"] == pytest.approx(during[-1]) and during[-1] < during[0]
    assert table["time_h"].iloc[-1] == pytest.approx(12.0)  # secondary drying runs to the end of the recipe
    moisture = secondary["residual_moisture_percent"].to_numpy()
    assert (np.diff(moisture) < 0).all() and moisture[-1] == pytest.approx(data["final_residual_moisture_percent"])


# The design-space grid against LyoPRONTO's case 6 (1 % / 0.3 degC) and the dynamic Rp fit against
# LyoPRONTO's own fit (RMSE not larger) are asserted by the notebook tests of
# notebooks/lyophilization/04_design_space and 02_fit_resistance (tests/test_notebooks.py), which run
# the same computations; they are not repeated here to keep CI under 30 minutes.


def test_ice_mass_is_conserved(model):
    """Sublimed mass, integrated over primary drying, equals the ice in the frozen plug.

    Ice mass from the geometry alone: the plug (height Lpr0 on Ap) holds the solute at its density
    and ice at its density, so m_ice = rho_ice (Ap Lpr0 - c_solid Vfill / rho_solute).
    The rate is integrated with each element's Radau quadrature (3 points) and, in the element where
    drying ends, by integrating its collocation polynomial up to the end (conftest.radau3_integral).
    """
    result = model.simulate(scenario="case1_standard", nfe=120)
    m = result.pyomo_model
    p = {name: float(getattr(m, name).value) for name in ("Ap", "Vfill", "c_solid", "rho_solute", "rho_ice")}
    lpr0 = float(pyo_value(m.Lpr0))
    ice = p["rho_ice"] * (p["Ap"] * lpr0 - p["c_solid"] * p["Vfill"] / p["rho_solute"])
    t_end = model.summary(result)["primary_drying_time_h"]
    sublimed = radau3_integral(result, result.wide["sublimation_rate"], until=t_end)
    print(f"ice mass {ice:.6f} g, sublimed {sublimed:.6f} g, relative difference {sublimed / ice - 1:.2e}")
    assert sublimed == pytest.approx(ice, rel=1e-3), (sublimed, ice)


def pyo_value(x):
    import pyomo.environ as pyo

    return pyo.value(x)


def _scipy_programs(model, scenario):
    from biotwin.core.programs import Program

    sc = model.load_scenario(scenario)
    shelf = Program.from_points("T_shelf", sc.inputs["T_shelf"]["points"])
    pressure = Program.from_points("P_chamber", sc.inputs["P_chamber"]["points"], scale=1e-3)  # mTorr -> torr
    return (lambda t: float(shelf(t)[0])), (lambda t: float(pressure(t)[0])), sc.t_end


def test_secondary_drying_matches_independent_scipy_integration(model):
    """Primary then secondary drying (shelf raised to 40 degC) against scipy with an exact phase switch; the
    dried layer desorbing from the start of primary drying (the default form)."""
    shelf_C = [[0, -35], [0.9166667, 20], [7.5, 20], [7.9, 40], [16, 40]]
    recipe = model.module.with_programs(model.load_scenario("case1_standard").raw, shelf_C, [[0, 150], [16, 150]])
    shelf, pressure, t_end = _scipy_programs(model, recipe)
    ref = lyophilization_scipy.simulate(model.parameter_values(), shelf, pressure, t_end)
    result = model.simulate(scenario=recipe, nfe=160)
    table = model.output_table(result)
    summary = model.summary(result)
    after = table[table["time_h"] > ref["t_dry"]]
    cs_ref = np.interp(after["time_h"], ref["time"], ref["Cs"])
    moisture_diff = np.abs(after["residual_moisture_percent"] - 100 * cs_ref / (1 + cs_ref)).max()
    before = table[table["time_h"] < ref["t_dry"]]
    cs_ref = np.interp(before["time_h"], ref["primary_time"], ref["primary_Cs"])
    primary_diff = np.abs(before["residual_moisture_percent"] - 100 * cs_ref / (1 + cs_ref)).max()
    end_ref = 100 * ref["primary_Cs"][-1] / (1 + ref["primary_Cs"][-1])
    print(
        f"\nbound water during primary drying vs scipy: max |diff| {primary_diff:.5f} points; at the end of primary "
        f"drying {summary['residual_moisture_at_primary_end_percent']:.4f} vs {end_ref:.4f} % (from 9.0909 %)"
    )
    assert primary_diff < 0.002
    assert summary["residual_moisture_at_primary_end_percent"] == pytest.approx(end_ref, abs=0.01)
    late = after[after["time_h"] > ref["t_dry"] + 0.5]  # past the warm-up of the vial after the ice is gone
    t_diff = np.abs(late["T_product_C"] + 273.15 - np.interp(late["time_h"], ref["time"], ref["T_product"])).max()
    print(
        f"\nsecondary drying vs scipy: drying time {summary['primary_drying_time_h']:.6f} vs {ref['t_dry']:.6f} h; "
        f"residual moisture max |diff| {moisture_diff:.4f} points (final {summary['final_residual_moisture_percent']:.3f} %); "
        f"product temperature max |diff| {t_diff:.3f} K after t_dry + 0.5 h"
    )
    assert summary["primary_drying_time_h"] == pytest.approx(ref["t_dry"], abs=1e-4)
    assert summary["max_T_bottom_C"] == pytest.approx(ref["max_T_bottom"] - 273.15, abs=0.01)
    assert moisture_diff < 0.01
    assert t_diff < 0.25
    # desorption cools the cake: it never gets warmer than the shelf
    assert (after["T_product_C"] <= after["T_shelf_C"] + 1e-3).all()


def test_desorption_only_after_the_ice_is_gone_is_still_available(model):
    """``desorption: after_primary``, the earlier form: bound water stays at Cs0 until the ice is gone, and the
    cake then starts wetter than with the dried layer desorbing as it forms (same recipe)."""
    late_recipe = {**model.load_scenario("case1_standard").raw, "desorption": "after_primary"}
    late = model.simulate(scenario=late_recipe)
    early = model.simulate(scenario="case1_standard")
    shelf, pressure, t_end = _scipy_programs(model, late_recipe)
    ref = lyophilization_scipy.simulate(model.parameter_values(), shelf, pressure, t_end, desorption="after_primary")
    final_ref = 100 * ref["Cs"][-1] / (1 + ref["Cs"][-1])
    print(
        f"\nafter_primary: final moisture {model.summary(late)['final_residual_moisture_percent']:.4f} vs scipy {final_ref:.4f} %"
    )
    assert model.summary(late)["final_residual_moisture_percent"] == pytest.approx(final_ref, abs=0.01)
    t_dry = model.summary(late)["primary_drying_time_h"]
    before = late.wide[late.wide["time"] < t_dry - 0.05]
    assert np.allclose(before["Cs"], 0.1, atol=1e-9)
    assert model.output_table(late)["residual_moisture_percent"].iloc[: len(before)].isna().all()
    after = model.summary(early)
    assert after["residual_moisture_at_primary_end_percent"] < 100 * 0.1 / 1.1 - 0.1
    assert (
        model.summary(early)["final_residual_moisture_percent"] < model.summary(late)["final_residual_moisture_percent"]
    )
    with pytest.raises(ScenarioError, match="desorption: 'before' is not one of the options; use during_primary"):
        model.simulate(scenario={**model.load_scenario("case1_standard").raw, "desorption": "before"})


def test_secondary_drying_water_balance(model):
    """Water desorbed (integral of the desorption rate) equals the drop in bound water."""
    result = model.simulate(scenario="case1_standard", nfe=120)
    desorbed = radau3_integral(result, result.wide["desorption_rate"])
    drop = result.wide["Cs"].iloc[0] - result.wide["Cs"].iloc[-1]
    print(f"\nbound water: drop {drop:.6f} g/g, integrated desorption {desorbed:.6f} g/g")
    assert drop > 0.05
    assert desorbed == pytest.approx(drop, rel=1e-6)


def test_optimized_cycle_from_the_cli_holds_a_real_dryers_limits(model, tmp_path):
    """biotwin optimize on the default scenario (a dryer's shelf range -50..60 degC, ramps <= 1 degC/min from
    -35 degC, product 2 degC below critical): every limit holds at every collocation point and in the
    re-simulation on a 4x finer grid. (That the optimum equals the hand-written full-ramp recipe, and that
    LyoPRONTO's example equals the scipy greedy policy, is asserted once, in notebooks/lyophilization/03.)"""
    out, summary = tmp_path / "opt.csv", tmp_path / "opt.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "biotwin",
            "optimize",
            "lyophilization",
            "--scenario",
            "optimize_case1",
            "--out",
            str(out),
            "--summary",
            str(summary),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table, data = pd.read_csv(out), json.loads(summary.read_text())
    load = table["sublimation_kg_per_h"] / table["equipment_capacity_kg_per_h"]
    slope = np.diff(table["T_shelf_C"]) / np.diff(table["time_h"]) / 60.0  # [degC/min]
    print(
        f"\noptimized {data['primary_drying_time_h']:.4f} h (re-simulated {data['verification']['primary_drying_time_h']:.4f} h, "
        f"max T_bottom {data['verification']['max_T_bottom_C']:.3f} degC); shelf {table['T_shelf_C'].min():.2f} to "
        f"{table['T_shelf_C'].max():.3f} degC, steepest ramp {slope.max():.4f} degC/min, max load {load.max():.3f}"
    )
    assert data["T_bottom_max_C"] == -7.0 and (table["T_bottom_C"] <= -7.0 + 1e-5).all()
    assert table["T_shelf_C"].iloc[0] == pytest.approx(-35.0, abs=1e-6)
    assert (table["T_shelf_C"] <= 60.0 + 1e-4).all() and (table["T_shelf_C"] >= -50.0 - 1e-4).all()
    assert (np.abs(slope) <= 1.0 + 1e-4).all()
    assert (load <= 1.0 + 1e-6).all()
    assert table["percent_dried"].iloc[-1] == pytest.approx(100.0, abs=1e-6)
    assert data["verification"]["primary_drying_time_h"] == pytest.approx(data["primary_drying_time_h"], rel=1e-3)
    assert data["verification"]["max_T_bottom_C"] <= -7.0 + 0.05


def test_equipment_capability_limits_the_optimized_cycle(model):
    """With 1500 vials the dryer's sublimation capability, not the product temperature, limits drying."""
    recipe = dict(model.load_scenario("optimize_case1_lyopronto").raw)
    recipe["optimize"] = {
        "shelf_temperature": {"min": "-45 degC", "max": "120 degC", "ramp": "1 degC/min"},
        "constraints": {
            "T_bottom_max": "-5 degC",
            "equipment": {"a": "-0.182 kg/h", "b": "11.7 kg/h/torr", "n_vials": 1500},
        },
    }
    result = model.module.optimize(model, recipe)
    table = result.table
    load = table["sublimation_kg_per_h"] / table["equipment_capacity_kg_per_h"]
    ramps = np.abs(np.diff(result.recipe["shelf_temperature"]["points"], axis=0))
    print(
        f"\n1500 vials: {result.drying_time_h:.4f} h, max load {load.max():.5f}, max T_bottom "
        f"{table['T_bottom_C'].max():.4f} degC, steepest ramp {(ramps[:, 1] / ramps[:, 0]).max() / 60:.4f} degC/min"
    )
    assert load.max() == pytest.approx(1.0, abs=1e-4)  # active
    assert (load <= 1.0 + 1e-6).all() and (table["T_bottom_C"] <= -5.0 + 1e-5).all()
    assert (ramps[:, 1] <= ramps[:, 0] * 60.0 * 1.0 + 1e-3).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optimize": {"shelf_temperature": {"min": "10 degC", "max": "-10 degC"}}}, "must be below max"),
        (
            {"optimize": {"shelf_temperature": {"min": "-40 degC", "max": "40 degC"}, "speed": 1}},
            "optimize: unknown key 'speed'; allowed: chamber_pressure, constraints, shelf_temperature",
        ),
        ({"optimize": {"shelf_temperature": {"min": "-40 degC"}}}, r"shelf_temperature: missing \['max'\]"),
        ({"optimize": {"shelf_temperature": {"min": "-40 degC", "max": "40 mtorr"}}}, "not a unit of the same kind"),
        (
            {
                "optimize": {
                    "shelf_temperature": {"min": "-40 degC", "max": "40 degC"},
                    "constraints": {"equipment": {"a": "0.1 kg/h"}},
                }
            },
            r"equipment: missing \['b', 'n_vials'\]",
        ),
    ],
)
def test_bad_optimize_blocks(model, change, message):
    recipe = {**model.load_scenario("case1_standard").raw, **change}
    with pytest.raises(ScenarioError, match=message):
        model.load_scenario(recipe)


def test_a_margin_keeps_the_optimum_below_the_critical_temperature(model):
    """optimize.constraints.margin (issue #16): the optimum rode exactly on T_critical with no option.
    On LyoPRONTO's example bounds, where the product limit is what binds."""
    recipe = dict(model.load_scenario("optimize_case1_lyopronto").raw)
    recipe["optimize"] = {**recipe["optimize"], "constraints": {**recipe["optimize"]["constraints"], "margin": "2 K"}}
    opt = model.module.optimize(model, recipe, nfe=40)
    summary = opt.summary()
    print(
        f"\nmargin 2 K: limit {summary['T_bottom_max_C']} degC, max T_bottom {summary['max_T_bottom_C']:.3f} degC, "
        f"{summary['primary_drying_time_h']:.3f} h"
    )
    assert summary["T_bottom_max_C"] == -7.0 and summary["margin_C"] == 2.0
    assert summary["max_T_bottom_C"] <= -7.0 + 1e-3
    assert summary["verification"]["max_T_bottom_C"] <= -7.0 + 0.05
    recipe["optimize"]["constraints"]["margin"] = "-1 K"
    with pytest.raises(biotwin.ScenarioError, match="constraints.margin: must not be negative"):
        model.module.optimize(model, recipe, nfe=40)


def test_pressure_optimization_matches_lyopronto(model, shared_data):
    """LyoPRONTO's chamber-pressure optimization (reference_opt_Pch.csv: shelf -35 -> 20 degC at 1 degC/min,
    vial bottom held at -5 degC by the pressure, 50 mTorr minimum): the same drying time, end pressure and
    flux. biotwin optimizes shelf and pressure together; within the shelf's bounds and ramp its optimum is
    LyoPRONTO's shelf recipe, and a minimum-time optimum may not be slower than LyoPRONTO's step-by-step
    policy. The chamber stays below the ice's vapour pressure (without that constraint the optimizer held
    1.3-1.5 Torr over the cold product for 0.2 h, stopping sublimation, and dried in 4.263 h)."""
    ref = pd.read_csv(shared_data / "lyophilization" / "lyopronto_more" / "reference_opt_Pch.csv")
    tools = model.submodule("cycle_optimization")
    best = tools.optimize_cycle(model, "optimize_pressure_case1", nfe=40)
    s = best.summary()
    table = best.table
    t_ref = float(ref["Time [hr]"].iloc[-1])
    ours = {t: float(np.interp(t, table["time_h"], table["P_chamber_mTorr"])) for t in (1.2, 2.0, 3.2, 4.0)}
    theirs = {t: float(np.interp(t, ref["Time [hr]"], ref["Chamber Pressure [mTorr]"])) for t in ours}
    print(
        f"\npressure optimization: drying {s['primary_drying_time_h']:.4f} h (LyoPRONTO {t_ref:.4f} h; re-simulated "
        f"{s['verification']['primary_drying_time_h']:.4f} h), end pressure {table['P_chamber_mTorr'].iloc[-1]:.2f} "
        f"mTorr (LyoPRONTO {ref['Chamber Pressure [mTorr]'].iloc[-1]:.2f}), final flux {s['final_flux_kg_per_h_m2']:.5f} "
        f"kg/h/m2 (LyoPRONTO {ref['Sublimation Flux [kg/hr/m^2]'].iloc[-1]:.5f}); pressure at "
        + ", ".join(f"{t} h {ours[t]:.0f} ({theirs[t]:.0f})" for t in ours)
    )
    assert s["primary_drying_time_h"] == pytest.approx(t_ref, rel=2e-3)
    assert s["primary_drying_time_h"] <= t_ref * (1 + 2e-4)  # not slower than a feasible policy
    assert s["verification"]["primary_drying_time_h"] == pytest.approx(s["primary_drying_time_h"], rel=1e-3)
    assert s["verification"]["max_T_bottom_C"] <= -5.0 + 0.01
    assert table["P_chamber_mTorr"].iloc[-1] == pytest.approx(ref["Chamber Pressure [mTorr]"].iloc[-1], rel=1e-3)
    assert s["final_flux_kg_per_h_m2"] == pytest.approx(ref["Sublimation Flux [kg/hr/m^2]"].iloc[-1], rel=1e-3)
    for t, value in ours.items():
        assert value == pytest.approx(theirs[t], rel=0.02), t
    assert float(np.interp(1.0, table["time_h"], table["T_shelf_C"])) == pytest.approx(20.0, abs=0.5)


def test_kv_from_a_measured_drying_time(model, shared_data):
    """LyoPRONTO's "unknown Kv" case (lyopronto_more/example_unknownkv.yaml: case-1 recipe at 150 mTorr,
    primary drying measured to end at 12.62 h, Kv searched in 1e-4 - 2e-3 cal/s/K/cm2, KP = KD = 0).
    LyoPRONTO ships no answer, so the fitted Kv is checked against a second implementation: the scipy
    integration of the model's equations (tests/references/lyophilization_scipy.py) with its own root search, and re-simulated."""
    import yaml
    from scipy.optimize import brentq

    case = yaml.safe_load((shared_data / "lyophilization" / "lyopronto_more" / "example_unknownkv.yaml").read_text())
    t_meas, kv_range = case["t_dry_exp"], case["Kv_range"]
    fit = model.submodule("kv_fit").fit_kv_from_drying_time(model, "case1_standard", t_meas, kv_range=kv_range)

    base = model.load_scenario("case1_standard").raw
    shelf_C, pressure_mTorr = model.module.recipe_programs(base)
    recipe = model.module.with_programs(base, [*shelf_C, [20.0, 20.0]], [*pressure_mTorr, [20.0, 150.0]])
    shelf, pressure, t_end = _scipy_programs(model, recipe)
    reference = lyophilization_scipy

    def t_dry(kv):
        p = {**model.parameter_values(model.load_scenario(recipe).parameters), "KC": kv, "KP": 0.0, "KD": 0.0}
        return reference.simulate(p, shelf, pressure, t_end, n_out=20)["t_dry"]

    # its own root, bracketed around biotwin's answer (the bracket only has to change sign; the secondary
    # drying the scipy code integrates after the ice is gone makes the range's far ends slow)
    bracket = (0.8 * fit.Kv_cal_per_s_K_cm2, 1.25 * fit.Kv_cal_per_s_K_cm2)
    kv_scipy = brentq(lambda kv: t_dry(kv) - t_meas, *bracket, xtol=1e-12, rtol=1e-9)
    lo, hi = fit.kv_interval(0.1)
    print(
        f"\nKv from a {t_meas} h drying time: {fit.Kv_cal_per_s_K_cm2:.6e} cal/s/K/cm2 (scipy second implementation "
        f"{kv_scipy:.6e}, relative {fit.Kv_cal_per_s_K_cm2 / kv_scipy - 1:+.1e}); re-simulated end {fit.t_dry_model_h:.5f} h; "
        f"dt/dKv {fit.sensitivity_h_per_unit:.4g} h per cal/s/K/cm2: +/-0.1 h (1 sd) gives 95 % [{lo:.4e}, {hi:.4e}]; "
        f"{len(fit.history)} simulations"
    )
    assert fit.Kv_cal_per_s_K_cm2 == pytest.approx(kv_scipy, rel=1e-4)
    assert fit.t_dry_model_h == pytest.approx(t_meas, abs=1e-4)
    assert t_dry(fit.Kv_cal_per_s_K_cm2) == pytest.approx(t_meas, abs=5e-3)
    assert fit.sensitivity_h_per_unit < 0 and lo < fit.Kv_cal_per_s_K_cm2 < hi


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"t_dry_h": 0.5}, "outside what kv_range gives"),
        ({"t_dry_h": float("nan")}, "positive number of hours"),
        ({"t_dry_h": 12.6, "kv_range": (2e-3, 1e-4)}, "0 < low < high"),
    ],
)
def test_kv_fit_refuses_bad_input(model, kwargs, message):
    with pytest.raises(ScenarioError, match=message):
        model.submodule("kv_fit").fit_kv_from_drying_time(model, "case1_standard", **kwargs)


def test_freezing_matches_lyopronto(model, shared_data):
    """LyoPRONTO's freezing calculator (lyopronto_more/reference_freezing.csv: 2 mL water, 15.8 degC, shelf
    10 -> -40 degC at 1 degC/min, nucleation -5.84, freezing point -1.54 degC, h 38 W/m2/K).

    LyoPRONTO steps 0.01 h and nucleates at the first step below -5.84 degC (0.42 h, after overshooting to
    -6.19), biotwin at the crossing itself (event location). So: the liquid phase within 1e-6 K; the
    crystallization end equal to the heat balance solved independently (quadrature + root); LyoPRONTO's
    end 0.002 h later, as its later nucleation gives; the ice phase is LyoPRONTO's curve when started at
    LyoPRONTO's end of crystallization (same mass, heat capacity and heat transfer)."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    ref = pd.read_csv(shared_data / "lyophilization" / "lyopronto_more" / "reference_freezing.csv")
    t_ref, T_ref = ref["Time [hr]"].to_numpy(), ref["Product Temperature [C]"].to_numpy()
    frz = model.submodule("freezing")
    shelf = [[0.0, 10.0], [50 / 60, -40.0], [3.0, -40.0]]
    result = frz.simulate_freezing(shelf, c_solid_g_per_mL=0.0)
    s, table = result.summary(), result.table
    liquid = t_ref < result.nucleation_h
    liquid_err = np.abs(np.interp(t_ref[liquid], table["time_h"], table["T_product_C"]) - T_ref[liquid]).max()
    lyopronto_nucleation = t_ref[np.argmax(T_ref <= -5.84)]

    hA = 38.0 * 3.8e-4 * 3600  # [J/h/K]
    heat = 2.0 * (79.7 * 4.184 - 4.0 * (-1.54 + 5.84))  # [J]

    def shelf_C(t):
        return np.interp(t, [0, 50 / 60, 3], [10, -40, -40])

    def end_after(t0):
        return brentq(lambda te: hA * quad(lambda t: -1.54 - shelf_C(t), t0, te, points=[50 / 60])[0] - heat, t0, 3)

    tau = 2.0 * 2.03 / hA  # ice: m cp / hA [h]
    ice = t_ref > 0.875
    lyopronto_end = float(np.median(t_ref[ice] + tau * np.log((T_ref[ice] + 40.0) / 38.46)))  # their ice curve's start
    shifted = -40.0 + 38.46 * np.exp(-(t_ref[ice] - lyopronto_end) / tau)
    ours_ice = table[table["phase"] == "ice"]
    ice_model_err = np.abs(
        ours_ice["T_product_C"] - (-40.0 + 38.46 * np.exp(-(ours_ice["time_h"] - result.crystallization_end_h) / tau))
    ).max()
    print(
        f"\nfreezing: liquid phase within {liquid_err:.1e} K of LyoPRONTO; nucleation {result.nucleation_h:.5f} h "
        f"(LyoPRONTO's step {lyopronto_nucleation:.2f} h); crystallization end {result.crystallization_end_h:.5f} h "
        f"(heat balance {end_after(result.nucleation_h):.5f} h; LyoPRONTO {lyopronto_end:.5f} h, from its nucleation "
        f"{end_after(lyopronto_nucleation):.5f} h); ice phase vs LyoPRONTO from its end "
        f"{np.abs(shifted - T_ref[ice]).max():.1e} K, vs the exponential {ice_model_err:.1e} K"
    )
    assert liquid_err < 1e-6
    assert lyopronto_nucleation - 0.01 < result.nucleation_h <= lyopronto_nucleation
    assert result.crystallization_end_h == pytest.approx(end_after(result.nucleation_h), abs=1e-6)
    assert lyopronto_end == pytest.approx(end_after(lyopronto_nucleation), abs=5e-4)
    assert np.abs(shifted - T_ref[ice]).max() < 0.02
    assert ice_model_err < 1e-6
    assert s["final_T_product_C"] == pytest.approx(-40.0, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shelf_C": [[0, 10], [1, 0]]}, "never goes below the nucleation"),
        ({"shelf_C": [[1, 10], [2, -40]]}, "start at 0 h"),
        ({"shelf_C": [[0, 10], [0.2, -40]]}, "does not finish|does not reach"),
        ({"shelf_C": [[0, 10], [1, -40]], "T_nucleation_C": 0.0}, "T_nucleation_C < T_freezing_C"),
        ({"shelf_C": [[0, 10], [1, float("nan")]]}, "finite"),
    ],
)
def test_freezing_refuses_bad_input(model, kwargs, message):
    with pytest.raises(ScenarioError, match=message):
        model.submodule("freezing").simulate_freezing(**kwargs)


def test_the_product_isotherm_is_the_greedy_policy_without_a_shelf_bound(model):
    """The flux-pressure design space's product isotherm (vial bottom held at -5 degC, computed by quadrature
    over the cake length) is what the scipy greedy policy (shelf as warm as the limit allows, integrated in
    time with root finding: another method) gives when the shelf is unbounded: 1.98394 h both, to 1e-8."""
    fds = model.submodule("flux_design_space")
    p = model.parameter_values(model.load_scenario("case1_standard").parameters)
    iso = fds.product_isotherm(p, -5.0, 150.0)
    greedy = lyophilization_scipy.greedy_fastest_drying(p, 268.15, 0.15, (228.15, 5000.0))
    print(f"\nproduct isotherm {iso['drying_time_h']:.8f} h, greedy policy {greedy['t_dry']:.8f} h")
    assert iso["drying_time_h"] == pytest.approx(greedy["t_dry"], rel=1e-6)
    assert iso["max_flux"] > iso["average_flux"] > iso["final_flux"] > 0
    # a chamber above the ice's vapour pressure at that temperature: no sublimation, said as such
    assert fds.product_isotherm(p, -40.0, 200.0)["drying_time_h"] == float("inf")


def _karl_fischer_generator():
    from biotwin.core.model import helper_module  # the one loader of a model folder's modules

    return helper_module(ROOT / "models" / "lyophilization" / "data" / "generate.py", "generate")


def test_desorption_constants_fitted_to_karl_fischer_points_hold_the_truth(model):
    """k_des and Ea_des from residual-moisture points (the calibration format: time, residual_moisture,
    residual_moisture_sigma; the cycle in the .yaml beside the CSV): the shipped synthetic file, fitted from
    its path, gives 95 % intervals holding the true constants; the same points without noise give the truth
    back within 0.25 sd. (That remainder is the calibration grid's: on noise-free points Ea_des came out
    -1.1, +0.33, +0.71 and -0.34 kJ/mol off at 60, 120, 160 and 200 elements.) Coverage over noise
    replicates: ``python models/lyophilization/data/generate.py --coverage 100``."""
    gen = _karl_fischer_generator()
    truth = gen.TRUE_PARAMETERS
    shipped = biotwin.calibrate(
        model, ROOT / "models/lyophilization/data/karl_fischer_synthetic.csv", list(truth), nfe=gen.FIT_NFE
    ).table()
    print(f"\nshipped Karl Fischer file:\n{shipped[['value', 'std_error', 'ci95_low', 'ci95_high']].to_string()}")
    cycle = gen.recipe(model)
    exact = gen.karl_fischer(gen.exact_moisture(model, cycle), sigma_only=True)
    clean = biotwin.calibrate(model, [(exact, cycle)], list(truth), nfe=gen.FIT_NFE, bands=False).table()
    print(f"noise-free points: {clean['value'].to_dict()}")
    for name, value in truth.items():
        assert shipped.loc[name, "ci95_low"] < value < shipped.loc[name, "ci95_high"], name
        assert abs(clean.loc[name, "value"] - value) < 0.25 * shipped.loc[name, "std_error"], name


OLD_CASE1 = """
vial: {Av_cm2: 3.80, Ap_cm2: 3.14, fill_mL: 2.0}
product: {c_solid_g_per_mL: 0.05, R0_cm2_h_Torr_per_g: 1.4, A1_cm_h_Torr_per_g: 16.0, A2_per_cm: 0.0, T_critical_C: -5}
heat_transfer: {KC_cal_per_s_K_cm2: 2.75e-4, KP_cal_per_s_K_cm2_Torr: 8.93e-4, KD_per_Torr: 0.46}
shelf_temperature_C: [[0, -35], [0.9166667, 20], [12, 20]]
chamber_pressure_mTorr: [[0, 150], [12, 150]]
optimize:
  shelf_temperature_C: {min: -50, max: 60, ramp_C_per_min: 1.0, initial_C: -35}
  constraints: {T_bottom_max_C: -5, margin_C: 2.0, equipment: {a_kg_per_h: -0.182, b_kg_per_h_per_Torr: 11.7, n_vials: 398}}
"""


def test_a_recipe_in_the_old_spelling_still_loads_with_a_note(model, tmp_path):
    """Issue #13: recipes written with the unit in the key keep loading (the file untouched), with one note
    giving the new spelling, and read exactly as the shipped recipe in the new spelling."""
    from biotwin.core.schema import RecipeSpellingWarning

    path = tmp_path / "old_case1.yaml"
    path.write_text(OLD_CASE1)
    with pytest.warns(RecipeSpellingWarning) as notes:
        old = model.load_scenario(path)
    assert path.read_text() == OLD_CASE1
    note = str(notes[0].message)
    assert len(notes) == 1 and str(path) in note
    for spelled in ("R0: 1.4 cm^2*h*torr/g", "Vfill: 2.0 mL", "shelf_temperature: {unit: degC", "margin: 2.0 K"):
        assert spelled in note
    new = model.load_scenario("optimize_case1")
    assert (old.parameters, old.inputs, old.t_end, old.settings) == (
        new.parameters,
        new.inputs,
        new.t_end,
        new.settings,
    )
    opt = model.submodule("cycle_optimization")
    assert opt.read_optimize_block(old.raw, "old") == opt.read_optimize_block(new.raw, "new")
