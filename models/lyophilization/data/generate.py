"""Generate the synthetic Karl Fischer example of the lyophilization model.

SYNTHETIC DATA. One cycle (LyoPRONTO's case 1 recipe, then the shelf raised from 20 to 40 degC over
0.4 h from 7.5 h and held to 16 h, 150 mTorr throughout) simulated with the "true" desorption constants below (not the
proposed values of parameters.yaml, as a real product's would differ) on a fine grid (240 elements).
Vials pulled at 12 times after the ice is gone (a sample thief) are read by Karl Fischer titration with
independent normal errors of 0.1 % w/w (residual moisture, % of the dried product's mass). Run from the
repository root:

    python models/lyophilization/data/generate.py               # rewrites karl_fischer_synthetic.csv/.yaml
    python models/lyophilization/data/generate.py --coverage 100  # fits 100 noise replicates instead

The seed makes the output reproducible. ``--coverage N`` fits k_des and Ea_des to N replicates of the
readings (seeds 0..N-1) and prints how many 95 % intervals hold the true constants, and the estimates'
mean and spread (measured: 100 replicates, 120 elements -> see the model card).

Data format (the calibration format, read by ``biotwin.calibrate`` and ``biotwin calibrate``):
``time`` [h from the start of primary drying], ``residual_moisture`` [% w/w], ``residual_moisture_sigma``
[% w/w]; the cycle's recipe in the ``.yaml`` of the same name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import biotwin

HERE = Path(__file__).resolve().parent
SEED = 20261207
TRUE_PARAMETERS = {"k_des": 0.8, "Ea_des": 60.0}  # 1/h at 40 degC (proposed 0.5); kJ/mol (proposed 40)
# vials pulled after the ice is gone (6.65 h): a titration of a vial pulled earlier would count its ice, which
# the model's residual moisture (bound water) leaves out
TIMES_H = [7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 11.0, 12.0, 13.0, 14.0, 16.0]
SIGMA = 0.1  # % w/w
FIT_NFE = 120  # elements of the fits (noise-free points: Ea_des off by -1.1 / +0.33 / +0.71 kJ/mol at 60 / 120 / 160)


def recipe(model) -> dict:
    """Case 1 with a secondary-drying hold at 40 degC."""
    raw = dict(model.load_scenario("case1_standard").raw)
    raw["description"] = (
        "SYNTHETIC Karl Fischer example: LyoPRONTO case 1, then the shelf at 40 degC from 7.9 h to 16 h "
        "(models/lyophilization/data/generate.py)"
    )
    shelf = [[0, -35], [0.9166667, 20], [7.5, 20], [7.9, 40], [16, 40]]  # [h, degC]
    return model.module.with_programs(raw, shelf, [[0, 150], [16, 150]])  # pressure [h, mTorr]


def exact_moisture(model, cycle, truth=TRUE_PARAMETERS, nfe=240) -> np.ndarray:
    """Residual moisture [% w/w] of the cycle run with ``truth`` at ``TIMES_H``."""
    result = model.simulate(scenario=cycle, params=truth, nfe=nfe)
    return np.array([result.interpolate(t)["residual_moisture"] for t in TIMES_H])


def karl_fischer(exact, seed=SEED, sigma_only=False) -> pd.DataFrame:
    """The Karl Fischer readings: ``exact`` with independent normal errors of ``SIGMA`` (``sigma_only``:
    without the errors, only their stated size)."""
    noise = np.zeros(len(TIMES_H)) if sigma_only else np.random.default_rng(seed).normal(0.0, SIGMA, len(TIMES_H))
    return pd.DataFrame({"time": TIMES_H, "residual_moisture": exact + noise, "residual_moisture_sigma": SIGMA})


def coverage(model, cycle, replicates) -> None:
    """Print how often the fits' 95 % intervals hold the true constants over noise replicates."""
    exact = exact_moisture(model, cycle)
    held, values = dict.fromkeys(TRUE_PARAMETERS, 0), {name: [] for name in TRUE_PARAMETERS}
    for seed in range(replicates):
        data = [(karl_fischer(exact, seed=seed), cycle)]
        fit = biotwin.calibrate(model, data, list(TRUE_PARAMETERS), nfe=FIT_NFE, bands=False).table()
        for name, value in TRUE_PARAMETERS.items():
            held[name] += bool(fit.loc[name, "ci95_low"] < value < fit.loc[name, "ci95_high"])
            values[name].append(fit.loc[name, "value"])
        print(f"replicate {seed + 1}/{replicates}: held {held}", flush=True)
    for name, value in TRUE_PARAMETERS.items():
        v = np.asarray(values[name])
        print(
            f"{name}: truth {value:g}, 95 % intervals held it in {held[name]}/{replicates}; "
            f"estimates {v.mean():.4g} +- {v.std(ddof=1):.3g} (mean +- sd)"
        )


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", type=int, metavar="N", help="fit N noise replicates instead of writing files")
    args = parser.parse_args()
    model = biotwin.load_model("lyophilization")
    cycle = recipe(model)
    if args.coverage:
        coverage(model, cycle, args.coverage)
        return
    frame = karl_fischer(exact_moisture(model, cycle))
    frame.round(4).to_csv(HERE / "karl_fischer_synthetic.csv", index=False)
    text = "# SYNTHETIC: the cycle of karl_fischer_synthetic.csv (see generate.py)\n" + yaml.safe_dump(
        cycle, sort_keys=False, default_flow_style=None, width=120
    )
    (HERE / "karl_fischer_synthetic.yaml").write_text(text)
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
