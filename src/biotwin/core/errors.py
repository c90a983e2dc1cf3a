"""Exceptions raised by biotwin.

Every error names what is wrong (file, key, row, column, component) so that a
process scientist can fix the input without reading the source code.
"""


class BiotwinError(Exception):
    """Base class of every error biotwin raises on purpose."""


class ModelDefinitionError(BiotwinError, ValueError):
    """A model folder (``model.py``, ``parameters.yaml``) breaks the contract."""


class ScenarioError(BiotwinError, ValueError):
    """A scenario (operating recipe) or a simulation request is invalid."""


class RecipeTooShortError(ScenarioError):
    """The recipe ends before the process does (e.g. before primary drying is over): lengthen it."""


class DataError(BiotwinError, ValueError):
    """An experiment data file is invalid."""


class SolverSetupError(BiotwinError, RuntimeError):
    """The solver path (cyipopt, PyNumero ASL library) is not usable."""


class SolverError(BiotwinError, RuntimeError):
    """Ipopt did not converge.

    Attributes
    ----------
    termination_condition : str
        Pyomo's termination condition, e.g. ``'infeasible'``.
    iterations : int or None
        Ipopt iterations performed.
    residuals : list of (str, float)
        The largest constraint residuals at the last iterate, by component name.
    """

    def __init__(self, message, termination_condition=None, iterations=None, residuals=()):
        super().__init__(message)
        self.termination_condition = termination_condition
        self.iterations = iterations
        self.residuals = list(residuals)


def config_error_text(exc: ValueError) -> str:
    """The message of a ``pyomo.common.config`` validation error on one line (it spans several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
