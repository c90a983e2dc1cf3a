"""HEK293 VLP benchmark: simulation (cold, warm), calibration and transfection optimization.

Next to a scipy solve_ivp implementation of the same equations (written here with numpy, LSODA at
rtol 1e-8, integrated between the recipe's corners) in the same run; the final titers are printed
side by side as a check that both solve the same model.

    python benchmarks/hek293_vlp.py
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parents[1]

import itertools

import biotwin
from biotwin.core.programs import Program

AVOGADRO, BP = 6.02214076e23, 650.0


def scipy_simulation(model, scenario):
    """The model card's equations (models/hek293_vlp/model.py docstring) with numpy, LSODA between the
    recipe's corners; returns (final state, names)."""
    sc = model.load_scenario(scenario)
    p = model.parameter_values(sc.parameters)
    progs = {k: Program.from_points(k, v["points"], "bench") for k, v in sc.inputs.items()}
    copies_per_pg = AVOGADRO / (p["plasmid_bp"] * BP) * 1e-12
    eta = p["PEI_DNA_ratio"] / (p["K_PEI"] + p["PEI_DNA_ratio"]) * (p["K_PEI"] + 2) / 2

    def pos(c, eps):
        return 0.5 * (c + math.sqrt(c * c + eps * eps))

    def sw(c, centre, width):
        x = (c - centre) / width
        return 0.5 * (1 + x / math.sqrt(1 + x * x))

    names = [
        "Xv",
        "Xd",
        "Glc",
        "Gln",
        "Lac",
        "Amm",
        "V",
        "DNA_med",
        "DNA_endo",
        "DNA_cyto",
        "DNA_nuc",
        "PEI_med",
        "PEI_cell",
        "M_cond",
        "Gag",
        "Asm",
        "VLP",
    ]
    per_cell_medium = sc.settings.get("plasmid_medium") == "per_cell"

    def rhs(t, y, side):
        Xv, Xd, Glc, Gln, Lac, Amm, V, Dm, De, Dc, Dn, Pm, Pc, M, Gag, Asm, VLP = y
        u = {k: progs[k](t, side)[0] for k in progs}
        Fb, Fo, Dex, dose = u.get("F_bolus", 0.0), u.get("F_out", 0.0), u.get("D_ex", 0.0), u.get("DNA_dose", 0.0)
        e = p["C_eps"]
        xv = pos(Xv, 1e-9)
        pei = pos(Pc / xv, 1e-9)  # pg/cell: ug/mL over Mcell/mL
        nuc = pos(Dn / xv, 1e-9)  # copies/cell: copies/nL over Mcell/mL
        G, Q, L, A = pos(Glc, e), pos(Gln, e), pos(Lac, e), pos(Amm, e)
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
            * p["K_burden"]
            / (p["K_burden"] + pei)
        )
        mud = p["mu_d_max"] * L / (p["KD_Lac"] + L) * A / (p["KD_Amm"] + A) + p["k_tox"] * pei
        qg = p["m_Glc"] * sw(Glc, p["C_exh"], p["W_exh"]) + mu / p["Y_X_Glc"]
        qq = p["a1_Gln"] * Q / (p["a2_Gln"] + Q) + mu / p["Y_X_Gln"]
        ql = p["Y_Lac_Glc"] * qg - p["q_Lac_up"] * (1 - sw(Glc, p["Glc_switch"], p["W_switch"])) * L / (
            p["K_Lac_up"] + L
        )
        qa = p["Y_Amm_Gln"] * mu / p["Y_X_Gln"] - p["r_Amm"] * sw(Amm, p["C_exh"], p["W_exh"])
        X = Xv * 1e9  # cells/L
        D = Fb / V
        fT = p["f_max"] * nuc / (nuc + p["K_T"])
        per_t = (nuc + p["K_T"]) / p["f_max"]
        qgag = (
            p["k_expr"]
            * fT
            * per_t
            / (p["K_nuc"] + per_t)
            * (p["alpha_phys"] + (1 - p["alpha_phys"]) * mu / p["mu_max"])
        )
        g_cond = 1 / (1 + (pos(M, 1e-9) / p["K_cond"]) ** p["n_cond"])
        up = eta * g_cond * p["k_uptake"] * Dm * copies_per_pg  # copies/nL/h: ug/mL x copies/pg
        leave = p["k_pdeg"] + mud + D
        return [
            (mu - mud - D) * Xv,
            mud * Xv - (p["k_lys"] + D) * Xd,
            -qg * X + Fb / V * (u.get("Glc_bolus", 0) - Glc) + Dex * (p["Glc_medium"] - Glc),
            -qq * X - p["d_Gln"] * Gln + Fb / V * (u.get("Gln_bolus", 0) - Gln) + Dex * (p["Gln_medium"] - Gln),
            ql * X - (D + Dex) * Lac,
            qa * X + p["d_Gln"] * Gln - (D + Dex) * Amm,
            Fb - Fo,
            dose * Xv - up / copies_per_pg - (p["k_inact"] + Dex + D) * Dm + (mu - mud) * Dm * per_cell_medium,
            up - (p["k_escape"] + leave) * De,  # copies/nL/h (the line above: ug/mL/h)
            p["k_escape"] * De - (p["k_nuclear"] + leave) * Dc,
            p["k_nuclear"] * Dc - leave * Dn,
            p["PEI_DNA_ratio"] * dose * Xv - (p["k_PEI_bind"] + Dex + D) * Pm,  # ug/mL/h
            p["k_PEI_bind"] * Pm - (p["k_PEI_clear"] + mud + D) * Pc,
            Xv - (Dex + D) * M,  # Mcell h/mL per h
            qgag - (p["k_asm"] + p["k_gdeg"] + mu) * Gag,
            p["k_asm"] * Gag - (p["k_bud"] + mu) * Asm,
            p["k_bud"] * Asm * Xv * 1e-3 - (p["k_vdeg"] + D + Dex) * VLP,
        ]  # Mcell/mL * vp/cell -> Gvp/mL

    y0 = [p.get(f"{n}0", 0.0) for n in names]
    corners = sorted({0.0, sc.t_end} | {c for prog in progs.values() for c in prog.corners if 0 < c < sc.t_end})
    y = np.array(y0, dtype=float)
    for a, b in itertools.pairwise(corners):  # inputs are linear between corners: right limit at the start
        sol = solve_ivp(
            lambda t, yy, a=a: rhs(t, yy, "right" if t <= a else "left"),
            (a, b),
            y,
            method="LSODA",
            rtol=1e-8,
            atol=1e-10,
        )
        y = sol.y[:, -1]
    return y, names


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    model = biotwin.load_model("hek293_vlp")
    cold, run = timed(lambda: model.simulate(scenario="batch_transfection", nfe=68))
    warm = [
        timed(
            lambda k=k: model.simulate(
                scenario="batch_transfection", nfe=68, params={"k_expr": 100.0 * (1 + 0.01 * (k + 1))}
            )
        )[0]
        for k in range(5)
    ]
    warm_s = statistics.median(warm)
    scipy_s, (y, names) = timed(lambda: scipy_simulation(model, "batch_transfection"))
    ours = run.wide.iloc[-1]
    print("batch_transfection, 136 h (68 elements x 3 Radau points):")
    print(f"  biotwin cold {cold:.3f} s, warm median of 5 {warm_s:.3f} s (target < 0.2 s)")
    print(f"  scipy LSODA rtol 1e-8 {scipy_s:.3f} s; ratio warm/scipy {warm_s / scipy_s:.1f}")
    for name in ("Xv", "Glc", "Lac", "P_nuc", "VLP"):
        theirs = y[names.index(name)]
        print(
            f"    final {name:5s} biotwin {ours[name]:.6g}  scipy {theirs:.6g}  rel diff {ours[name] / theirs - 1:+.1e}"
        )
    files = sorted((model.folder / "data").glob("run*.csv"))
    cal_s, fit = timed(
        lambda: biotwin.calibrate(
            model, files, ["mu_max", "Y_X_Glc", "Y_Lac_Glc", "k_expr", "k_tox", "K_burden"], nfe=60
        )
    )
    print(f"calibration, 4 runs, 6 parameters, {fit.n_observations} observations: {cal_s:.1f} s")
    tools = model.submodule("transfection_optimization")
    opt_s, best = timed(
        lambda: tools.optimize_transfection(model, "batch_transfection", min_viability=85.0, max_evaluations=20)
    )
    print(
        f"transfection optimization: {opt_s:.1f} s for {best.stats['evaluations']} simulations "
        f"({opt_s / best.stats['evaluations']:.2f} s each, warm on one 2-h grid); "
        f"titer {best.nominal['titer_per_mL']:.3e} -> {best.titer_per_mL:.3e} vp/mL; "
        f"one scipy simulation {scipy_s:.2f} s"
    )


if __name__ == "__main__":
    main()
