"""biotwin: bioprocess digital twins as Pyomo DAEs, calibrated with Ipopt, explored in Jupyter.

Architecture: seven layers; a module imports only from its own layer or the layers below it
(``tests/unit/test_architecture.py`` checks every import in the package)::

    tools/        CLI, notebook runner, training checks, PyNumero build          (what a user runs)
      |
    governance/   validation protocols and reports, drift of new batches, registry with a
                  hash-chained audit trail, approvals, retirement, change control  (evidence)
      |
    ui/           figures, explorers, design-space and calibration views          (what a user sees)
      |
    calibration/  multi-experiment estimation, covariance, identifiability, profiles
    optimize/     recipe optimization: bolus feeding; a set-point by refined runs (analysis)
    twin/         the live twin: EKF or moving horizon on streaming data, forecasts, alarms
    sweep/        grids and parameter samples on Dask, probabilistic design spaces, Sobol
      |
    processes/    shared domain physics: cell-culture kinetics, balances, recipes;
                  freeze-drying relations (vapour pressure, resistance, Kv, fill height)
      |
    engine/       Simulation (discretize, refine the grid, initialize, solve, warm start), Ipopt/PyNumero,
                  forward integration, compiled expressions, results, recipe knobs
      |
    core/         the model-folder contract (Model, load_model), parameters, recipes and
                  input programs, experiment data, units, plausibility checks, errors

    models/<name>/   model folders (equations in model.py, parameters.yaml, scenarios/, data/, card)
                     sit above all of them and import only from biotwin's public modules.

One upward reference is deliberate and listed in the architecture test: the ``Model`` facade
(``core/model.py``) delegates ``simulate`` and ``rates`` to the engine, imported when called.

Importing biotwin points Pyomo at the PyNumero library built into the active
environment (see :mod:`biotwin.core._config`), so no environment variable is needed.
"""

from biotwin.core._config import configure_pyomo_config_dir as _configure

_configure()

from biotwin.calibration import CalibrationResult, calibrate
from biotwin.core.checks import allow_unusual
from biotwin.core.data import Experiment, read_experiment
from biotwin.core.errors import (
    BiotwinError,
    DataError,
    ModelDefinitionError,
    ScenarioError,
    SolverError,
    SolverSetupError,
)
from biotwin.core.model import Model, available_models, load_model
from biotwin.engine.results import SimulationResult
from biotwin.engine.simulation import Simulation
from biotwin.twin import Twin


def explore(model, *args, registry=None, **kwargs):
    """An interactive explorer of a model in JupyterLab (see :func:`biotwin.ui.widgets.explore`).

    ``registry`` (a registry location, or ``$BIOTWIN_REGISTRY`` when set): the model's validation status
    there (approved for a tier, requalification required, not approved, retired) is shown in the header.
    """
    import os

    from biotwin.ui.widgets import explore as _explore

    registry = registry or os.environ.get("BIOTWIN_REGISTRY")
    if registry and "validation" not in kwargs:
        from biotwin.governance import Registry

        model = model if isinstance(model, Model) else load_model(model)
        kwargs["validation"] = Registry(registry).status(model)
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
    "Simulation",
    "SimulationResult",
    "SolverError",
    "SolverSetupError",
    "Twin",
    "__version__",
    "allow_unusual",
    "available_models",
    "calibrate",
    "explore",
    "load_model",
    "read_experiment",
]
