"""Experiment data: tidy CSV files, one per experiment (DESIGN.md, "Data").

A file has a ``time`` column in the model's time unit and one column per measured
variable, named exactly like the model's state or output; an optional
``<name>_sigma`` column gives each measurement's standard deviation. Missing
values are empty cells. Lines starting with ``#`` are comments.

Every problem -- unknown column, non-numeric value, NaN or inf, negative time,
unsorted or duplicate times, a sigma that is not positive -- is a
:class:`~biotwin.core.errors.DataError` naming the file, the row (as numbered in the
file, header = row 1) and the column. The file is never modified.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.core.errors import DataError


@dataclass
class Experiment:
    """One experiment: measurements and the recipe that produced them.

    Attributes
    ----------
    name : str
    data : pandas.DataFrame
        Column ``time`` and one column per measured variable (NaN = not measured).
    sigma : pandas.DataFrame
        Standard deviations, same shape as ``data`` minus ``time`` (NaN where none given).
    scenario : str, dict or None
        The recipe (scenario name, path or mapping) to simulate this experiment with.
    params : dict
        Experiment-specific parameter values (e.g. a measured seeding density).
    path : pathlib.Path or None
    sha256 : str
        Of the file's bytes, for provenance.
    """

    name: str
    data: pd.DataFrame
    sigma: pd.DataFrame
    scenario: object = None
    params: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""

    @property
    def variables(self) -> list[str]:
        return [c for c in self.data.columns if c != "time"]

    @property
    def times(self) -> np.ndarray:
        return self.data["time"].to_numpy(dtype=float)

    def n_observations(self) -> int:
        return int(self.data[self.variables].notna().to_numpy().sum())

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, name: str = "experiment", scenario=None, params=None, known: set | None = None
    ) -> Experiment:
        """An experiment from a DataFrame (validated like a file)."""
        text = frame.to_csv(index=False)
        rows = list(csv.reader(text.splitlines()))
        return _parse(
            rows,
            name,
            f"<DataFrame {name}>",
            scenario,
            params or {},
            known,
            hashlib.sha256(text.encode()).hexdigest(),
            None,
        )


def read_experiment(
    path: str | Path, scenario=None, params: dict | None = None, known: set | None = None, name: str | None = None
) -> Experiment:
    """Read and validate one experiment file.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    scenario : str, dict or None
        Recipe of this experiment. Default: a file ``<stem>.yaml`` next to the CSV if present,
        else the model's default scenario.
    params : dict, optional
        Experiment-specific parameter values.
    known : set of str, optional
        Names the model can be compared with; other columns are errors.
    name : str, optional
        Default: the file's stem.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    rows = [row for row in csv.reader(text.splitlines())]
    if scenario is None:
        sidecar = path.with_suffix(".yaml")
        if sidecar.is_file():
            scenario = str(sidecar)
    return _parse(
        rows, name or path.stem, str(path), scenario, params or {}, known, hashlib.sha256(raw).hexdigest(), path
    )


def _parse(rows, name, where, scenario, params, known, digest, path) -> Experiment:
    numbered = [(i + 1, row) for i, row in enumerate(rows) if row and not row[0].lstrip().startswith("#")]
    numbered = [(i, row) for i, row in numbered if any(cell.strip() for cell in row)]
    if not numbered:
        raise DataError(f"{where}: empty file (expected a header with a 'time' column)")
    header_line, header = numbered[0]
    header = [h.strip() for h in header]
    if "time" not in header:
        raise DataError(f"{where}, row {header_line}: no 'time' column (columns: {', '.join(header)})")
    seen = set()
    for h in header:
        if not h:
            raise DataError(f"{where}, row {header_line}: empty column name")
        if h in seen:
            raise DataError(f"{where}, row {header_line}: duplicate column '{h}'")
        seen.add(h)
        if not h.isidentifier():
            bare = h.split("[")[0].split("(")[0].strip()
            hint = f"; rename it to '{bare}' (values in the model's unit of {bare})" if bare.isidentifier() else ""
            raise DataError(
                f"{where}, row {header_line}: column '{h}' is not a variable name: columns are named "
                f"exactly like the model's variables, without units or spaces{hint}"
            )
    measured = [h for h in header if h != "time" and not h.endswith("_sigma")]
    for h in header:
        if h.endswith("_sigma") and h[: -len("_sigma")] not in measured:
            raise DataError(f"{where}: column '{h}' gives sigma of '{h[:-6]}', which is not a column")
    if known is not None:
        for h in measured:
            if h not in known:
                raise DataError(
                    f"{where}: column '{h}' names nothing in the model; measurable: {', '.join(sorted(known))}"
                )
    if not measured:
        raise DataError(f"{where}: no measured columns besides 'time'")
    values = {h: [] for h in header}
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise DataError(f"{where}, row {line}: {len(row)} cells, the header has {len(header)}")
        for h, cell in zip(header, row):
            cell = cell.strip()
            if cell == "":
                if h == "time":
                    raise DataError(f"{where}, row {line}, column 'time': empty time")
                values[h].append(math.nan)
                continue
            try:
                x = float(cell)
            except ValueError:
                raise DataError(f"{where}, row {line}, column '{h}': '{cell}' is not a number") from None
            if not math.isfinite(x):
                raise DataError(
                    f"{where}, row {line}, column '{h}': '{cell}' is not finite "
                    "(leave the cell empty for a missing value)"
                )
            if h.endswith("_sigma") and x <= 0:
                raise DataError(f"{where}, row {line}, column '{h}': sigma must be positive, got {x}")
            values[h].append(x)
    lines = [line for line, _ in numbered[1:]]
    if not lines:
        raise DataError(f"{where}: no data rows")
    times = values["time"]
    for k, t in enumerate(times):
        if t < 0:
            raise DataError(f"{where}, row {lines[k]}, column 'time': negative time {t}")
        if k and t <= times[k - 1]:
            what = "duplicate" if t == times[k - 1] else "unsorted"
            raise DataError(
                f"{where}, row {lines[k]}, column 'time': {what} time {t} after {times[k - 1]} "
                "(times must be strictly increasing)"
            )
    for k, line in enumerate(lines):
        for h in measured:
            s = values.get(f"{h}_sigma")
            if s is not None and not math.isnan(s[k]) and math.isnan(values[h][k]):
                raise DataError(f"{where}, row {line}, column '{h}_sigma': sigma given for a missing value")
    data = pd.DataFrame({h: values[h] for h in ["time"] + measured})
    sigma = pd.DataFrame({h: values.get(f"{h}_sigma", [math.nan] * len(lines)) for h in measured})
    return Experiment(
        name=name, data=data, sigma=sigma, scenario=scenario, params=dict(params), path=path, sha256=digest
    )


def noisy_measurements(true: dict, noise: dict, rng: np.random.Generator, decimals: int = 5) -> dict:
    """Synthetic measurements of true trajectories, with the standard deviations a lab would report.

    Parameters
    ----------
    true : dict[str, array]
        True values per variable at the sampling times [variable's unit].
    noise : dict[str, (float, float)]
        Per variable, the relative error (coefficient of variation) [-] and the absolute floor
        [variable's unit] of a measurement's standard deviation ``max(cv |value|, floor)``.
    rng : numpy.random.Generator
        Drawn from in the order of ``noise`` (so a seed reproduces a data set).
    decimals : int
        Rounding of the written values.

    Returns
    -------
    dict
        ``{var: measured values, f"{var}_sigma": standard deviations}``; the sigma is computed from
        the measured value, as a lab knows only that.
    """
    columns = {}
    for var, (cv, floor) in noise.items():
        sd = np.maximum(cv * np.abs(true[var]), floor)
        columns[var] = np.round(true[var] + rng.normal(0.0, sd), decimals)
        columns[f"{var}_sigma"] = np.round(np.maximum(cv * np.abs(columns[var]), floor), decimals)
    return columns
