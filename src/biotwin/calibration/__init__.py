"""Calibration: multi-experiment parameter estimation with uncertainty and diagnostics."""

from biotwin.calibration.api import calibrate
from biotwin.calibration.problem import EstimationProblem
from biotwin.calibration.result import CalibrationResult

__all__ = ["CalibrationResult", "EstimationProblem", "calibrate"]
