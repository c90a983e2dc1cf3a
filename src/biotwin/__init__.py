"""biotwin: bioprocess digital twins as Pyomo DAEs, calibrated with Ipopt, explored in Jupyter.

Importing biotwin points Pyomo at the PyNumero library built into the active
environment (see :mod:`biotwin._config`), so no environment variable is needed.
"""

from biotwin._config import configure_pyomo_config_dir as _configure

_configure()

from biotwin.errors import (  # noqa: E402
    BiotwinError,
    DataError,
    ModelDefinitionError,
    ScenarioError,
    SolverError,
    SolverSetupError,
)
from biotwin.model import Model, available_models, load_model  # noqa: E402
from biotwin.results import SimulationResult  # noqa: E402
from biotwin.calibration import CalibrationResult, calibrate  # noqa: E402
from biotwin.data import Experiment, read_experiment  # noqa: E402
from biotwin import optimization  # noqa: E402,F401


def explore(model, *args, **kwargs):
    """An interactive explorer of a model in JupyterLab (see :func:`biotwin.widgets.explore`)."""
    from biotwin.widgets import explore as _explore

    return _explore(model, *args, **kwargs)

__version__ = "0.1.0"

__all__ = [
    "BiotwinError", "DataError", "ModelDefinitionError", "ScenarioError", "SolverError", "SolverSetupError",
    "Model", "SimulationResult", "CalibrationResult", "Experiment", "calibrate", "read_experiment", "available_models", "load_model", "explore", "__version__",
]
