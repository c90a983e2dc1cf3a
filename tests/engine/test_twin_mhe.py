"""Moving-horizon estimation (biotwin.twin.mhe) solves the problem its docstring states.

Checked against a second solution of the same problem written here from the formula (not from the
estimator's code): with a window holding every row, the moving horizon is full-information
estimation, ``min |C^-1 (a_0 - a_prior)|^2 + sum |w_k|^2 / (q dt_k) + sum |(y_k - x_k) / sigma_k|^2``,
minimized here by ``scipy.optimize.least_squares`` with its own finite-difference Jacobian.
"""

import numpy as np
import pytest
from scipy.optimize import least_squares

import biotwin
from biotwin.twin.streams import replay, synthetic_stream
from support import TEST_MODELS

MONOD = TEST_MODELS / "monod_switch"
SCHEDULE = {"S": (1.0, 0.05, 0.02), "X": (2.0, 0.0, 0.05)}


@pytest.fixture(scope="module")
def model():
    return biotwin.load_model(MONOD)


def test_full_window_equals_the_full_information_estimate(model):
    stream, _ = synthetic_stream(model, "default", {"mu_max": 0.6}, SCHEDULE, seed=5)
    stream = stream[stream["time"] <= 8.0]
    twin = biotwin.Twin(model, "default", estimate=["mu_max"], method="mhe", window=100, iterations=20)
    prior_a, prior_P, noise = twin.a.copy(), twin.P.copy(), np.diag(twin.Q).copy()
    for rows in replay(stream):
        update = twin.update(rows)

    # the same problem, written out: unknowns [x(0); log mu_max; w_k for each interval, states with noise]
    rows = [(float(r["time"]), r) for _, r in stream.iterrows()]
    names, n = twin.state_names, len(twin.state_names)
    noisy = np.flatnonzero(noise > 0)
    times = [0.0] + [t for t, _ in rows]
    dts = np.diff(times)
    chol = np.linalg.cholesky(prior_P)

    def trajectory(z):
        x, log_mu, out, j = z[:n].copy(), z[n : n + 1], [], n + 1
        for k, dt in enumerate(dts):
            if dt > 0:
                x = twin._flow(np.concatenate([x, log_mu]), times[k], times[k + 1])[-1].copy()
                x[noisy] += z[j : j + len(noisy)]
                j += len(noisy)
            out.append(x.copy())
        return out

    def residuals(z):
        r = [np.linalg.solve(chol, z[: n + 1] - prior_a)]
        j = n + 1
        for dt in dts:
            if dt > 0:
                r.append(z[j : j + len(noisy)] / np.sqrt(noise[noisy] * dt))
                j += len(noisy)
        for (_, row), x in zip(rows, trajectory(z), strict=True):
            for i, name in enumerate(names):
                if name in row.index and np.isfinite(row[name]):
                    r.append([(row[name] - x[i]) / row[f"{name}_sigma"]])
        return np.concatenate(r)

    size = n + 1 + sum(dt > 0 for dt in dts) * len(noisy)
    z0 = np.zeros(size)
    z0[: n + 1] = prior_a
    ref = least_squares(residuals, z0, x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    ref_mu = float(np.exp(ref.x[n]))
    ref_end = trajectory(ref.x)[-1]
    mu, mu_sd = update.parameters["mu_max"]
    print(
        f"\nfull-information mu_max: moving horizon {mu:.6f} +- {mu_sd:.2g}, scipy least_squares {ref_mu:.6f} "
        f"(truth 0.6); cost {twin.horizon.last['cost']:.6f} vs {2 * ref.cost:.6f}; end states "
        f"{[round(update.states[s][0], 6) for s in names]} vs {np.round(ref_end, 6).tolist()}"
    )
    # its uncertainty: the Gauss-Newton covariance (J'J)^-1 of the independent solution, log mu_max entry
    sd_log = float(np.sqrt(np.linalg.inv(ref.jac.T @ ref.jac)[n, n]))
    assert mu_sd == pytest.approx(ref_mu * np.sqrt(np.expm1(sd_log**2)), rel=0.02)
    assert mu == pytest.approx(ref_mu, rel=1e-4)
    assert twin.horizon.last["cost"] == pytest.approx(2 * ref.cost, rel=1e-4)
    for i, name in enumerate(names):
        assert update.states[name][0] == pytest.approx(ref_end[i], rel=1e-4, abs=1e-6)
    # the data inform mu_max: the estimate moved from the prior (0.5) towards the truth (0.6)
    assert abs(mu - 0.6) < abs(0.5 - 0.6) and mu_sd < 0.3 * 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "ukf"}, "use 'ekf'"),
        ({"method": "mhe", "window": 0}, "window must be a whole number"),
        ({"method": "mhe", "iterations": 1.5}, "iterations must be a whole number"),
    ],
)
def test_bad_estimator_options_are_refused(model, kwargs, message):
    with pytest.raises(biotwin.BiotwinError, match=message):
        biotwin.Twin(model, "default", estimate=["mu_max"], **kwargs)


def test_cli_replay_with_the_moving_horizon(model, tmp_path, capsys):
    import json

    from biotwin.tools import cli

    frame, _ = synthetic_stream(model, "default", {"mu_max": 0.55}, SCHEDULE, seed=3)
    frame.to_csv(tmp_path / "s.csv", index=False)
    common = ["twin", "replay", str(MONOD), "--stream", str(tmp_path / "s.csv"), "--estimate", "mu_max"]
    summaries = {}
    for method in ("ekf", "mhe"):
        out = tmp_path / method
        assert cli.main([*common, "--method", method, "--window", "4", "--out", str(out)]) == 0, capsys.readouterr()
        summaries[method] = json.loads((out / "summary.json").read_text())
    ekf, mhe = (summaries[m]["parameters"]["mu_max"] for m in ("ekf", "mhe"))
    print(f"\nmu_max: EKF {ekf}, moving horizon (4 rows) {mhe}")
    assert summaries["mhe"]["n_updates"] == summaries["ekf"]["n_updates"] == len(frame)
    # the same information: the two estimates agree within a tenth of their standard deviation
    assert abs(mhe["value"] - ekf["value"]) < 0.1 * ekf["sd"]
    assert mhe["value"] == pytest.approx(0.55, rel=0.05)


def test_whole_number_rows_are_used(model):
    """A CSV of whole numbers reads as integers (numpy.int64): they are numbers, not refused."""
    import pandas as pd

    twin = biotwin.Twin(model, "default", estimate=["mu_max"])
    update = twin.update(pd.DataFrame({"time": [1], "S": [9], "S_sigma": [1]}))
    assert update.refused == [] and update.n_measured == 1
    assert twin.update(pd.DataFrame({"time": [2], "S": [True], "S_sigma": [1]})).refused  # a bool is no number


def test_outputs_a_state_estimator_cannot_use_are_refused_by_name(model):
    """An output reading a time derivative, or written with the time index as a number, cannot be evaluated
    from a state at any time: the integrator refuses it by name instead of returning a wrong number."""
    import pyomo.environ as pyo

    from biotwin.engine.forward import ForwardIntegrator, UnsupportedStructure

    m = model.build({"t_end": 10.0})
    m.rate_out = pyo.Expression(m.t, rule=lambda m, t: m.dX[t])
    m.clock_out = pyo.Expression(m.t, rule=lambda m, t: m.X[t] * t)
    m.growth_out = pyo.Expression(m.t, rule=lambda m, t: m.mu[t] * m.X[t])
    integ = ForwardIntegrator(m, m.t)
    with pytest.raises(UnsupportedStructure, match="rate_out reads a time derivative"):
        integ.output(m.rate_out)
    with pytest.raises(UnsupportedStructure, match="clock_out depends on time explicitly"):
        integ.output(m.clock_out)
    # a proper output: the growth rate mu X from the states and the equations' parameters
    h = integ.output(m.growth_out)
    p = dict(zip(integ.parameter_names(), integ.parameter_vector(), strict=True))
    x = [{"X": 2.0, "S": 4.0, "V": 1.0}[s.local_name] for s in integ.states]
    expected = p["mu_max"] * 4.0 / (p["Ks"] + 4.0) * 2.0
    assert h(x, [0.0] * len(integ.inputs), list(p.values())) == pytest.approx(expected, rel=1e-6)
