"""Engine benchmark: build, discretize, initialize and solve a 3-state collocation model.

Prints, for 160, 640 and 2560 finite elements (Radau, 3 points) of the Monod fed-batch test model
(tests/toy_models/monod_switch), the wall time of each stage next to

* Pyomo's own NL writer on the same discretized model -- the floor for any pass over a Pyomo model;
* scipy's solve_ivp (LSODA, rtol 1e-8) on the same equations written by hand,

as ratios from the same run. With ``--mumps N ...`` it also solves at N elements with Ipopt's
default MUMPS scaling, to show why biotwin switches it off (measured here on 2026-11-26: 0.5 s at
160 elements, but 640 elements ran 388 s and failed; Ipopt's max_wall_time did not stop it, so
this is off by default).

    python benchmarks/engine.py [--sizes 160 640 2560] [--mumps 160]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from scipy.integrate import solve_ivp

ROOT = Path(__file__).resolve().parents[1]

import biotwin
from biotwin.engine.simulation import clear_cache, simulate

MODEL = ROOT / "tests" / "toy_models" / "monod_switch"


def nl_writer_seconds(m) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        m.write(os.path.join(tmp, "model.nl"), format="nl")
        return time.perf_counter() - start


def scipy_seconds(p) -> float:
    def rhs(t, y, F):
        X, S, V = y
        mu = p["mu_max"] * S / (p["Ks"] + S)
        return [mu * X - F / V * X, -mu * X / p["Yxs"] + F / V * (p["Sf"] - S), F]

    start = time.perf_counter()
    a = solve_ivp(rhs, (0, 8), [p["X0"], p["S0"], p["V0"]], args=(0.0,), method="LSODA", rtol=1e-8, atol=1e-10)
    solve_ivp(rhs, (8, 20), a.y[:, -1], args=(0.02,), method="LSODA", rtol=1e-8, atol=1e-10)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[160, 640, 2560])
    parser.add_argument(
        "--mumps", type=int, nargs="*", default=[], help="also time Ipopt's default MUMPS scaling at these sizes"
    )
    args = parser.parse_args(argv)
    model = biotwin.load_model(MODEL)
    params = model.parameter_set.values()
    scipy_s = min(scipy_seconds(params) for _ in range(5))
    header = (
        f"{'nfe':>6} {'build':>7} {'compile':>8} {'discr.':>7} {'init':>7} {'solve':>7} {'iters':>5} "
        f"{'total':>7} {'NL wr.':>7} {'warm':>7} {'tot/NL':>7} {'tot/ivp':>8}"
    )
    print("biotwin engine benchmark: Monod fed-batch, 3 states, Radau 3 points; times in s")
    print(f"solve_ivp (LSODA, rtol 1e-8), best of 5: {scipy_s:.4f} s")
    print(header)
    print("-" * len(header))
    for nfe in args.sizes:
        clear_cache(model)
        r = simulate(model, nfe=nfe, ncp=3)
        s = r.stats
        nl = nl_writer_seconds(r.pyomo_model)
        start = time.perf_counter()
        simulate(model, nfe=nfe, ncp=3, params={"mu_max": 0.45})
        warm = time.perf_counter() - start
        print(
            f"{nfe:>6} {s['build_s']:7.3f} {s['template_s']:8.3f} {s['discretize_s']:7.3f} {s['initialize_s']:7.3f} "
            f"{s['solve_s']:7.3f} {s['iterations']:>5} {s['total_s']:7.3f} {nl:7.3f} {warm:7.3f} "
            f"{s['total_s'] / nl:7.1f} {s['total_s'] / scipy_s:8.0f}"
        )
    print("columns: build = model.py build(); compile = sympy right-hand side for the forward integration;")
    print("discr. = collocation transformation; init = forward integration; solve = Ipopt via cyipopt incl.")
    print("NLP set-up; NL wr. = Pyomo NL writer on the discretized model; warm = second call with a new")
    print("parameter value (model reused, warm start); ratios against NL writer and solve_ivp.")
    if args.mumps:
        print("\nIpopt default MUMPS scaling (mumps_scaling/mumps_permuting_scaling left at Ipopt defaults):")
        for nfe in args.mumps:
            clear_cache(model)
            opts = {"mumps_scaling": None, "mumps_permuting_scaling": None, "max_wall_time": 120.0}
            start = time.perf_counter()
            try:
                r = simulate(model, nfe=nfe, ncp=3, options=opts)
                print(f"{nfe:>6}: {time.perf_counter() - start:7.2f} s total, solve {r.stats['solve_s']:.2f} s")
            except biotwin.SolverError as exc:
                print(f"{nfe:>6}: failed after {time.perf_counter() - start:.1f} s ({exc.termination_condition})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
