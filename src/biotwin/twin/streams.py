"""Process-data streams for the twin: a replay of a CSV and a synthetic stream from a known truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.core.errors import DataError


def synthetic_stream(model, recipe, truth_params: dict, schedule: dict, t_end=None, seed=0, nfe=80):
    """Measurements of a simulated batch with known (``truth_params``) parameters, with noise.

    SYNTHETIC DATA, for tests, benchmarks and training: the twin does not know ``truth_params``.

    Parameters
    ----------
    model : Model
    recipe : str, path or mapping
        What was run (a missed feed is a recipe without it).
    truth_params : dict
        Parameter values of the truth [units of parameters.yaml].
    schedule : dict
        ``{state: (every, sd, rsd)}``: measured every ``every`` [model time unit] from time 0 with noise
        of standard deviation ``max(sd, rsd * value)`` [state unit]; e.g. an in-line Raman probe
        ``{"Glc": (1, 0.7, 0)}``, a daily cell count ``{"Xv": (24, 0, 0.05)}``.
    seed : int
        Seed of the noise (numpy's default generator).

    Returns
    -------
    stream : pandas.DataFrame
        ``time``, each measured state and its ``<state>_sigma``; empty where not measured; values
        below zero clipped to zero (as an instrument reports).
    truth : pandas.DataFrame
        The noise-free simulation at the same times (``SimulationResult.wide``).
    """
    every = {name: float(spec[0]) for name, spec in schedule.items()}
    end = t_end if t_end is not None else model.load_scenario(recipe).t_end
    times = sorted({round(float(t), 9) for e in every.values() for t in np.arange(0.0, end + 1e-9, e)})
    truth = model.simulate(scenario=recipe, params=truth_params, times=times, nfe=nfe).wide
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"time": truth["time"]})
    for name, (step, sd, rsd) in schedule.items():
        if name not in truth:
            raise DataError(f"schedule: {name!r} is not a column of the model's results")
        due = np.isclose(np.mod(truth["time"] + 1e-9, step), 0.0, atol=1e-6)
        sigma = np.maximum(float(sd), float(rsd) * np.abs(truth[name].to_numpy()))
        sigma = np.maximum(sigma, 1e-12)
        value = np.maximum(truth[name].to_numpy() + rng.normal(0.0, 1.0, len(truth)) * sigma, 0.0)
        out[name] = np.where(due, value, np.nan)
        out[f"{name}_sigma"] = np.where(due, sigma, np.nan)
    return out, truth


def replay(path_or_frame, chunk: int = 1) -> Iterator[pd.DataFrame]:
    """The rows of a CSV (or DataFrame) in ``chunk``-row pieces, as they would arrive (the file is only read)."""
    frame = path_or_frame if isinstance(path_or_frame, pd.DataFrame) else pd.read_csv(Path(path_or_frame))
    for start in range(0, len(frame), chunk):
        yield frame.iloc[start : start + chunk]
