"""Kv(P) = KC + KP P / (1 + KD P) from gravimetric sublimation tests (lyophilization ``kv_fit.py``).

Independent checks: the per-vial Kv against the heat balance worked by hand, the fit and its standard
errors against ``scipy.optimize.curve_fit`` (its own solver and covariance), and the 95 % intervals'
coverage of the true coefficients over noise replicates of synthetic tests. No Ipopt: milliseconds per fit.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

import biotwin
from biotwin.core.errors import DataError

TRUE = {"KC": 2.75e-4, "KP": 8.93e-4, "KD": 0.46}  # LyoPRONTO's standard vial


@pytest.fixture(scope="module")
def kv_fit():
    return biotwin.load_model("lyophilization").submodule("kv_fit")


def _pikal(P, KC, KP, KD):
    return KC + KP * P / (1 + KD * P)


def test_one_vial_is_the_heat_balance(kv_fit):
    # 0.5 g sublimed in 5 h with the bottom 10 K below the shelf, Av 3.80 cm2, dHs 678 cal/g:
    # 678 * 0.5 / 18000 s / (3.80 * 10) = 4.95614e-4 cal/s/K/cm2
    rows = pd.DataFrame(
        {
            "P_chamber_mTorr": [100.0],
            "T_shelf_C": [-10.0],
            "T_bottom_C": [-20.0],
            "mass_loss_g": [0.5],
            "duration_h": [5.0],
        }
    )
    table = kv_fit.read_gravimetric_tests(rows, Av_cm2=3.80)
    assert table["Kv"].iloc[0] == pytest.approx(678 * 0.5 / 18000 / 38.0, rel=1e-12)
    assert table["P_torr"].iloc[0] == pytest.approx(0.1)


def test_fit_equals_curve_fit_and_intervals_cover_the_truth(kv_fit):
    fit = kv_fit.fit_kv_gravimetric(kv_fit.synthetic_gravimetric_tests(seed=0), Av_cm2=3.80)["centre"]
    t = fit.tests
    p, pcov = curve_fit(_pikal, t["P_torr"], t["Kv"], p0=list(TRUE.values()), maxfev=10000)
    se = np.sqrt(np.diag(pcov))
    print("\n" + fit.table().to_string())
    for k, name in enumerate(TRUE):
        assert fit.values[name] == pytest.approx(p[k], rel=1e-5), name
        assert fit.se[name] == pytest.approx(se[k], rel=1e-3), name
    assert fit.identifiability["condition_number"] > 1 and fit.s > 0

    # coverage of the 95 % intervals: 20 replicates as the issue asks (printed), 200 for the assertion
    inside = {name: [] for name in TRUE}
    for seed in range(200):
        f = kv_fit.fit_kv_gravimetric(kv_fit.synthetic_gravimetric_tests(seed=seed), Av_cm2=3.80)["centre"]
        for name, true in TRUE.items():
            inside[name].append(f.lower[name] <= true <= f.upper[name])
    first20 = {name: int(np.sum(v[:20])) for name, v in inside.items()}
    share = {name: float(np.mean(v)) for name, v in inside.items()}
    print(f"true coefficients inside the 95 % intervals: {first20} of 20 replicates; over 200: {share}")
    for name in TRUE:
        assert first20[name] >= 17, name
        assert 0.90 <= share[name] <= 1.0, name  # binomial sd at 0.95 over 200: 0.015


def test_noise_free_tests_give_the_coefficients_and_a_flat_curve_holds_kd_at_zero(kv_fit):
    exact = kv_fit.synthetic_gravimetric_tests(kv_sd_rel=0.0, seed=3)
    exact["mass_loss_g"] *= 1 + 1e-6 * np.sin(np.arange(len(exact)))  # a scatter to estimate: 1e-6
    fit = kv_fit.fit_kv_gravimetric(exact, Av_cm2=3.80)["centre"]
    for name, true in TRUE.items():
        assert fit.values[name] == pytest.approx(true, rel=1e-4), name

    # Kv straight in P (no curvature): KD is held at its bound 0 and reported so, not given an interval
    line = kv_fit.synthetic_gravimetric_tests(KD=0.0, kv_sd_rel=0.0, seed=3)
    line["mass_loss_g"] *= 1 + 1e-4 * np.sin(np.arange(len(line)))
    flat = kv_fit.fit_kv_gravimetric(line, Av_cm2=3.80)["centre"]
    assert flat.at_bound["KD"] == "lower" and np.isnan(flat.upper["KD"])
    assert flat.values["KP"] == pytest.approx(TRUE["KP"], rel=1e-3)
    assert np.isfinite(flat.upper["KP"]) and flat.lower["KP"] < TRUE["KP"] < flat.upper["KP"]


def test_centre_and_edge_vials_are_fitted_as_two_classes(kv_fit, tmp_path):
    centre = kv_fit.synthetic_gravimetric_tests(seed=1, position="centre")
    edge = kv_fit.synthetic_gravimetric_tests(KC=1.3 * TRUE["KC"], seed=2, position="edge")
    path = tmp_path / "gravimetric.csv"
    pd.concat([centre, edge]).to_csv(path, index=False)
    before = path.read_bytes()
    fits = kv_fit.fit_kv_gravimetric(path, Av_cm2=3.80)
    assert path.read_bytes() == before  # the file is read, never written
    assert set(fits) == {"centre", "edge"}
    ratio = fits["edge"].values["KC"] / fits["centre"].values["KC"]
    print(f"\nedge / centre KC {ratio:.3f} (true 1.3)")
    assert fits["edge"].lower["KC"] <= 1.3 * TRUE["KC"] <= fits["edge"].upper["KC"]
    lo, hi = fits["edge"].kv_band([0.05, 0.15, 0.5])
    assert np.all(lo < fits["edge"].kv([0.05, 0.15, 0.5])) and np.all(fits["edge"].kv([0.05, 0.15, 0.5]) < hi)


def _rows(**change):
    base = {
        "P_chamber_mTorr": [50.0, 100.0, 200.0, 400.0, 50.0],
        "T_shelf_C": [-10.0] * 5,
        "T_bottom_C": [-24.0] * 5,
        "mass_loss_g": [0.4, 0.5, 0.6, 0.7, 0.41],
        "duration_h": [6.0] * 5,
    }
    base.update(change)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    "table, message",
    [
        (_rows().drop(columns=["duration_h"]), "missing column.*duration_h"),
        (_rows().rename(columns={"P_chamber_mTorr": "P_chamber"}), "unknown column.*P_chamber"),
        (_rows(mass_loss_g=[0.4, float("nan"), 0.6, 0.7, 0.41]), "row 3, column mass_loss_g"),
        (_rows(duration_h=[6.0, 6.0, 0.0, 6.0, 6.0]), "row 4, column duration_h: 0 must be positive"),
        (_rows(T_bottom_C=[-24.0, -5.0, -24.0, -24.0, -24.0]), "row 3: the vial bottom .* not colder than the shelf"),
        (_rows(P_chamber_mTorr=[50.0, 100.0, 50.0, 100.0, 50.0]), "2 chamber pressure.*need at least 3"),
    ],
)
def test_bad_tests_are_refused_with_the_row_and_the_fix(kv_fit, table, message):
    with pytest.raises(DataError, match=message):
        kv_fit.fit_kv_gravimetric(table, Av_cm2=3.80)


def test_a_missing_vial_area_is_named(kv_fit):
    with pytest.raises(DataError, match="pass Av_cm2="):
        kv_fit.fit_kv_gravimetric(_rows())
