"""Mesh refinement benchmark: accuracy and cost of refining the grid from the forward integration.

For each case, simulates on the fixed grid (``mesh_tol=None``) and on the refined grid (default
``mesh_tol``), each cold (cache cleared), and prints the elements, the wall time, the largest deviation
from an adaptive integrator (LSODA, rtol 1e-10) on the same equations at the output points, as a share of
each state's range, and the final value of one quantity next to the integrator's. Ratios refined/fixed
are from the same process.

Cases: the CHO culture's shipped nominal recipe (smooth: the refinement should add nothing) and its
starved explorer corner (bolus volumes x0.05 at 1e6 cells/mL: glucose runs out at high density), HEK293
batch transfection and lyophilization case 1.

    python benchmarks/mesh.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import biotwin
from biotwin.core.errors import BiotwinError
from biotwin.engine.knobs import explorer_spec
from biotwin.engine.simulation import Simulation, clear_cache


def starved_corner(model):
    spec = explorer_spec(model)
    raw = dict(model.load_scenario(spec.scenario).raw)
    for knob in spec.knobs:
        if knob.apply is not None:
            raw = knob.apply(raw, {"feed_factor": 0.05, "seeding": 1.0}[knob.name])
    return raw


def reference(model, scenario, nfe, times):
    sim = Simulation(model, scenario, nfe=nfe, mesh_tol=None)
    integ = sim.discretization.integrator
    names = [s.local_name for s in integ.states]
    return names, integ.integrate(sim.programs, times, rtol=1e-10)["x"]


def run(model, scenario, nfe, tol, quantity):
    clear_cache(model)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = model.simulate(scenario, nfe=nfe, mesh_tol=tol)
    except BiotwinError as exc:
        return {"error": str(exc).split(".")[0], "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    w = result.wide
    names, ref = reference(model, scenario, nfe, w["time"].to_numpy())
    err = np.abs(w[names].to_numpy() - ref) / np.maximum(np.abs(ref).max(axis=0), 1e-12)
    return {
        "elements": result.stats["n_elements"],
        "wall_s": wall,
        "deviation": float(err.max()),
        "final": float(w[quantity].iloc[-1]),
        "final_ref": float(ref[-1, names.index(quantity)]),
    }


def main():
    mab = biotwin.load_model("mab_fedbatch")
    cases = [
        ("CHO nominal_14d", mab, "nominal_14d", 40, "titer"),
        ("CHO starved corner", mab, starved_corner(mab), 40, "titer"),
        ("HEK293 batch_transfection", biotwin.load_model("hek293_vlp"), "batch_transfection", 50, "VLP"),
        ("lyophilization case1", biotwin.load_model("lyophilization"), "case1_standard", 50, "Lck"),
    ]
    print(
        f"{'case':28s} {'grid':8s} {'elements':>8s} {'wall [s]':>9s} {'deviation':>10s} {'final':>10s} {'LSODA':>10s}"
    )
    for label, model, scenario, nfe, quantity in cases:
        rows = {}
        for name, tol in (("fixed", None), ("refined", 1e-4)):
            rows[name] = r = run(model, scenario, nfe, tol, quantity)
            if "error" in r:
                print(f"{label:28s} {name:8s} {'':>8s} {r['wall_s']:9.2f} refused: {r['error'][:60]}")
                continue
            print(
                f"{label:28s} {name:8s} {r['elements']:8d} {r['wall_s']:9.2f} {r['deviation']:10.1e} "
                f"{r['final']:10.5g} {r['final_ref']:10.5g}"
            )
        if "error" not in rows["fixed"] and "error" not in rows["refined"]:
            print(
                f"{'':28s} refined/fixed: wall x{rows['refined']['wall_s'] / rows['fixed']['wall_s']:.2f}, "
                f"deviation x{rows['refined']['deviation'] / max(rows['fixed']['deviation'], 1e-300):.2g}"
            )


if __name__ == "__main__":
    main()
