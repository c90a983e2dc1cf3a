"""Simulation results as pandas tables with units."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class SimulationResult:
    """Trajectories of one simulation.

    Attributes
    ----------
    wide : pandas.DataFrame
        One row per output time: column ``time`` [``time_unit``] and one column per
        state, output, input and expression; ``wide.attrs["units"]`` maps each
        column to its unit.
    units : dict[str, str]
        Unit of each column.
    time_unit : str
    model_name : str
    scenario_name : str
    parameters : dict[str, float]
        Parameter values used, each in its ``parameters.yaml`` unit.
    stats : dict
        Timings [s], Ipopt iterations, termination condition, initialization kind.
    kinds : dict[str, str]
        ``state``, ``output``, ``input`` or ``expression`` for each column.
    """

    wide: pd.DataFrame
    units: dict
    time_unit: str
    model_name: str
    scenario_name: str
    parameters: dict
    stats: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)
    pyomo_model: object = field(default=None, repr=False)

    @property
    def tidy(self) -> pd.DataFrame:
        """Long table: columns ``time``, ``variable``, ``value``, ``unit``."""
        long = self.wide.melt(id_vars="time", var_name="variable", value_name="value")
        long["unit"] = long["variable"].map(self.units)
        long.attrs["time_unit"] = self.time_unit
        return long

    def final(self) -> dict[str, float]:
        """Value of every column at the last output time."""
        row = self.wide.iloc[-1]
        return {c: float(row[c]) for c in self.wide.columns if c != "time"}

    def summary(self) -> dict:
        """Key numbers: final and maximum of each state, and the solve statistics."""
        states = [c for c, k in self.kinds.items() if k == "state"]
        return {
            "model": self.model_name,
            "scenario": self.scenario_name,
            "t_end": float(self.wide["time"].iloc[-1]),
            "time_unit": self.time_unit,
            "final": {c: float(self.wide[c].iloc[-1]) for c in states},
            "max": {c: float(self.wide[c].max()) for c in states},
            "units": {c: self.units[c] for c in states},
            "stats": dict(self.stats),
        }

    # -- collocation polynomials -----------------------------------------------------
    def _element(self, t: float):
        """Rows (positions in ``wide``) of the finite element containing ``t``: its left end and points."""
        if self.pyomo_model is None:
            raise ValueError("this result has no discretized model to interpolate")
        fe = list(self.pyomo_model.t.get_finite_elements())
        times = self.wide["time"].to_numpy()
        k = int(np.clip(np.searchsorted(fe, t, side="left"), 1, len(fe) - 1))
        a, b = fe[k - 1], fe[k]
        rows = np.flatnonzero((times >= a - 1e-12) & (times <= b + 1e-12))
        return a, b, rows

    def interpolate(self, t: float, columns=None) -> dict:
        """Every column (or only ``columns``) at time ``t`` from its collocation polynomial (exact for the
        discretized model)."""
        a, _b, rows = self._element(t)
        times = self.wide["time"].to_numpy()[rows]
        out = {"time": float(t)}
        for column in self.wide.columns if columns is None else columns:
            if column == "time":
                continue
            values = self.wide[column].to_numpy()[rows]
            out[column] = float(np.polyval(np.polyfit(times - a, values, len(rows) - 1), t - a))
        return out

    def crossing_time(self, column: str, level: float) -> float | None:
        """First time ``column`` reaches ``level``, found on its collocation polynomial (not a grid point).

        Returns None when the level is not reached.
        """
        times, values = self.wide["time"].to_numpy(), self.wide[column].to_numpy()
        above = (values - level) >= 0
        if above[0]:
            return float(times[0])
        hits = np.flatnonzero(above)
        if hits.size == 0:
            return None
        t_hit = times[hits[0]]
        a, b, rows = self._element(t_hit)
        coeffs = np.polyfit(times[rows] - a, values[rows] - level, len(rows) - 1)
        roots = [r.real + a for r in np.roots(coeffs) if abs(r.imag) < 1e-9 and a - 1e-9 <= r.real + a <= b + 1e-9]
        return float(min(roots)) if roots else float(t_hit)

    def to_csv(self, path) -> None:
        """Write the wide table with ``name [unit]`` headers."""
        table = self.wide.rename(columns={c: f"{c} [{self.units[c]}]" for c in self.wide.columns})
        table.to_csv(path, index=False)
