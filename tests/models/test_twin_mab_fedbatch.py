"""The live twin on the CHO fed-batch: a synthetic batch whose parameters the twin does not know.

(A missed glucose top-up alarmed within 24 h: notebooks/mab_fedbatch/04_live_twin, asserted in
tests/notebooks.)

Truth: mu_max 15 % above and beta_P 15 % below parameters.yaml; an in-line glucose/lactate probe every
hour (sd 0.7 mM) and a daily cell count and titer (5 %). The twin starts from the yaml values with a
30 % prior spread and estimates both parameters online.
"""

import numpy as np
import pytest

import biotwin
from biotwin.twin.streams import replay, synthetic_stream
from support import ROOT

SCHEDULE = {"Glc": (1, 0.7, 0), "Lac": (1, 0.7, 0), "Xv": (24, 0, 0.05), "titer": (24, 0.005, 0.05)}
RECIPE = ROOT / "models" / "mab_fedbatch" / "scenarios" / "nominal_14d.yaml"


@pytest.fixture(scope="module")
def model():
    return biotwin.load_model("mab_fedbatch")


def truth_params(model):
    p = model.parameter_set
    return {"mu_max": 1.15 * p["mu_max"].value, "beta_P": 0.85 * p["beta_P"].value}


def run(model, stream, until):
    twin = biotwin.Twin(model, "nominal_14d", estimate=["mu_max", "beta_P"])
    alarms, update = [], None
    for rows in replay(stream[stream["time"] <= until]):
        update = twin.update(rows)
        alarms += update.alarms
    return twin, update, alarms


def test_forecast_after_day_7_and_no_alarm_on_noise(model):
    stream, truth = synthetic_stream(model, "nominal_14d", truth_params(model), SCHEDULE, seed=11)
    final_titer = truth["titer"].iloc[-1]
    twin, update, alarms = run(model, stream, until=168.0)
    forecast = update.forecast()
    end = forecast[forecast["variable"] == "titer"].iloc[-1]
    walls = [h.update_s for h in twin.history]
    print(
        f"\nday 7: mu_max {update.parameters['mu_max']}, beta_P {update.parameters['beta_P']} (truth "
        f"{truth_params(model)}); final titer forecast {end.value:.4f} g/L [{end.lo95:.4f}, {end.hi95:.4f}] vs truth "
        f"{final_titer:.4f}; {len(walls)} updates, median {np.median(walls) * 1e3:.0f} ms, max "
        f"{max(walls) * 1e3:.0f} ms"
    )
    assert end.time == pytest.approx(336.0)
    assert abs(end.value / final_titer - 1) < 0.10
    assert end.lo95 <= final_titer <= end.hi95
    # the uninformed start: the prior's 30 % spread; after a week of data the growth rate is pinned
    assert update.parameters["mu_max"][1] < 0.3 * 0.5 * model.parameter_set["mu_max"].value
    assert alarms == []
    # the normalized innovations of a well-specified filter: chi-square with m degrees of freedom
    per_value = [h.nis / h.n_measured for h in twin.history if h.n_measured]
    assert 0.6 < np.mean(per_value) < 1.4
    # the linearized band checked by sampling (issue #14): 200 draws of states and parameters, each integrated
    sampled = update.forecast(method="sampling", samples=200)
    for name in ("titer", "Xv", "Glc", "Lac"):
        lin = forecast[forecast["variable"] == name].iloc[-1]
        smp = sampled[sampled["variable"] == name].iloc[-1]
        width = lin.hi95 - lin.lo95
        print(
            f"day-14 {name}: linearized [{lin.lo95:.4g}, {lin.hi95:.4g}], sampled [{smp.lo95:.4g}, {smp.hi95:.4g}] "
            f"(bounds differ by {abs(smp.lo95 - lin.lo95) / width:.1%}, {abs(smp.hi95 - lin.hi95) / width:.1%} of the width)"
        )
        assert abs(smp.lo95 - lin.lo95) < 0.15 * width and abs(smp.hi95 - lin.hi95) < 0.15 * width, name
    titer = sampled[sampled["variable"] == "titer"].iloc[-1]
    assert titer.lo95 <= final_titer <= titer.hi95
    with pytest.raises(biotwin.BiotwinError, match="forecast method 'monte carlo'"):
        update.forecast(method="monte carlo")


def test_bad_rows_are_refused_by_name_and_the_twin_goes_on(model, caplog):
    twin = biotwin.Twin(model, "nominal_14d", estimate=["mu_max"])
    twin.update({"time": [0.0], "Glc": [35.0], "Glc_sigma": [0.7]})
    cases = [
        ({"time": [0.0], "Glc": [35.0], "Glc_sigma": [0.7]}, "duplicate"),
        ({"time": [2.0], "Glc": [float("nan")], "Glc_sigma": [0.7]}, "nothing measured"),
        ({"time": [2.0], "Glc": [-3.0], "Glc_sigma": [0.7]}, "negative"),
        ({"time": [2.0], "Glc": [30.0]}, "no positive Glc_sigma"),
        ({"time": [400.0], "Glc": [30.0], "Glc_sigma": [0.7]}, "after the end of the recipe"),
        ({"time": [2.0], "glucose": [30.0], "Glc": [34.0], "Glc_sigma": [0.7]}, "unknown column"),
    ]
    for rows, reason in cases:
        update = twin.update(rows)
        assert any(reason in r["reason"] for r in update.refused), (reason, update.refused)
    assert twin.t == 2.0  # the last case's good part was used
    late = twin.update({"time": [1.0], "Glc": [34.0], "Glc_sigma": [0.7]})
    assert "late or out of order" in late.refused[0]["reason"]
    assert len(twin.refused) == len(cases) + 1
    # a unit in a column name: refused, with the conversion when the unit is of the variable's kind
    rows = {"time": [3.0], "Glc [mmol/L]": [30.0], "Lac [g/L]": [1.0], "Xv [cell/mL]": [3.0e6], "Glc": [33.0]}
    wrong = twin.update({**rows, "Glc_sigma": [0.7]})
    reasons = [r["reason"] for r in wrong.refused]
    assert any("'Glc [mmol/L]'" in r and "mmol/L is mM: rename the column" in r for r in reasons), reasons
    assert any("'Lac [g/L]'" in r and "'g/L' is not a unit of Lac (mM)" in r for r in reasons), reasons
    assert any("'Xv [cell/mL]'" in r and "convert the values" in r for r in reasons), reasons
    assert twin.t == 3.0 and wrong.n_measured == 1  # the row's good part was used
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "biotwin.twin.twin"]
    assert len(logged) == len(twin.refused) and "refused row at 0.0: time 0 h was already used" in " ".join(logged)
    with pytest.raises(biotwin.BiotwinError, match="unknown parameter 'mu_maxx'"):
        biotwin.Twin(model, "nominal_14d", estimate=["mu_maxx"])
