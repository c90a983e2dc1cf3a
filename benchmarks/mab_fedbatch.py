"""mAb fed-batch benchmark: simulation (cold, warm), calibration and feed optimization.

Next to a scipy solve_ivp implementation of the same kinetics and recipe (LSODA, rtol 1e-8, the
recipe's pulses integrated segment by segment), all in the same run.

    python benchmarks/mab_fedbatch.py
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parents[1]

import itertools

import biotwin
from biotwin.optimize.feed import optimize_feed


def scipy_simulation(model, scenario):
    """The model's equations written with numpy, integrated between the recipe's corners."""
    sc = model.load_scenario(scenario)
    p = model.parameter_values(sc.parameters)
    from biotwin.core.programs import Program

    progs = {k: Program.from_points(k, v["points"], "bench") for k, v in sc.inputs.items()}
    unit_scale = {"F_cont": 1.0 / 24.0 if sc.inputs.get("F_cont", {}).get("unit") == "L/d" else 1.0}
    t_end = sc.t_end

    def sw(c):
        x = (c - p["C_exh"]) / p["W_exh"]
        return 0.5 * (1 + x / math.sqrt(1 + x * x))

    def pos(c):
        return 0.5 * (c + math.sqrt(c * c + p["C_eps"] ** 2))

    def rhs(t, y, side):
        Xv, Xd, Glc, Gln, Lac, Amm, titer, V = y
        u = {k: progs[k](t, side)[0] * unit_scale.get(k, 1.0) for k in progs}
        Fc, Fb, Fo = u.get("F_cont", 0.0), u.get("F_bolus", 0.0), u.get("F_out", 0.0)
        G, Q, L, A = pos(Glc), pos(Gln), pos(Lac), pos(Amm)
        mu = (
            p["mu_max"]
            * G
            / (p["K_Glc"] + G)
            * Q
            / (p["K_Gln"] + Q)
            * p["KI_Lac"]
            / (p["KI_Lac"] + L)
            * p["KI_Amm"]
            / (p["KI_Amm"] + A)
        )
        mud = p["mu_d_max"] * L / (p["KD_Lac"] + L) * A / (p["KD_Amm"] + A)
        qg = p["m_Glc"] * sw(Glc) + mu / p["Y_X_Glc"]
        qq = p["a1_Gln"] * Q / (p["a2_Gln"] + Q) + mu / p["Y_X_Gln"]
        qa = p["Y_Amm_Gln"] * mu / p["Y_X_Gln"] - p["r_Amm"] * sw(Amm)
        qp = p["alpha_P"] * mu * 24 + p["beta_P"]
        X = Xv * 1e9  # cells/L
        D = (Fc + Fb) / V
        return [
            (mu - mud - D) * Xv,
            mud * Xv - (p["k_lys"] + D) * Xd,
            -qg * X + Fc / V * (p["Glc_feed"] - Glc) + Fb / V * (u.get("Glc_bolus", 0) - Glc),
            -qq * X - p["d_Gln"] * Gln + Fc / V * (p["Gln_feed"] - Gln) + Fb / V * (u.get("Gln_bolus", 0) - Gln),
            p["Y_Lac_Glc"] * qg * X - D * Lac,
            qa * X + p["d_Gln"] * Gln - D * Amm,
            qp * 1e-12 * X / 24 - D * titer,
            Fc + Fb - Fo,
        ]

    corners = sorted({0.0, t_end} | {c for prog in progs.values() for c in prog.corners if 0 < c < t_end})
    y = [p[f"{s}0"] for s in ("Xv", "Xd", "Glc", "Gln", "Lac", "Amm", "titer", "V")]
    start = time.perf_counter()
    for a, b in itertools.pairwise(corners):
        sol = solve_ivp(
            lambda t, yy, b=b: rhs(t, yy, "right" if t < b else "left"),
            (a, b),
            y,
            method="LSODA",
            rtol=1e-8,
            atol=1e-10,
        )
        y = sol.y[:, -1]
    return time.perf_counter() - start, y


def main():
    warnings.simplefilter("ignore")
    model = biotwin.load_model("mab_fedbatch")
    t0 = time.perf_counter()
    cold = model.simulate(scenario="nominal_14d", nfe=60)
    cold_s = time.perf_counter() - t0
    warm = []
    for k in range(5):
        t0 = time.perf_counter()
        model.simulate(scenario="nominal_14d", nfe=60, params={"beta_P": 25.0 + k})
        warm.append(time.perf_counter() - t0)
    warm_s = float(np.median(warm))
    scipy_s, y_end = scipy_simulation(model, "nominal_14d")
    ours_end = cold.wide.iloc[-1]
    agreement = max(
        abs(ours_end[s] - v) / max(abs(v), 1e-3)
        for s, v in zip(("Xv", "Xd", "Glc", "Gln", "Lac", "Amm", "titer", "V"), y_end)
    )

    files = sorted((model.folder / "data").glob("run*.csv"))
    t0 = time.perf_counter()
    fit = biotwin.calibrate(model, files, ["mu_max", "mu_d_max", "Y_X_Glc", "Y_Lac_Glc", "Y_X_Gln", "beta_P"], nfe=60)
    calib_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = optimize_feed(model, "nominal_14d", limits={"V": 1.5, "Lac": 110.0, "Amm": 6.0}, nfe=40)
    opt_s = time.perf_counter() - t0

    print("mab_fedbatch benchmark (nominal 14-day recipe; times in s, same run)")
    print(f"  simulation, cold (build + discretize + forward start + Ipopt, nfe 60): {cold_s:8.2f}")
    print(f"  simulation, warm (parameter change, model reused), median of 5:       {warm_s:8.2f}")
    print(f"  scipy solve_ivp, same equations and recipe (LSODA rtol 1e-8):          {scipy_s:8.2f}")
    print(f"     warm / scipy = {warm_s / scipy_s:.1f}; final states agree to {agreement:.1e} (relative)")
    print(
        f"  calibration, 4 runs, 6 parameters, {fit.n_observations} observations:        {calib_s:8.2f}"
        f"   ({fit.provenance['iterations']} Ipopt iterations)"
    )
    print(
        f"  feed optimization, {len(opt.boluses)} bolus volumes, nfe 40:                  {opt_s:8.2f}"
        f"   ({opt.stats['iterations']} Ipopt iterations, titer {opt.gain_percent:+.1f} %)"
    )


if __name__ == "__main__":
    main()
