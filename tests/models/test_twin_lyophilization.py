"""The live twin on real freeze-drying data: LyoPRONTO's measured product-temperature record.

``../shared/data/lyophilization/measured_product_temperature.txt`` (a vial-bottom thermocouple, every
0.01 h for 4.5 h; the recipe as LyoPRONTO's docs give it: 150 mTorr, shelf -35 -> 20 degC at
1 degC/min) is replayed row by row into the twin, which estimates the dried-layer resistance ``R0`` and
``A1`` (``A2 = 0``, where the offline fit puts it) from parameters.yaml with its default 30 % prior
spread and process noise. The thermocouple is read as the model's lumped product temperature
``T_product``, which follows the vial bottom with a 0.01 h lag during primary drying. The twin can also
measure the vial bottom itself (``T_bottom``, an output: see the second test); on this record the filter
then ends at R0 0.154 +- 0.008 and A1 5.93 +- 0.04, both outside the offline intervals below (whose
least-squares misfit is 401 against 466 and 634 at the filter's two answers, measured by simulating
each): with R0 and A1 starting at 1.4 and 16 (30 % priors), 6-7 prior sds from the record's values,
the one-pass linearization of the filter does not reach the least-squares answer. The record ends before
drying does, so the end of primary drying is a forecast.

Checked against the offline calibration of the same record (``biotwin.calibrate`` on the vial-bottom
temperature, R0 and A1, with AR(1) errors: the thermocouple's residuals have a lag-1 autocorrelation of
0.97): the forecast end of drying at half the record within 10 % of the whole record's, and the final
R0 and A1 inside the calibration's 95 % intervals.

The twin reads the record twice. Taking the 450 rows as independent (the default) it ends at
R0 0.194 +- 0.008 and A1 5.86 +- 0.04 (sds a tenth of the calibration's AR(1) ones) and warns that its
innovations are autocorrelated. With ``residual_model="ar1"`` (rho measured from the innovations as
rows arrive) it ends at R0 0.29 +- 0.06 and A1 6.08 +- 0.41: sds of the calibration's order, asserted
to be at least a third of them.
"""

import numpy as np
import pandas as pd
import pytest

import biotwin
from biotwin.core.data import Experiment
from biotwin.processes.freeze_drying import fill_height, parameters_of

RECIPE = {"t_end": "9 h", "shelf_temperature": {"unit": "degC", "points": [[0, -35], [55 / 60, 20], [9, 20]]}}


def test_the_twin_on_the_measured_record_forecasts_the_end_of_drying(shared_data):
    model = biotwin.load_model("lyophilization")
    raw = np.loadtxt(shared_data / "lyophilization" / "measured_product_temperature.txt")
    record = pd.DataFrame({"time": raw[:, 0], "T_product": raw[:, 1] + 273.15, "T_product_sigma": 0.3})
    record = record[record["time"] > 0]  # t = 0 is the initial condition
    recipe = {
        **model.load_scenario("case1_standard").raw,
        **RECIPE,
        "chamber_pressure": {"unit": "mtorr", "points": [[0, 150], [9, 150]]},
    }
    p = model.parameter_values()
    L0 = fill_height(*parameters_of(p, "Vfill Ap c_solid rho_solution rho_ice rho_solute"))  # [cm]

    def end_of_drying(update):
        forecast = update.forecast(points=800)
        cake = forecast[forecast["variable"] == "Lck"]
        done = cake[cake["value"] >= L0 * (1 - 1e-6)]
        assert len(done), "the forecast does not reach the end of primary drying"
        return float(done["time"].iloc[0])

    def replay(twin):
        for _, row in record.iterrows():
            twin.update(row.to_frame().T)

    independent = biotwin.Twin(model, recipe, estimate=["R0", "A1"])
    with pytest.warns(UserWarning, match="innovations of T_product are autocorrelated"):
        replay(independent)
    twin = biotwin.Twin(model, recipe, estimate=["R0", "A1"], residual_model="ar1")
    half_time, at_half, alarm_times, update = record["time"].iloc[-1] / 2, None, [], None
    for _, row in record.iterrows():
        update = twin.update(row.to_frame().T)
        alarm_times += [a["update_time"] for a in update.alarms]
        if at_half is None and update.time >= half_time:
            at_half = (update.time, end_of_drying(update), dict(update.parameters))
    final = end_of_drying(update)
    seconds = [u.update_s for u in twin.history]

    offline = biotwin.calibrate(
        model,
        Experiment.from_frame(
            record.rename(columns={"T_product": "T_bottom"}).drop(columns="T_product_sigma"),
            "thermocouple",
            scenario={**recipe, "t_end": {"value": float(record["time"].iloc[-1]), "unit": "h"}},
        ),
        ["R0", "A1"],
        nfe=100,
        start={"R0": 1.0, "A1": 10.0},
        residual_model="ar1",  # a thermocouple every 0.01 h that the model does not follow exactly
    )
    rho = offline.diagnostics["residual_autocorrelation_lag1"]
    offline = offline.table()
    print(
        f"\n{len(record)} rows, update median {np.median(seconds) * 1e3:.1f} ms, max {max(seconds) * 1e3:.0f} ms; "
        f"end of primary drying forecast at {at_half[0]:.2f} h: {at_half[1]:.4f} h, at {update.time:.2f} h: {final:.4f} h; "
        f"alarms at {len(alarm_times)} updates ({min(alarm_times, default=np.nan):.2f}-{max(alarm_times, default=np.nan):.2f} h)"
    )
    print(f"offline residuals: lag-1 autocorrelation {rho:.3f}, AR(1) variance inflation {(1 + rho) / (1 - rho):.1f}")
    print(f"twin's innovations: lag-1 autocorrelation {twin.innovation_autocorrelation['T_product'][0]:.3f}")
    for name in ("R0", "A1"):
        value, sd = update.parameters[name]
        row = offline.loc[name]
        print(
            f"{name}: twin (ar1) {value:.4g} +- {sd:.2g} (at half the record {at_half[2][name][0]:.4g}); twin "
            f"(independent) {independent.history[-1].parameters[name][0]:.4g} +- "
            f"{independent.history[-1].parameters[name][1]:.2g}; offline calibration {row['value']:.4g} "
            f"[{row['ci95_low']:.4g}, {row['ci95_high']:.4g}]"
        )
    assert abs(at_half[1] / final - 1) < 0.10
    assert rho > 0.5  # the record's residuals are far from independent: the AR(1) intervals are the honest ones
    for name in ("R0", "A1"):  # issue #14: the final online estimates inside the offline 95 % intervals
        assert offline.loc[name, "ci95_low"] <= update.parameters[name][0] <= offline.loc[name, "ci95_high"], name
        # and the twin's sds of the order of the calibration's (the independent twin's are a tenth)
        offline_sd = (offline.loc[name, "ci95_high"] - offline.loc[name, "ci95_low"]) / (2 * 1.96)
        assert update.parameters[name][1] >= offline_sd / 3, name


def test_the_twin_measures_an_output_the_vial_bottom_temperature():
    """A thermocouple reads the vial bottom, an output of the model (an Expression of the ice thickness, the
    shelf and the chamber), not a state. SYNTHETIC batch: resistance R0 1.0 and A1 12 (parameters.yaml:
    1.4 and 16), the vial bottom every 0.05 h with sd 0.3 K."""
    from biotwin.twin.streams import synthetic_stream

    model = biotwin.load_model("lyophilization")
    truth_p = {"R0": 1.0, "A1": 12.0}
    schedule = {"T_bottom": (0.05, 0.3, 0)}
    stream, truth = synthetic_stream(model, "case1_standard", truth_p, schedule, t_end=3.0, seed=4)
    twin = biotwin.Twin(model, "case1_standard", estimate=["R0", "A1"])
    assert "T_bottom" in twin.measurable and twin.unit_of("T_bottom") == "K"
    # the compiled output equals Pyomo's evaluation of the Expression on the truth's collocation solution
    n = len(twin.state_names)
    for t in (0.5, 1.5, 2.5):
        row = truth.loc[(truth["time"] - t).abs().idxmin()]
        a = np.concatenate([row[twin.state_names].to_numpy(float), np.log([1.0, 12.0])])
        value, H = twin._measure(a, ["T_bottom"], float(row["time"]))
        assert value[0] == pytest.approx(row["T_bottom"], abs=1e-6)
        assert H.shape == (1, n + 2) and H[0, twin.state_names.index("Lck")] > 0  # thicker cake, warmer bottom
    update = None
    for _, rows in stream.groupby("time", sort=True):
        update = twin.update(rows)
    assert not twin.refused
    print(
        f"\nsynthetic vial-bottom record to 3 h: R0 {update.parameters['R0']}, A1 {update.parameters['A1']} "
        f"(truth {truth_p}); alarms {sum(len(u.alarms) for u in twin.history)}"
    )
    for name, true in truth_p.items():
        value, sd = update.parameters[name]
        assert abs(value - true) < 1.96 * sd, (name, value, sd)
        assert sd < 0.3 * true  # informed by the record, narrower than the 30 % prior


def test_a_chamber_pressure_excursion_the_recipe_does_not_know_is_alarmed():
    """A recipe step that did not happen (issue #14): SYNTHETIC batches of case 1 read by a vial-bottom
    thermocouple every 0.02 h (sd 0.3 K) for 3 h. In one the chamber pressure rose from 150 to 400 mTorr at
    2.0-2.5 h (a vacuum fault: more gas conduction, the product warms); the twin runs the recipe as written
    (150 mTorr throughout). The excursion is alarmed at its first sample; the same batch without it, at
    the same noise, raises no alarm."""
    from biotwin.twin.streams import replay, synthetic_stream

    model = biotwin.load_model("lyophilization")
    recipe = model.load_scenario("case1_standard").raw
    pressure = [[0, 150], [2.0, 150], [2.02, 400], [2.5, 400], [2.52, 150], [12, 150]]
    fault = {**recipe, "chamber_pressure": {"unit": "mtorr", "points": pressure}}
    first = {}
    for name, truth_recipe in (("noise only", "case1_standard"), ("excursion", fault)):
        stream, _ = synthetic_stream(model, truth_recipe, {}, {"T_bottom": (0.02, 0.3, 0)}, t_end=3.0, seed=8)
        twin = biotwin.Twin(model, "case1_standard", estimate=["R0"])
        alarms = [a for rows in replay(stream) for a in twin.update(rows).alarms]
        first[name] = alarms[0] if alarms else None
        print(f"\n{name}: {len(alarms)} alarms" + (f", first {alarms[0]['message']}" if alarms else ""))
    assert first["noise only"] is None
    assert first["excursion"]["update_time"] == pytest.approx(2.02)  # the first sample of the excursion
    assert first["excursion"]["variables"] == ["T_bottom"]
