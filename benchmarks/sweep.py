"""Sweep benchmark: lyophilization simulations per second, serial (warm) vs 2 Dask workers vs a cold build.

One grid cell (shelf set point 0 degC, 100 mTorr, the explorer's recipe) and ``--points`` samples of
the product resistance and the vial heat transfer (R0 lognormal 20 %, KC normal 7 %), centre vials
only. In the same run:

* serial: ``run_sweep(..., scheduler="serial")``, this process, the model kept warm;
* Dask: ``run_sweep(..., workers=2)``, a ``LocalCluster`` of 2 single-thread worker processes started
  and stopped inside the timing (its start-up and each worker's first, cold solve included);
* cold: ``--cold`` points each on a freshly loaded model (build, discretize, write the NLP, solve):
  what a sweep costs without a kept NLP.

Also: the median per-point time inside the workers, a single warm re-solve of the same recipe for
comparison, and the resident memory of each worker after the sweep.

    python benchmarks/sweep.py [--points 10000] [--cold 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import biotwin
from biotwin.sweep import read_sweep, run_sweep


def spec(points: int) -> dict:
    return {
        "model": "lyophilization",
        "nfe": 60,
        "grid": {"shelf_C": [0.0], "pressure_mTorr": [100.0]},
        "samples": {
            "n": points,
            "method": "lhs",
            "seed": 1,
            "parameters": {
                "R0": {"dist": "lognormal", "median": 1.4, "rsd": 0.2},
                "KC": {"dist": "normal", "mean": 2.75e-4, "sd": 2.0e-5},
            },
        },
        "outputs": ["primary_drying_time_h", "max_T_bottom_C"],
        "chunk": 100,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=10000, help="simulations per sweep")
    parser.add_argument("--cold", type=int, default=10, help="points simulated each on a fresh model")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="biotwin-sweep-bench-"))
    try:
        s = read_sweep(spec(args.points))
        t0 = time.perf_counter()
        serial = run_sweep(s, work / "serial", scheduler="serial")
        serial_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        dask = run_sweep(s, work / "dask", workers=2)
        dask_s = time.perf_counter() - t0
        assert serial.stats["complete"] and dask.stats["complete"]
        a = serial.frame.set_index("point")["primary_drying_time_h@all"]
        b = dask.frame.set_index("point")["primary_drying_time_h@all"]
        diff = float(((a - b).abs() / a.abs()).max())

        model = biotwin.load_model("lyophilization")
        from biotwin.engine.knobs import evaluate, explorer_spec

        knobs = explorer_spec(model)
        values = {"shelf_C": 0.0, "pressure_mTorr": 100.0}
        evaluate(model, knobs, values, s.base_raw, params={"R0": 1.4})
        warm = []
        for k in range(20):
            t0 = time.perf_counter()
            evaluate(model, knobs, values, s.base_raw, params={"R0": 1.4 + 0.005 * k})
            warm.append(time.perf_counter() - t0)
        cold = []
        for k in range(args.cold):
            fresh = biotwin.load_model("lyophilization")
            t0 = time.perf_counter()
            evaluate(fresh, explorer_spec(fresh), values, s.base_raw, params={"R0": 1.4 + 0.005 * k})
            cold.append(time.perf_counter() - t0)

        n = args.points
        rate_serial, rate_dask, rate_cold = n / serial_s, n / dask_s, 1.0 / statistics.median(cold)
        print(f"lyophilization sweep, {n} points (one cell, R0 and KC sampled, nfe 60), this machine:")
        print(f"  serial, warm               {serial_s:8.1f} s  {rate_serial:7.1f} points/s")
        print(
            f"  Dask, 2 workers            {dask_s:8.1f} s  {rate_dask:7.1f} points/s  "
            f"({rate_dask / rate_serial:.2f}x serial; target >= 1.7x)"
        )
        print(
            f"  cold build per point       {statistics.median(cold):8.2f} s  {rate_cold:7.2f} points/s  "
            f"(serial warm is {rate_serial / rate_cold:.0f}x faster)"
        )
        print(
            f"  per point inside workers   median {dask.stats['median_point_s'] * 1e3:.1f} ms; a single warm "
            f"re-solve of the recipe {statistics.median(warm) * 1e3:.1f} ms"
        )
        print(f"  serial vs Dask results: max relative difference {diff:.1e} (warm starts differ)")
        memory = ", ".join(f"{v:.0f} MiB" for k, v in dask.stats["worker_peak_rss_mb"].items() if k != "driver")
        print(f"  peak resident memory per worker: {memory}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
