"""The live twin on the CHO fed-batch: forecast coverage over replicates, false and true alarms, speed.

Truth: mu_max +15 %, beta_P -15 % against parameters.yaml; hourly glucose/lactate (sd 0.7 mM), daily
cell count and titer (5 %). For each replicate (its own noise): the forecast of the final titer made
at day 7 (error and whether its 95 % band holds the truth), the alarms over the whole batch (none is
right), and the update times. Then the same with the day-8.5 glucose top-up missed (an alarm within
24 h is right). Baseline in the same run: re-calibrating from scratch on all data up to day 7 (the
naive way to keep a model in step).

Then, per model, the update time of the EKF and of moving-horizon estimation on the same stream in the
same run: lyophilization (SYNTHETIC case-1 batch, vial bottom every 0.02 h for 3 h, R0 and A1 estimated)
and HEK293 (SYNTHETIC batch_transfection, daily count, metabolites and titer, k_expr estimated).

    python benchmarks/twin.py --replicates 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

import biotwin
from biotwin.core.data import Experiment
from biotwin.twin.streams import replay, synthetic_stream

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = {"Glc": (1, 0.7, 0), "Lac": (1, 0.7, 0), "Xv": (24, 0, 0.05), "titer": (24, 0.005, 0.05)}


def run(model, recipe, stream, until=None, **options):
    twin = biotwin.Twin(model, "nominal_14d", estimate=["mu_max", "beta_P"], **options)
    alarms, at_day7 = [], None
    for rows in replay(stream if until is None else stream[stream["time"] <= until]):
        update = twin.update(rows)
        alarms += update.alarms
        if update.time == 168.0:
            at_day7 = update
    return twin, alarms, at_day7


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--mhe-replicates", type=int, default=3, help="replicates also run with the moving horizon")
    parser.add_argument("--window", type=int, default=8, help="rows in the moving horizon")
    args = parser.parse_args()
    model = biotwin.load_model("mab_fedbatch")
    p = model.parameter_set
    truth_p = {"mu_max": 1.15 * p["mu_max"].value, "beta_P": 0.85 * p["beta_P"].value}
    covered, errors, false_alarms, walls, forecast_s, mhe_rows = 0, [], 0, [], [], []
    for seed in range(args.replicates):
        stream, truth_run = synthetic_stream(model, "nominal_14d", truth_p, SCHEDULE, seed=100 + seed)
        final = truth_run["titer"].iloc[-1]
        twin, alarms, day7 = run(model, "nominal_14d", stream)
        t0 = time.perf_counter()
        fc = day7.forecast()
        forecast_s.append(time.perf_counter() - t0)
        end = fc[fc["variable"] == "titer"].iloc[-1]
        covered += end.lo95 <= final <= end.hi95
        errors.append(end.value / final - 1)
        false_alarms += len(alarms)
        walls += [h.update_s for h in twin.history]
        if seed < args.mhe_replicates:  # the same stream through the moving horizon, to day 7
            mhe, _, mhe7 = run(model, "nominal_14d", stream, until=168.0, method="mhe", window=args.window)
            mhe_end = mhe7.forecast().query("variable == 'titer'").iloc[-1]
            mhe_rows.append(
                {
                    "forecast_diff": mhe_end.value / end.value - 1,
                    "band_ratio": (mhe_end.hi95 - mhe_end.lo95) / (end.hi95 - end.lo95),
                    "covered": mhe_end.lo95 <= final <= mhe_end.hi95,
                    "mu_max": (day7.parameters["mu_max"][0], mhe7.parameters["mu_max"][0]),
                    "walls": [h.update_s for h in mhe.history],
                    "ekf_walls": [h.update_s for h in twin.history if h.time <= 168.0],
                }
            )
        print(
            f"replicate {seed:2d}: day-7 forecast {end.value:.4f} [{end.lo95:.4f}, {end.hi95:.4f}] g/L, truth "
            f"{final:.4f} ({100 * errors[-1]:+.1f} %); alarms {len(alarms)}"
        )
    print(
        f"\nday-7 forecast of the final titer: 95 % band covers the truth in {covered}/{args.replicates}; "
        f"error median {100 * np.median(np.abs(errors)):.1f} %, max {100 * np.max(np.abs(errors)):.1f} %"
    )
    print(f"false alarms (noise only): {false_alarms} in {args.replicates} batches of 337 updates")
    print(
        f"update time: median {1e3 * np.median(walls):.0f} ms, max {1e3 * np.max(walls):.0f} ms; "
        f"forecast to day 14 {np.median(forecast_s):.2f} s (median)"
    )

    if mhe_rows:
        mhe_walls = np.concatenate([r["walls"] for r in mhe_rows])
        ekf_walls = np.concatenate([r["ekf_walls"] for r in mhe_rows])
        print(
            f"moving horizon ({args.window} rows, up to 3 Gauss-Newton iterations per update) against the EKF, "
            f"{len(mhe_rows)} replicates to day 7: day-7 forecast of the final titer differs by at most "
            f"{100 * max(abs(r['forecast_diff']) for r in mhe_rows):.3f} %, band width ratio "
            f"{min(r['band_ratio'] for r in mhe_rows):.3f}-{max(r['band_ratio'] for r in mhe_rows):.3f}, covers the "
            f"truth in {sum(r['covered'] for r in mhe_rows)}/{len(mhe_rows)}; mu_max at day 7 (EKF, MHE) "
            f"{[tuple(round(v, 5) for v in r['mu_max']) for r in mhe_rows]}; update median "
            f"{1e3 * np.median(mhe_walls):.0f} ms (max {1e3 * np.max(mhe_walls):.0f} ms) against the EKF's "
            f"{1e3 * np.median(ekf_walls):.0f} ms in the same run (ratio {np.median(mhe_walls) / np.median(ekf_walls):.1f})"
        )

    recipe = yaml.safe_load((ROOT / "models" / "mab_fedbatch" / "scenarios" / "nominal_14d.yaml").read_text())
    recipe["boluses"] = [b for b in recipe["boluses"] if b["time"] != 8.5]
    delays = []
    for seed in range(min(args.replicates, 5)):
        stream, _ = synthetic_stream(model, recipe, truth_p, SCHEDULE, seed=200 + seed)
        _, alarms, _ = run(model, recipe, stream, until=228.0)
        first = min((a["update_time"] for a in alarms if a["update_time"] >= 204.0), default=None)
        delays.append(None if first is None else first - 204.0)
    print(f"missed top-up at 204 h: alarm delays {delays} h")

    stream, _ = synthetic_stream(model, "nominal_14d", truth_p, SCHEDULE, seed=100)
    exp = Experiment.from_frame(stream[stream["time"] <= 168.0], "day7", scenario="nominal_14d")
    t0 = time.perf_counter()
    fit = biotwin.calibrate(model, exp, ["mu_max", "beta_P"], nfe=60)
    naive = time.perf_counter() - t0
    print(
        f"baseline: re-calibrating from scratch on the day-7 data took {naive:.1f} s "
        f"(mu_max {fit.parameters['mu_max']['value']:.5f}, beta_P {fit.parameters['beta_P']['value']:.3f}); "
        f"the twin's median update is {naive / np.median(walls):.0f}x faster"
    )
    other_models(args.window)


def other_models(window: int) -> None:
    """Median and maximum update time of the EKF and the moving horizon on the other model folders."""
    cases = [
        ("lyophilization", "case1_standard", {"R0": 1.0, "A1": 12.0}, {"T_bottom": (0.02, 0.3, 0)}, 3.0, ["R0", "A1"]),
        (
            "hek293_vlp",
            "batch_transfection",
            {"k_expr": 120.0},
            {"Xv": (24, 0, 0.05), "Glc": (24, 0.3, 0), "Lac": (24, 0.3, 0), "Gln": (24, 0.1, 0), "VLP": (24, 0, 0.1)},
            None,
            ["k_expr"],
        ),
    ]
    for name, recipe, truth_p, schedule, t_end, estimate in cases:
        model = biotwin.load_model(name)
        stream, _ = synthetic_stream(model, recipe, truth_p, schedule, t_end=t_end, seed=1)
        walls = {}
        for method in ("ekf", "mhe"):
            twin = biotwin.Twin(model, recipe, estimate=estimate, method=method, window=window)
            for rows in replay(stream):
                twin.update(rows)
            walls[method] = [h.update_s for h in twin.history]
        ekf, mhe = (np.array(walls[m]) for m in ("ekf", "mhe"))
        print(
            f"{name}: {len(ekf)} updates; EKF median {1e3 * np.median(ekf):.0f} ms (max {1e3 * ekf.max():.0f} ms), "
            f"moving horizon ({window} rows) median {1e3 * np.median(mhe):.0f} ms (max {1e3 * mhe.max():.0f} ms); "
            f"ratio {np.median(mhe) / np.median(ekf):.1f}"
        )


if __name__ == "__main__":
    main()
