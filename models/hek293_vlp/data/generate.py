"""Generate the synthetic example experiments of the HEK293 VLP model.

SYNTHETIC DATA. Four transient-transfection runs (different cell densities at transfection, DNA
doses, one with a medium exchange) are simulated with the "true" parameters below (which differ
from the defaults in parameters.yaml, as a real process would) on a fine grid, sampled like a real
process (daily plus at transfection and 12 h after it; 2 mL per sample), and perturbed with the
noise model below. Run from the repository root:

    python models/hek293_vlp/data/generate.py

It rewrites run1..run4.csv/.yaml in this folder; the seed makes the output reproducible.

Noise model (independent normal errors, sigma reported in <name>_sigma columns):
  Xv          8 % of the value (cell counter), at least 0.02 Mcell/mL
  viability   2 percentage points (clipped at 100 %, as a cell counter reports)
  Glc, Lac    5 % of the value, at least 0.1 mM (enzymatic analyser)
  Amm         8 % of the value, at least 0.05 mM
  VLP         15 % of the value, at least 0.005 Gvp/mL (nanoparticle tracking analysis)
VLP is counted from 12 h after transfection on; lactate and ammonia are not assayed in fresh medium.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import biotwin
from biotwin.core.data import noisy_measurements

HERE = Path(__file__).resolve().parent
SEED = 20261127
TRUE_PARAMETERS = {
    "mu_max": 0.032,  # 1/h          (default 0.035)
    "Y_X_Glc": 1.7e9,  # cell/mmol    (1.5e9)
    "Y_Lac_Glc": 1.3,  # -            (1.4)
    "k_expr": 75.0,  # vp/cell/h    (100)
    "k_tox": 3.0e-3,  # 1/h/(pg/cell) (2e-3)
    "K_burden": 1.5,  # pg/cell      (2.0)
}
NOISE = {  # variable: (relative sd, minimum sd)
    "Xv": (0.08, 0.02),
    "viability": (0.0, 2.0),
    "Glc": (0.05, 0.1),
    "Lac": (0.05, 0.1),
    "Amm": (0.08, 0.05),
    "VLP": (0.15, 0.005),
}
RUNS = {  # run: (transfection time [h], DNA [pg/cell], medium exchange 6 h later)
    "run1": (40.0, 1.0, False),
    "run2": (30.0, 0.5, False),
    "run3": (52.0, 1.5, False),
    "run4": (40.0, 1.0, True),
}
DURATION_H = 136.0


def recipe_for(run, t_tf, dna, exchange, sample_times):
    base = yaml.safe_load((HERE.parent / "scenarios" / "batch_transfection.yaml").read_text())
    recipe = copy.deepcopy(base)
    recipe["description"] = f"SYNTHETIC {run}: transfected at {t_tf:g} h with {dna:g} pg DNA/cell" + (
        ", medium exchange 6 h later" if exchange else ""
    )
    recipe["duration"] = DURATION_H
    recipe["transfections"] = [{"time": t_tf, "dna": f"{dna} pg/cell"}]
    if exchange:
        recipe["medium_exchanges"] = [{"time": t_tf + 6.0, "fraction": 1.0}]
    recipe["samples"] = {"times": [t for t in sample_times if 0 < t < DURATION_H], "volume": "0.002 L"}
    return recipe


def main():
    rng = np.random.default_rng(SEED)
    model = biotwin.load_model(HERE.parent)
    for run, (t_tf, dna, exchange) in RUNS.items():
        times = sorted({0.0, 24.0, 48.0, 72.0, 96.0, 120.0, DURATION_H, t_tf - 0.5, t_tf + 12.0})
        # a sample is a 0.1 h withdrawal starting at its time; the measurement is taken at its start
        recipe = recipe_for(run, t_tf, dna, exchange, times)
        result = model.simulate(scenario=recipe, params=TRUE_PARAMETERS, times=times[1:], nfe=400)
        first = model.simulate(scenario=recipe, params=TRUE_PARAMETERS, nfe=50).wide.iloc[0]
        truth = result.wide
        frame = {"time": times}
        true = {var: np.concatenate([[first[var]], truth[var].to_numpy()]) for var in NOISE}
        frame.update(noisy_measurements(true, NOISE, rng))
        frame["viability"] = np.minimum(frame["viability"], 100.0)  # a counter reports at most 100 %
        table = pd.DataFrame(frame)
        table.loc[0, ["Lac", "Lac_sigma", "Amm", "Amm_sigma"]] = np.nan
        table.loc[table["time"] < t_tf + 12.0, ["VLP", "VLP_sigma"]] = np.nan
        table.to_csv(HERE / f"{run}.csv", index=False)
        (HERE / f"{run}.yaml").write_text(
            "# SYNTHETIC: recipe of "
            + run
            + " (see README.md)\n"
            + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None, width=200)
        )
        print(f"wrote {run}.csv ({len(times)} samples) and {run}.yaml")


if __name__ == "__main__":
    main()
