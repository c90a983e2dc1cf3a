"""The live twin on the HEK293 transient transfection (issue #14: a replay on every model folder).

Truth: the expression constant k_expr 20 % above parameters.yaml; a cell count (5 %) and a VLP titer
(10 %) every 12 h of the batch_transfection recipe. The twin starts from the yaml value with its 30 %
prior spread and estimates k_expr online from the stream, as a monitoring twin would; it knows neither
the truth nor the noise realization.
"""

import numpy as np
import pytest

import biotwin
from biotwin.twin.streams import replay, synthetic_stream

SCHEDULE = {"Xv": (12, 0, 0.05), "VLP": (12, 0, 0.10)}


def test_hek293_replay_estimates_the_expression_constant_and_forecasts_the_titer():
    model = biotwin.load_model("hek293_vlp")
    truth_k = 1.2 * model.parameter_set["k_expr"].value
    stream, _ = synthetic_stream(model, "batch_transfection", {"k_expr": truth_k}, SCHEDULE, seed=3)
    # the harvest titer of the truth at the recipe's end (the last measurement is 4 h before it)
    final_vlp = model.simulate("batch_transfection", params={"k_expr": truth_k}, nfe=80).wide["VLP"].iloc[-1]
    halfway = stream["time"].iloc[len(stream) // 2]
    twin = biotwin.Twin(model, "batch_transfection", estimate=["k_expr"])
    alarms, mid = [], None
    for rows in replay(stream):
        update = twin.update(rows)
        alarms += update.alarms
        if mid is None and twin.t >= halfway:
            mid = update
    end = mid.forecast().query("variable == 'VLP'").iloc[-1]
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
    assert 0.2 < np.mean(per_value) < 3.0, per_value  # 12 updates: a loose check of the innovation scale
