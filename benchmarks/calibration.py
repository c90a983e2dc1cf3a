"""Calibration benchmark: biotwin (collocation + Ipopt) vs a scipy baseline on the same problems.

Problems:
* COPS gasoil (2 states, 3 parameters, 21 time points) -- f* = 5.2366e-3;
* COPS methanol (3 states, 5 parameters, 17 time points) -- f* = 9.02229e-3;
* a 3-experiment synthetic Monod fed-batch (3 states, 3 parameters, 120 observations).

Baseline: single shooting -- scipy.integrate.solve_ivp (LSODA, rtol 1e-8) inside
scipy.optimize.least_squares (trust-region reflective, bounds), from the same starts.
Wall times from the same run; biotwin's includes building, initializing, solving and the
uncertainty analysis.

    python benchmarks/calibration.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]

import biotwin
from biotwin.core.data import Experiment

SHARED = ROOT.parent / "shared" / "data" / "estimation_benchmarks"
MODELS = ROOT / "tests" / "toy_models"


def gasoil_rhs(t, y, th):
    return [-(th[0] + th[2]) * y[0] ** 2, th[0] * y[0] ** 2 - th[1] * y[1]]


def methanol_rhs(t, y, th):
    D = (th[1] + th[4]) * y[0] + y[1]
    return [
        -(2 * th[1] - th[0] * y[1] / D + th[2] + th[3]) * y[0],
        th[0] * y[0] * (th[1] * y[0] - y[1]) / D + th[2] * y[0],
        th[0] * y[0] * (y[1] + th[4] * y[0]) / D + th[3] * y[0],
    ]


def shooting_fit(rhs, data, y0, start, lower, upper):
    t = data["time"].to_numpy()
    obs = data.drop(columns="time").to_numpy()

    def residuals(th):
        sol = solve_ivp(rhs, (0, t[-1]), y0, t_eval=t, args=(th,), method="LSODA", rtol=1e-8, atol=1e-10)
        if not sol.success or sol.y.shape[1] != t.size:
            return np.full(obs.size, 1e3)
        return (sol.y.T - obs).ravel()

    t0 = time.perf_counter()
    fit = least_squares(residuals, start, bounds=(lower, upper), xtol=1e-10, ftol=1e-12, gtol=1e-10)
    return time.perf_counter() - t0, float(np.sum(fit.fun**2))


def monod_shooting(experiments, start):
    from test_calibration import RECIPES, TRUE

    def residuals(th):
        out = []
        for exp, (x0, s0, ts, f) in zip(experiments, RECIPES):
            t = exp.data["time"].to_numpy()

            def rhs(tt, y, F):
                X, S, V = y
                mu = th[0] * max(S, 0) / (th[1] + max(S, 0))
                return [mu * X - F / V * X, -mu * X / th[2] + F / V * (TRUE["Sf"] - S), F]

            a = solve_ivp(
                rhs, (0, ts), [x0, s0, 1.0], args=(0.0,), method="LSODA", rtol=1e-8, atol=1e-10, dense_output=True
            )
            b = solve_ivp(
                rhs, (ts, 20), a.y[:, -1], args=(f,), method="LSODA", rtol=1e-8, atol=1e-10, dense_output=True
            )
            y = np.array([a.sol(tt) if tt <= ts else b.sol(tt) for tt in t])
            out.append((y[:, 0] - exp.data["X"].to_numpy()) / exp.sigma["X"].to_numpy())
            out.append((y[:, 1] - exp.data["S"].to_numpy()) / exp.sigma["S"].to_numpy())
        return np.concatenate(out)

    t0 = time.perf_counter()
    fit = least_squares(residuals, start, bounds=([0.01, 0.001, 0.05], [2.0, 5.0, 1.0]), xtol=1e-10, ftol=1e-12)
    return time.perf_counter() - t0, float(np.sum(fit.fun**2))


def main():
    warnings.simplefilter("ignore")
    from test_calibration import synthetic_experiments

    rows = []
    # one small fit first, so that one-time costs (imports, first sympy compile) are not billed to gasoil
    d = pd.read_csv(SHARED / "parmest_rooney_biegler" / "data.csv").rename(columns={"hour": "time"})
    t0 = time.perf_counter()
    biotwin.calibrate(
        MODELS / "rooney_biegler", Experiment.from_frame(d, "rb"), ["asymptote", "rate_constant"], nfe=7, ncp=1
    )
    print(f"warm-up (Rooney-Biegler, first fit in the process): {time.perf_counter() - t0:.2f} s")
    d = pd.read_csv(SHARED / "cops_gasoil" / "data.csv").rename(columns={"t": "time"})
    t0 = time.perf_counter()
    r = biotwin.calibrate(
        MODELS / "cops_gasoil", Experiment.from_frame(d, "gasoil"), ["theta1", "theta2", "theta3"], nfe=100
    )
    ours = time.perf_counter() - t0
    base, base_f = shooting_fit(gasoil_rhs, d, [1.0, 0.0], [0.0, 0.0, 0.0], [0, 0, 0], [np.inf] * 3)
    rows.append(("COPS gasoil (nfe 100)", ours, r.objective, base, base_f, 5.2366e-3))

    d = pd.read_csv(SHARED / "cops_methanol" / "data.csv").rename(columns={"t": "time"})
    t0 = time.perf_counter()
    r = biotwin.calibrate(
        MODELS / "cops_methanol", Experiment.from_frame(d, "methanol"), ["th1", "th2", "th3", "th4", "th5"], nfe=100
    )
    ours = time.perf_counter() - t0
    base, base_f = shooting_fit(methanol_rhs, d, [1.0, 0.0, 0.0], [1.0] * 5, [0] * 5, [np.inf] * 5)
    rows.append(("COPS methanol (nfe 100)", ours, r.objective, base, base_f, 9.02229e-3))

    exps = synthetic_experiments(np.random.default_rng(1))
    model = biotwin.load_model(MODELS / "monod_switch")
    t0 = time.perf_counter()
    r = biotwin.calibrate(model, exps, ["mu_max", "Ks", "Yxs"], nfe=60)
    ours = time.perf_counter() - t0
    base, base_f = monod_shooting(exps, [0.5, 0.2, 0.5])
    rows.append(("3-experiment fed-batch (nfe 60)", ours, r.objective, base, base_f, float("nan")))

    print("calibration benchmark: wall time [s] and objective, biotwin vs scipy single shooting (same run)")
    print(
        f"{'problem':32s} {'biotwin s':>10} {'objective':>12} {'scipy s':>9} {'objective':>12} "
        f"{'published':>10} {'scipy/biotwin':>13}"
    )
    for name, ours, f, base, bf, pub in rows:
        print(f"{name:32s} {ours:10.2f} {f:12.6g} {base:9.2f} {bf:12.6g} {pub:10.6g} {base / ours:13.2f}")


if __name__ == "__main__":
    main()
