"""Generate the synthetic example experiments of the mAb fed-batch model.

SYNTHETIC DATA. Four 14-day fed-batch runs with different feeding strategies are simulated
with the "true" parameters below (which differ from the Xing et al. 2010 defaults in
parameters.yaml, as a real process would) on a fine grid (400 elements), sampled daily like a
real process, and perturbed with the noise model below. Run from the repository root:

    python models/mab_fedbatch/data/generate.py

It rewrites run1..run4.csv/.yaml in this folder; the seed makes the output reproducible.

Noise model (independent normal errors, sigma reported in <name>_sigma columns):
  Xv          8 % of the value (cell counter), at least 0.02 Mcell/mL
  viability   2 percentage points
  Glc, Lac    5 % of the value, at least 0.1 mM (enzymatic analyser)
  Gln, Amm    8 % of the value, at least 0.05 mM
  titer       5 % of the value, at least 0.01 g/L (Protein A HPLC)
Lactate, ammonia and titer are not measured at day 0 (fresh medium): empty cells.
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
SEED = 20261126
TRUE_PARAMETERS = {
    "mu_max": 0.032,  # 1/h   (Xing default 0.029)
    "mu_d_max": 0.012,  # 1/h   (0.016)
    "Y_X_Glc": 1.9e8,  # cell/mmol (1.69e8)
    "Y_Lac_Glc": 1.10,  # -     (1.23)
    "Y_X_Gln": 9.0e8,  # cell/mmol (9.74e8)
    "beta_P": 28.0,  # pg/cell/d (25)
}
NOISE = {  # variable: (relative sd, minimum sd)
    "Xv": (0.08, 0.02),
    "viability": (0.0, 2.0),
    "Glc": (0.05, 0.1),
    "Lac": (0.05, 0.1),
    "Gln": (0.08, 0.05),
    "Amm": (0.08, 0.05),
    "titer": (0.05, 0.01),
}
RUNS = {  # run: (scenario it follows, seeding density Mcell/mL)
    "run1": ("nominal_14d", 0.30),
    "run2": ("continuous_feed_14d", 0.35),
    "run3": ("high_feed_14d", 0.25),
    "run4": ("lean_feed_14d", 0.40),
}


def main():
    rng = np.random.default_rng(SEED)
    model = biotwin.load_model(HERE.parent)
    for run, (scenario_name, xv0) in RUNS.items():
        recipe = yaml.safe_load((HERE.parent / "scenarios" / f"{scenario_name}.yaml").read_text())
        recipe = copy.deepcopy(recipe)
        recipe["description"] = f"SYNTHETIC run {run}: {scenario_name} seeded at {xv0} Mcell/mL"
        recipe["initial"]["Xv"] = f"{xv0} Mcell/mL"
        sample_days = [0.0] + [float(t) for t in recipe["samples"]["times"]] + [14.0]
        times_h = [24.0 * d for d in sample_days]
        result = model.simulate(scenario=recipe, params=TRUE_PARAMETERS, times=times_h[1:], nfe=400)
        truth = result.wide
        first = model.simulate(scenario=recipe, params=TRUE_PARAMETERS, nfe=50).wide.iloc[0]
        frame = {"time": [round(t, 6) for t in times_h]}
        true = {var: np.concatenate([[first[var]], truth[var].to_numpy()]) for var in NOISE}
        frame.update(noisy_measurements(true, NOISE, rng))
        table = pd.DataFrame(frame)
        # fresh medium is not assayed for products: no lactate, ammonia or titer value at day 0
        for var in ("Lac", "Amm", "titer"):
            table.loc[0, [var, f"{var}_sigma"]] = np.nan
        table.to_csv(HERE / f"{run}.csv", index=False)
        (HERE / f"{run}.yaml").write_text(
            "# SYNTHETIC: recipe of "
            + run
            + " (see README.md)\n"
            + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None, width=200)
        )
        print(f"wrote {run}.csv ({len(times_h)} samples) and {run}.yaml")


if __name__ == "__main__":
    main()
