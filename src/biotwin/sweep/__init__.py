"""Sweeps at scale: grids over recipe knobs and samples of uncertain parameters, on Dask.

- :mod:`~biotwin.sweep.spec`: the sweep YAML (grid, samples, vial classes, outputs, limits), checked
- :mod:`~biotwin.sweep.run`: :func:`run_sweep` serially or on a Dask cluster (a ``LocalCluster``
  started and stopped here by default), results streamed to Parquet chunks, resumable
- :mod:`~biotwin.sweep.analysis`: the probabilistic design space (probability that every limit holds,
  with its Monte Carlo standard error) and Sobol sensitivity indices (SALib)
"""

from biotwin.sweep.analysis import passes, probability_map, sobol_indices
from biotwin.sweep.run import SweepResult, load_sweep, run_sweep
from biotwin.sweep.spec import SweepError, SweepSpec, read_sweep

__all__ = [
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "load_sweep",
    "passes",
    "probability_map",
    "read_sweep",
    "run_sweep",
    "sobol_indices",
]
