"""Notebooks executed by papermill; their key numbers compared with stored references.

References live in tests/references/<notebook>.json. Each entry states whether it is
independent (other code, the recipe by hand) or a regression value (biotwin's own earlier
output, which guards against change but proves nothing about correctness).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biotwin.tools.notebooks import run_notebook
from support import CHROMIUM, ROOT, browser_missing

REFERENCES = ROOT / "tests" / "references"


def lookup(data, dotted):
    if dotted in data:
        return data[dotted]
    head, _, rest = dotted.partition(".")
    return data[head][rest] if rest in data[head] else lookup(data[head], rest)


def check_against_references(data, reference_file):
    refs = json.loads(reference_file.read_text())
    failures = []
    for key, ref in refs.items():
        if key.startswith("_"):
            continue
        got = lookup(data, key)
        if isinstance(ref["value"], bool):
            ok = got is ref["value"]
        elif "rel_tol" in ref:
            ok = got == pytest.approx(ref["value"], rel=ref["rel_tol"])
        else:
            ok = got == pytest.approx(ref["value"], abs=ref["abs_tol"])
        if not ok:
            failures.append(f"{key}: got {got!r}, reference {ref['value']!r} ({ref['kind']}: {ref['source']})")
    assert not failures, "\n".join(failures)


def test_quickstart_reference_matches_shared_data(shared_data):
    """The stored independent numbers are those of the reference file (no drift)."""
    refs = json.loads((REFERENCES / "00_quickstart.json").read_text())
    csv = pd.read_csv(shared_data / "mab_fedbatch" / "xing2010_kkiviat_batch_singlecompartment.csv").set_index("t_h")
    for col in ["Xv_cells_per_L", "Glc_mM", "Gln_mM", "Lac_mM", "Amm_mM"]:
        assert refs[f"xing2010_batch_240h.{col}"]["value"] == csv.loc[240, col]
    # the copy the quickstart shows beside its run (inside the repository) is those rows, unchanged
    shipped = pd.read_csv(ROOT / "models/mab_fedbatch/data/reference/xing2010_kkiviat_batch.csv", comment="#")
    pd.testing.assert_frame_equal(
        shipped.set_index("t_h"), csv.loc[[24, 120, 240], shipped.columns[1:]], check_names=False, check_dtype=False
    )


def test_quickstart_notebook(tmp_path):
    data = run_notebook(ROOT / "notebooks" / "00_quickstart.ipynb", out_dir=tmp_path, progress_bar=False)
    check_against_references(data, REFERENCES / "00_quickstart.json")
    # issue #19 item 9: the independent check shown beside biotwin's numbers (Xv, Glc, Lac, Amm at 24/120/240 h)
    assert data["xing2010_max_rel_diff_vs_kkiviat"] < 1e-6


@pytest.mark.parametrize("name", ["01_simulate_explore", "02_calibrate", "03_optimize_feed", "04_live_twin"])
def test_mab_fedbatch_notebooks(tmp_path, name):
    data = run_notebook(ROOT / "notebooks" / "mab_fedbatch" / f"{name}.ipynb", out_dir=tmp_path, progress_bar=False)
    if name == "04_live_twin":
        # against the synthetic truth, not against earlier output: the missed glucose top-up at 204 h is
        # alarmed within 24 h (and not before it), and the day-7 forecast of the final titer holds the truth
        print(
            f"\nlive twin: first alarm {data['first_alarm_h']} h; day-7 titer forecast {data['day7_titer_forecast']}, "
            f"truth {data['true_final_titer']:.4f} g/L"
        )
        assert data["first_alarm_h"] is not None and 204.0 <= data["first_alarm_h"] <= 228.0
        end = data["day7_titer_forecast"]
        assert end["lo95"] <= data["true_final_titer"] <= end["hi95"]
        assert abs(end["value"] / data["true_final_titer"] - 1) < 0.10
        return
    check_against_references(data, REFERENCES / f"mab_fedbatch_{name}.json")
    if name == "03_optimize_feed":
        # independent of biotwin's earlier output: the optimized recipe, re-simulated, respects the limits
        # (asserted here only: the optimization is not run again in tests/models)
        for var, limit in data["limits"].items():
            assert data["optimal_max"][var] <= limit + 1e-6, var  # the NLP's own solution
            assert data["max"][var] <= limit * (1 + 2e-3), var  # re-simulated as an ordinary scenario
        assert 0.0 <= data["volume_ratio"][0] and data["volume_ratio"][1] <= 3.0 + 1e-9  # 0-3x nominal
        assert data["resimulated_titer"] == pytest.approx(data["optimal_titer"], rel=2e-3)
        assert data["optimal_titer"] > data["nominal_titer"]


@pytest.mark.parametrize("name", ["01_simulate_compare", "02_fit_resistance", "03_optimize_cycle", "04_design_space"])
def test_lyophilization_notebooks(tmp_path, shared_data, name):
    data = run_notebook(
        ROOT / "notebooks" / "lyophilization" / f"{name}.ipynb",
        out_dir=tmp_path,
        progress_bar=False,
        parameters={"reference_dir": str(shared_data / "lyophilization")},
    )
    check_against_references(data, REFERENCES / f"lyophilization_{name}.json")
    if name == "01_simulate_compare":
        assert data["max_percent_dried_diff"] < 1.0  # issue #4: within 1 point at every reference row
    if name == "03_optimize_cycle":
        # independent of biotwin's earlier output: on the realistic dryer the limits hold (shelf range,
        # product 2 degC below critical, equipment), the hand-written full-ramp recipe respects the product
        # limit too (so it is the optimum the reference says), and the cycle beats the recipe in use
        assert data["max_T_bottom_C"] <= data["T_bottom_max_C"] + 1e-5
        assert data["max_shelf_C"] <= data["shelf_max_C"] + 1e-4
        assert data["fastest_heating_max_T_bottom_C"] <= data["T_bottom_max_C"]
        assert data["max_equipment_load"] <= 1.0 + 1e-6
        assert data["optimized_h"] < data["standard_recipe_h"]
        assert data["resimulated_h"] == pytest.approx(data["optimized_h"], rel=1e-3)
        # LyoPRONTO's example: at its limit, and faster than any constant shelf
        assert data["lyopronto_max_T_bottom_C"] <= -5.0 + 1e-5
        assert data["lyopronto_optimized_h"] < data["best_constant_h"]
    if name == "04_design_space":  # issue #4: LyoPRONTO's case-6 grid within 1 % and 0.3 degC
        assert data["max_time_rel_diff"] < 0.01 and data["max_Tmax_diff_C"] < 0.3
        # issue #19: the flux-pressure form against LyoPRONTO's design-space output (its times on a 0.01 h step)
        assert abs(data["lyopronto_product_time_diff_h"]) <= 0.01
        assert abs(data["lyopronto_product_final_flux_rel"]) < 1e-9
        assert abs(data["lyopronto_product_average_flux_rel"]) < 5e-3
        assert abs(data["lyopronto_equipment_flux_rel"]) < 1e-9 and abs(data["lyopronto_equipment_time_rel"]) < 1e-9
        assert data["flux_curves"] == 3  # shelf isotherms, product isotherms, the equipment line


def test_lyophilization_probabilistic_design_space_notebook(tmp_path):
    """Notebook 05 on a 2 x 2 corner of its grid with 6 samples per cell, on a 2-worker Dask cluster (and its Sobol
    section with 8 base samples, serial): every
    point solves; three sampled edge-vial points equal the scipy second implementation (drying time 1e-3,
    product temperature 0.05 K); and the probabilistic map is stricter than the deterministic one where the
    nominal centre vial passes (the edge vials and the uncertain resistance fail some samples)."""
    data = run_notebook(
        ROOT / "notebooks" / "lyophilization" / "05_probabilistic_design_space.ipynb",
        out_dir=tmp_path,
        progress_bar=False,
        parameters={
            "n_samples": 6,
            "grid": {"shelf_C": [-27.5, -25.0], "pressure_mTorr": [40.0, 70.0]},
            "n_sobol": 8,
        },
    )
    print(data)
    assert data["n_points"] == 24 and data["n_failed_solves"] == 0
    # the Sobol section's plumbing (8 base samples x (3 parameters + 2) points; the estimator itself is checked on
    # the Ishigami function in tests/sweep): every point solved, an index per sampled parameter and output
    assert data["sobol_points"] == 40 and data["sobol_failed"] == 0
    for output in ("max_T_bottom_C", "primary_drying_time_h"):
        table = data["sobol"][output]
        assert set(table) == {"R0", "A1", "KC"} and all(np.isfinite(v["ST"]) for v in table.values())
    assert data["scipy_max_rel_diff_time"] < 1e-3 and data["scipy_max_diff_Tmax_K"] < 0.05
    assert data["cells_deterministic_pass"] >= 1 and data["min_probability_where_deterministic_passes"] < 1.0
    assert data["cells_p_ge_0.9"] <= data["cells_deterministic_pass"]
    assert data["mean_edge_minus_centre_K"] > 0  # edge vials run warmer
    assert 0 < data["max_equipment_load"] < 1  # the dryer's capability is a limit; 398 vials stay within it


@pytest.mark.parametrize("name", ["01_simulate_explore", "02_calibrate", "03_optimize"])
def test_hek293_vlp_notebooks(tmp_path, name):
    data = run_notebook(ROOT / "notebooks" / "hek293_vlp" / f"{name}.ipynb", out_dir=tmp_path, progress_bar=False)
    check_against_references(data, REFERENCES / f"hek293_vlp_{name}.json")
    if name == "01_simulate_explore":  # published orders of magnitude (issue #6)
        assert data["timing"]["nuclear_plasmid_4hpt"] >= 1.0
        assert 0.05 < data["timing"]["VLP_48hpt_fraction_of_final"] < 0.5
        assert 1e9 <= data["batch_transfection"]["final_VLP_per_mL"] <= 1e10
    if name == "02_calibrate":  # the synthetic truth is known: most 95 % intervals must cover it
        assert data["n_true_values_covered"] >= data["n_estimated"] - 1
        assert data["cosine_k_asm_k_bud"]["titer_only"] > 0.99 > data["cosine_k_asm_k_bud"]["with_gag"]
    if name == "03_optimize":
        assert data["resimulated_titer_per_mL"] == pytest.approx(data["optimum"]["titer_per_mL"], rel=2e-3)
        assert data["resimulated_viability"] >= data["min_viability"] - 0.1
        assert data["optimum"]["titer_per_mL"] > data["nominal_titer_per_mL"]
        # the cell-density effect puts the optimum inside the bounds (issue #15: it sat at the upper bound,
        # 72 h); Cervera et al. 2013 found the best production transfecting at 2-3e6 cells/mL
        lo, hi = data["bounds"]["transfection_time_h"]
        print(
            f"\nHEK293 optimum: transfect at {data['optimum']['transfection_time_h']} h "
            f"({data['optimum']['density_at_transfection']:.2f} Mcell/mL), bounds {lo}-{hi} h"
        )
        assert lo + 4 <= data["optimum"]["transfection_time_h"] <= hi - 4
        assert 2.0 <= data["optimum"]["density_at_transfection"] <= 3.0


def test_aav_triple_transfection_notebook(tmp_path):
    """Issue #15 item 3: the published AAV model calibrated to the real E3 measurements (log10 units).

    Independent of biotwin's output: the measurements themselves. Viral DNA and full capsids within 0.3
    log10 at every time, total capsids from 24 to 55 h; the full share in 1-5 % (published 2-3 %; the
    data's own share at 46 h is 2.0 %). What the published structure cannot do is asserted as found: the
    capsids at 10 h (model ten times the measurement) are the worst point, and the chi-square lies above
    its 95 % range (structural misfit, not noise)."""
    data = run_notebook(
        ROOT / "notebooks" / "aav_triple_transfection" / "01_calibrate_to_E3.ipynb",
        out_dir=tmp_path,
        progress_bar=False,
    )
    print(
        f"\nAAV E3 fit: worst {data['worst']}, max |model - data| [log10] {data['max_abs_fitted']}, "
        f"full share at 46 h {data['full_share_46h']:.2f} %, chi2 {data['chi2']:.0f} "
        f"(published constants {data['chi2_published']:.0f}; expected {data['chi2_expected_95']})"
    )
    assert data["max_abs_fitted"]["viral_DNA"] < 0.3 and data["max_abs_fitted"]["full_capsids"] < 0.3
    assert data["total_capsids_fitted_24_55h"] < 0.3
    assert 1.0 <= data["full_share_46h"] <= 5.0
    assert data["chi2"] < data["chi2_published"]
    assert data["worst"]["quantity"] == "total_capsids" and data["worst"]["time_h"] == 10.0
    assert data["chi2"] > data["chi2_expected_95"][1]


@pytest.mark.parametrize(
    "name",
    [
        "01_what_is_a_digital_twin",
        "02_explore_fed_batch",
        "03_calibrate_and_uncertainty",
        "04_lyophilization_cycle",
        "05_find_the_upset",
    ],
)
def test_training_notebooks_with_solutions(tmp_path, name):
    """The course runs end to end, and each exercise's checker accepts the computed solution.

    Notebook 04's design-space map (DesignSpaceView, two spawned worker processes inside the kernel) is
    checked against LyoPRONTO case 1 (20 degC shelf, 150 mTorr: max product temperature -14.775 degC)
    and against physics: a warmer shelf never gives a colder product.
    """
    data = run_notebook(
        ROOT / "notebooks" / "training" / f"{name}.ipynb",
        out_dir=tmp_path,
        progress_bar=False,
        parameters={"show_solutions": True},
    )
    assert data["ok"] is True
    if name == "04_lyophilization_cycle":
        grid = np.array(data["map"], dtype=float)
        assert np.isfinite(grid).all()
        case1 = grid[data["y_values"].index(150), data["x_values"].index(20)]
        assert case1 == pytest.approx(-14.775, abs=0.2)
        assert (np.diff(grid, axis=1) > 0).all()


@pytest.mark.parametrize("name", ["01_what_is_a_digital_twin", "03_calibrate_and_uncertainty"])
def test_training_checker_rejects_a_missing_answer(tmp_path, name):
    """Run All without answers: every exercise says "not yet" (the hints never give an answer away: tested per
    exercise in tests/unit/test_training_checks.py). The two cheapest notebooks of the course; the others run
    with their solutions above."""
    data = run_notebook(ROOT / "notebooks" / "training" / f"{name}.ipynb", out_dir=tmp_path, progress_bar=False)
    assert data["ok"] is False
    executed = json.loads(Path(data["_executed_notebook"]).read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert printed.count("not yet: ") == 3 and "correct: " not in printed


@pytest.mark.parametrize("name", ["lyophilization", "mab_fedbatch", "hek293_vlp"])
def test_explorer_notebooks(tmp_path, name):
    data = run_notebook(ROOT / "notebooks" / "explorers" / f"{name}.ipynb", out_dir=tmp_path, progress_bar=False)
    assert data["error"] is None and len(data["readouts"]) >= 3


def test_governance_notebook_validates_the_mab_protocol_and_its_report_opens_offline(tmp_path):
    """Issue #17: the shipped CHO protocol run by papermill (the report and record `biotwin validate` writes).

    Calibrated on runs 1-3 and judged on the held-out lean-feed run 4, every criterion on data passes (the
    data were made by the model); every corner of the explorer's knob ranges solves and stays physical at the
    estimates (the starved high-density corner ran glucose to -0.51 mM on a fixed grid and was refused until
    the engine refined its grid at exhaustion, biotwin.engine.mesh), so the protocol passes and the synthetic
    data cap the evidence at tier 1. Then Chromium opens the HTML report with the network blocked: the
    criteria table has a row per criterion, none failed, and every prediction plot is drawn (self-contained)."""
    data = run_notebook(
        ROOT / "notebooks" / "governance" / "01_validate_mab_fedbatch.ipynb",
        out_dir=tmp_path,
        progress_bar=False,
        parameters={"report_path": str(tmp_path / "mab.html")},
    )
    print({k: data[k] for k in ("passed", "supported_tier", "failed")})
    assert data["passed"] is True and data["failed"] == []
    assert data["claimed_tier"] == 2 and data["supported_tier"] == 1 and data["data_kind"] == "synthetic"
    assert data["refused_stress_points"] == []
    record = json.loads((tmp_path / "mab.json").read_text())
    assert [c["passed"] for c in record["criteria"]] == [c["passed"] for c in data["criteria"].values()]
    report = tmp_path / "mab.html"
    assert "synthetic (made by a model, not measured)" in report.read_text()

    missing = browser_missing()
    if missing:
        pytest.skip("report not opened in a browser: " + "; ".join(missing))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        errors, fetched = [], []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("file:")
                else (fetched.append(route.request.url), route.abort())
            ),
        )
        page.goto(report.as_uri())
        page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=60_000)
        rows = page.locator("table#criteria tr").count() - 1
        plots = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.querySelectorAll('.scatterlayer .trace').length)"
        )
        verdicts = page.locator("table#criteria tr.fail").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    groups = {(r["experiment"], r["variable"]) for r in record["predictions"]}
    print(f"report in Chromium: {rows} criteria rows ({verdicts} failed), {len(plots)} plots, traces {plots}")
    assert not errors and not fetched, (errors, fetched)
    assert rows == len(record["criteria"]) and verdicts == 0
    assert len(plots) == len(groups) and all(n >= 2 for n in plots)
