"""Turn the E3 measurements of Nguyen et al. 2021 into this model's calibration file ``e3.csv``.

REAL DATA. Source: ``../shared/data/hek293_vlp/nguyen2021_E3_measured_per_mL.csv`` (the measurements
behind the paper's Figure 4, from the authors' repository ``tamntnguyen/AAV-Triple-Transfection-
Mechanistic-Model``, ``Data/*.mat``): total viral DNA (qPCR; 3 replicates), full capsids (vector
genomes in capsids; 3 replicates) and total capsids (ELISA; 2 replicates) per mL of culture.

Measurement errors of qPCR and capsid ELISA are multiplicative, so the file holds the mean of the
replicates' log10 values at each time, ``log10_<quantity>``, with ``log10_<quantity>_sigma`` the
standard error of that mean, ``s_pooled / sqrt(n)``, where ``s_pooled`` is the replicate standard
deviation of the quantity pooled over all its times [log10 units]. (A least-squares fit to the means
with these sigmas gives the same estimates and covariance as a fit to every replicate with sigma
``s_pooled``.)

    python models/aav_triple_transfection/data/prepare.py [path/to/nguyen2021_E3_measured_per_mL.csv]

writes ``e3.csv`` next to this file (the recipe is ``e3.yaml``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[2].parent / "shared" / "data" / "hek293_vlp" / "nguyen2021_E3_measured_per_mL.csv"
QUANTITIES = {"total_viral_DNA": "viral_DNA", "full_capsids": "full_capsids", "total_capsids": "total_capsids"}


def replicate_table(source=SOURCE) -> pd.DataFrame:
    """The measurements as ``time, quantity (model name), replicate, log10`` [h, -, -, log10 per mL]."""
    raw = pd.read_csv(source)
    unknown = set(raw["quantity"]) - set(QUANTITIES)
    if unknown:
        raise ValueError(f"{source}: unknown quantities {sorted(unknown)}; expected {sorted(QUANTITIES)}")
    if not np.all(raw["value_per_mL"] > 0):
        raise ValueError(f"{source}: a count per mL is not positive; a log10 fit needs positive counts")
    return pd.DataFrame(
        {
            "time": raw["time_hpt"].astype(float),
            "quantity": raw["quantity"].map(QUANTITIES),
            "replicate": raw["replicate"],
            "log10": np.log10(raw["value_per_mL"]),
        }
    )


def pooled_sd(table: pd.DataFrame) -> dict[str, float]:
    """Replicate standard deviation of each quantity pooled over its times [log10 units]."""
    out = {}
    for quantity, rows in table.groupby("quantity"):
        groups = rows.groupby("time")["log10"]
        ss = float((rows["log10"] - groups.transform("mean")).pow(2).sum())
        dof = int((groups.count() - 1).sum())
        out[quantity] = float(np.sqrt(ss / dof))
    return out


def calibration_table(source=SOURCE) -> pd.DataFrame:
    """The calibration file's table: replicate means of log10 and their standard errors."""
    table = replicate_table(source)
    s = pooled_sd(table)
    wide = None
    for quantity, rows in table.groupby("quantity"):
        g = rows.groupby("time")["log10"]
        part = pd.DataFrame(
            {f"log10_{quantity}": g.mean(), f"log10_{quantity}_sigma": s[quantity] / np.sqrt(g.count())}
        )
        wide = part if wide is None else wide.join(part, how="outer")
    return wide.sort_index().rename_axis("time").reset_index()


def main(argv):
    source = Path(argv[1]) if len(argv) > 1 else SOURCE
    table = calibration_table(source)
    header = (
        "# REAL DATA: Nguyen et al. 2021 (Mol Ther Methods Clin Dev 21:642), experiment E3, per mL of culture;\n"
        "# replicate means of log10(count per mL) and their standard errors; written by prepare.py from\n"
        "# ../shared/data/hek293_vlp/nguyen2021_E3_measured_per_mL.csv\n"
    )
    out = HERE / "e3.csv"
    out.write_text(header + table.to_csv(index=False, float_format="%.6f"))
    print(f"wrote {out} ({len(table)} times)")


if __name__ == "__main__":
    main(sys.argv)
