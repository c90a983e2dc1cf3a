"""biotwin: bioprocess digital twins as Pyomo DAEs, calibrated with Ipopt, explored in Jupyter.

Importing biotwin points Pyomo at the PyNumero library built into the active
environment (see :mod:`biotwin._config`), so no environment variable is needed.
"""

from biotwin._config import configure_pyomo_config_dir as _configure

_configure()

from biotwin import optimization  # noqa: F401
from biotwin.calibration import CalibrationResult, calibrate
from biotwin.data import Experiment, read_experiment
from biotwin.errors import (
    BiotwinError,
    DataError,
    ModelDefinitionError,
    ScenarioError,
    SolverError,
    SolverSetupError,
)
from biotwin.model import Model, available_models, load_model
from biotwin.results import SimulationResult


def explore(model, *args, **kwargs):
    """An interactive explorer of a model in JupyterLab (see :func:`biotwin.widgets.explore`)."""
    from biotwin.widgets import explore as _explore

    return _explore(model, *args, **kwargs)

__version__ = "0.1.0"

__all__ = [
    "BiotwinError",
    "CalibrationResult",
    "DataError",
    "Experiment",
    "Model",
    "ModelDefinitionError",
    "ScenarioError",
    "SimulationResult",
    "SolverError",
    "SolverSetupError",
    "__version__",
    "available_models",
    "calibrate",
    "explore",
    "load_model",
    "read_experiment",
]
