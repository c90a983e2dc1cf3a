"""Lyophilization benchmark: simulation of case 1 (cold, warm) and cycle optimization.

Next to an independent scipy implementation of the same equations in the same run
(``tests/references/lyophilization_scipy.py``: root finding for the sublimation-front temperature
at each step, LSODA/Radau at rtol 1e-10 -- tighter than needed, so its time is an upper bound of
what scipy needs; a second run at rtol 1e-6 is printed too). The scipy counterpart of the
optimization is the exact greedy policy (shelf as warm as the product limit allows at every moment),
which is the optimum when only the temperature limit is active.

It starts with the cold case the model-folder contract promises (#13): ``model.simulate`` of case 1 with
the defaults, timed inside fresh Python processes -- once with an empty compile cache (the first run on a
machine: sympy imported, the equations compiled) and then with the cache that run wrote
(:mod:`biotwin.engine.compile_cache`), against the target of 1 s.

    python benchmarks/lyophilization.py [--repeats 5] [--fresh 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import biotwin
from biotwin.core.programs import Program
from biotwin.tools.notebooks import repository_reference


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


FRESH = """
import json, time
t0 = time.perf_counter()
import biotwin
t1 = time.perf_counter()
model = biotwin.load_model("lyophilization")
t2 = time.perf_counter()
result = model.simulate(scenario="case1_standard")
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "simulate_s": t3 - t2, "template_s": result.stats["template_s"],
                  "drying_h": model.summary(result)["primary_drying_time_h"]}))
"""


def fresh_processes(count: int) -> None:
    """``model.simulate(scenario="case1_standard")`` in fresh processes: empty compile cache, then warm."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "BIOTWIN_CACHE_DIR": cache}
        env.pop("BIOTWIN_COMPILE_CACHE", None)
        runs = []
        for _ in range(count + 1):
            out = subprocess.run([sys.executable, "-c", FRESH], env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, warm = runs[0], runs[1:]
    median = statistics.median(r["simulate_s"] for r in warm)
    print("case 1, model.simulate with the defaults in a fresh process (import and load_model not included):")
    print(
        f"  empty compile cache     {first['simulate_s']:7.3f} s   (compiling {first['template_s']:.3f} s; "
        f"import biotwin {first['import_s']:.2f} s)"
    )
    print(
        f"  compile cache written   {median:7.3f} s   median of {len(warm)} processes, min "
        f"{min(r['simulate_s'] for r in warm):.3f} s; target < 1 s; ratio to empty cache "
        f"{median / first['simulate_s']:.2f}"
    )
    if len({r["drying_h"] for r in runs}) != 1:
        raise SystemExit(f"drying times differ between processes: {[r['drying_h'] for r in runs]}")
    print(f"  same drying time in every process: {first['drying_h']:.6f} h")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="warm simulations timed (median)")
    parser.add_argument("--nfe", type=int, default=120, help="finite elements of the case-1 simulation")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes timed with the compile cache")
    args = parser.parse_args(argv)
    fresh_processes(args.fresh)

    model = biotwin.load_model("lyophilization")
    ref = repository_reference("lyophilization_scipy")
    sc = model.load_scenario("case1_standard")
    shelf = Program.from_points("T_shelf", sc.inputs["T_shelf"]["points"])
    pressure = Program.from_points("P_chamber", sc.inputs["P_chamber"]["points"], scale=1e-3)
    p = model.parameter_values()

    cold, result = timed(lambda: model.simulate(scenario="case1_standard", nfe=args.nfe))
    t_dry = model.summary(result)["primary_drying_time_h"]
    # warm re-solves with a changed parameter. On the fixed grid (mesh_tol=None) the kept NLP is
    # re-solved; with mesh refinement (the default) each parameter value is integrated first and may
    # get a grid of its own, which is a new discretization (a cold build).
    fixed, refined = [], []
    for k in range(args.repeats):
        params = {"R0": 1.4 * (1 + 0.01 * (k + 1))}
        dt, _ = timed(
            lambda params=params: model.simulate(scenario="case1_standard", nfe=args.nfe, params=params, mesh_tol=None)
        )
        fixed.append(dt)
        dt, _ = timed(lambda params=params: model.simulate(scenario="case1_standard", nfe=args.nfe, params=params))
        refined.append(dt)
    warm_s, warm = statistics.median(fixed), fixed
    scipy_tight, out = timed(lambda: ref.simulate(p, lambda t: shelf(t)[0], lambda t: pressure(t)[0], sc.t_end))
    scipy_loose, _ = timed(
        lambda: ref.simulate(p, lambda t: shelf(t)[0], lambda t: pressure(t)[0], sc.t_end, rtol=1e-6)
    )
    print(f"case 1 simulation, primary + secondary drying to {sc.t_end} h ({args.nfe} elements x 3 Radau points):")
    print(f"  biotwin cold            {cold:7.3f} s   (drying time {t_dry:.5f} h)")
    print(f"  biotwin warm (median {args.repeats}) {warm_s:7.3f} s   min {min(warm):.3f} s; target < 1 s (fixed grid)")
    print(
        f"  biotwin new R0, refined grid (median {args.repeats}) {statistics.median(refined):7.3f} s"
        f"   (ratio to fixed-grid warm {statistics.median(refined) / warm_s:.1f})"
    )
    print(f"  scipy rtol 1e-10        {scipy_tight:7.3f} s   (drying time {out['t_dry']:.5f} h)")
    print(f"  scipy rtol 1e-6         {scipy_loose:7.3f} s")
    print(f"  ratio warm / scipy(1e-10) {warm_s / scipy_tight:.2f}; cold / warm {cold / warm_s:.2f}")

    opt_s, opt = timed(lambda: model.module.optimize(model, "optimize_case1_lyopronto"))
    greedy_s, greedy = timed(lambda: ref.greedy_fastest_drying(p, 268.15, 0.15, (228.15, 393.15)))
    print(
        "cycle optimization (optimize_case1_lyopronto, LyoPRONTO's example: T_bottom <= -5 degC, 398 vials, shelf -45..120 degC, 40 elements):"
    )
    print(
        f"  biotwin NLP solve + setup {opt.stats['optimization_wall_time_s']:7.3f} s   "
        f"({opt.stats['iterations']} Ipopt iterations; drying time {opt.drying_time_h:.5f} h)"
    )
    print(f"  biotwin incl. start simulation and re-simulation check {opt_s:7.3f} s; target < 10 s")
    print(f"  scipy greedy policy       {greedy_s:7.3f} s   (drying time {greedy['t_dry']:.5f} h)")
    print(
        f"  ratio optimization / greedy {opt.stats['optimization_wall_time_s'] / greedy_s:.1f}; "
        f"optimum vs greedy drying time {opt.drying_time_h / greedy['t_dry'] - 1:+.2e}"
    )


if __name__ == "__main__":
    main()
