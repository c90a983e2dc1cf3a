"""The live twin on the HEK293 transient transfection (issue #14: a replay on every model folder).

Truth: the expression constant k_expr 20 % above parameters.yaml; a daily sample of the
batch_transfection recipe: cell count (5 %), glucose, lactate (sd 0.3 mM), glutamine (0.1 mM) and the VLP
titer (10 %). The twin starts from the yaml value with its 30 % prior spread and estimates k_expr online
from the stream, as a monitoring twin would; it knows neither the truth nor the noise realization. The
forecast of the harvest titer narrows as the data arrive (issue #14: its band width printed per day).
"""

import numpy as np
import pytest

import biotwin
from biotwin.twin.streams import replay, synthetic_stream

SCHEDULE = {"Xv": (24, 0, 0.05), "Glc": (24, 0.3, 0), "Lac": (24, 0.3, 0), "Gln": (24, 0.1, 0), "VLP": (24, 0, 0.10)}


def test_hek293_replay_estimates_the_expression_constant_and_forecasts_the_titer():
    model = biotwin.load_model("hek293_vlp")
    truth_k = 1.2 * model.parameter_set["k_expr"].value
    stream, _ = synthetic_stream(model, "batch_transfection", {"k_expr": truth_k}, SCHEDULE, seed=3)
    # the harvest titer of the truth at the recipe's end (the last measurement is 4 h before it)
    final_vlp = model.simulate("batch_transfection", params={"k_expr": truth_k}, nfe=80).wide["VLP"].iloc[-1]
    halfway = stream["time"].iloc[len(stream) // 2]
    twin = biotwin.Twin(model, "batch_transfection", estimate=["k_expr"])
    alarms, mid, harvest = [], None, []
    for rows in replay(stream):
        update = twin.update(rows)
        alarms += update.alarms
        harvest.append(update.forecast().query("variable == 'VLP'").iloc[-1])
        if mid is None and twin.t >= halfway:
            mid = update
    end = mid.forecast().query("variable == 'VLP'").iloc[-1]
    widths = [h.hi95 - h.lo95 for h in harvest]
    print(
        "\nharvest VLP forecast per day: "
        + "; ".join(
            f"day {u.time / 24:g}: {h.value:.2f} [{h.lo95:.2f}, {h.hi95:.2f}] (width {w:.2f})"
            for u, h, w in zip(twin.history, harvest, widths, strict=True)
        )
        + f" Gvp/mL; truth {final_vlp:.3f}"
    )
    assert all(h.lo95 <= final_vlp <= h.hi95 for h in harvest)  # every day's band holds the harvest titer
    produced = [k for k, u in enumerate(twin.history) if u.time >= 72.0]  # VLP measurable from day 3
    assert all(widths[k] < widths[k - 1] for k in produced[1:])  # narrower every day once titer is measured
    assert widths[-1] < 0.35 * widths[0]
    value, sd = update.parameters["k_expr"]
    prior_sd = 0.3 * model.parameter_set["k_expr"].value
    print(
        f"\nHEK293 twin: at {halfway:g} h final VLP forecast {end.value:.3f} [{end.lo95:.3f}, {end.hi95:.3f}] Gvp/mL "
        f"vs truth {final_vlp:.3f} (k_expr {mid.parameters['k_expr'][0]:.1f} +- {mid.parameters['k_expr'][1]:.1f}); "
        f"at the end k_expr {value:.1f} +- {sd:.1f} (truth {truth_k:.1f}, prior {model.parameter_set['k_expr'].value:.1f} "
        f"+- {prior_sd:.0f}); {len(twin.history)} updates"
    )
    assert end.time == pytest.approx(136.0)  # the end of batch_transfection
    assert end.lo95 <= final_vlp <= end.hi95  # mid-batch, the forecast band holds the harvest titer
    assert abs(value - truth_k) <= 1.96 * sd  # the truth inside the final estimate's 95 % interval
    assert sd < prior_sd / 2  # the titer data informed it
    assert alarms == []
    per_value = [h.nis / h.n_measured for h in twin.history if h.n_measured]
    assert 0.2 < np.mean(per_value) < 3.0, per_value  # 6 updates: a loose check of the innovation scale
