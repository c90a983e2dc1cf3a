"""CalibrationResult: estimates, uncertainty, diagnostics and provenance; saved as JSON."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.core.errors import BiotwinError

FORMAT = "biotwin.calibration/1"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if np.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


@dataclass
class CalibrationResult:
    """The outcome of a calibration.

    Attributes
    ----------
    model : str
    objective : float
        Weighted SSE ``sum(((y - y_model)/sigma)^2)``, or plain SSE when no sigma was given.
    objective_kind : str
    status : str
        Ipopt's termination condition.
    parameters : dict
        ``label -> {value, unit, std_error, ci95_low, ci95_high, at_bound, lower, upper, start,
        experiment, profile_ci95_low, profile_ci95_high}``; intervals are None at a bound.
    covariance, correlation : dict
        ``{"labels": [...], "matrix": [[...]]}`` over the estimates (None entries at bounds).
    n_observations : int
    wall_time_s : float
    diagnostics : dict
        Fit statistics (per-variable RMSE and R^2, chi^2, AIC, BIC).
    identifiability : dict
        SVD of the relative sensitivity matrix, near-null directions, high correlations.
    multistart : list of dict
        Distinct local optima found (empty without multi-start).
    profiles : dict
        Profile-likelihood scans by parameter.
    residuals : list of dict
        ``{experiment, variable, time, value, fitted, sigma}`` for each observation.
    trajectories : dict
        Fitted trajectories with 95 % bands by experiment.
    warnings : list of str
    provenance : dict
        Data-file and model-folder SHA-256, package versions, solver options, seed, timestamp.
    units : dict
        Unit of each measured variable and of ``time``.
    """

    model: str
    objective: float
    objective_kind: str
    status: str
    parameters: dict
    covariance: dict
    correlation: dict
    n_observations: int
    wall_time_s: float
    diagnostics: dict = field(default_factory=dict)
    identifiability: dict = field(default_factory=dict)
    multistart: list = field(default_factory=list)
    profiles: dict = field(default_factory=dict)
    residuals: list = field(default_factory=list)
    trajectories: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)

    # -- views ---------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Estimates with units, standard errors, intervals and bound flags (index: label)."""
        rows = []
        for label, p in self.parameters.items():
            informed = p.get("identifiable", True) or p["at_bound"]
            rows.append(
                {
                    "parameter": label,
                    "value": p["value"],
                    "unit": p["unit"],
                    "std_error": p["std_error"] if informed else np.inf,
                    "ci95_low": p["ci95_low"] if informed else -np.inf,
                    "ci95_high": p["ci95_high"] if informed else np.inf,
                    "identifiable": bool(p.get("identifiable", True)),
                    "profile_ci95_low": p.get("profile_ci95_low"),
                    "profile_ci95_high": p.get("profile_ci95_high"),
                    "at_bound": p["at_bound"],
                    "start": p["start"],
                }
            )
        return pd.DataFrame(rows).set_index("parameter")

    def correlation_frame(self) -> pd.DataFrame:
        labels = self.correlation["labels"]
        return pd.DataFrame(np.array(self.correlation["matrix"], dtype=float), index=labels, columns=labels)

    def covariance_frame(self) -> pd.DataFrame:
        labels = self.covariance["labels"]
        return pd.DataFrame(np.array(self.covariance["matrix"], dtype=float), index=labels, columns=labels)

    def residual_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.residuals)

    def summary(self) -> str:
        """A short text report."""
        lines = [
            (
                f"calibration of '{self.model}': {self.status}, {self.objective_kind} = {self.objective:.6g}, "
                f"{self.n_observations} observations, {self.wall_time_s:.2f} s"
            )
        ]
        for label, p in self.parameters.items():
            if p["at_bound"]:
                lines.append(f"  {label:24s} {p['value']:.6g} {p['unit']}  (at its {p['at_bound']} bound)")
            elif not p.get("identifiable", True):
                lines.append(
                    f"  {label:24s} {p['value']:.6g} {p['unit']}  SE inf  95% CI (-inf, inf)  "
                    "<-- NOT IDENTIFIABLE from these data"
                )
            else:
                se = p["std_error"]
                ci = f"[{p['ci95_low']:.4g}, {p['ci95_high']:.4g}]" if p["ci95_low"] is not None else ""
                lines.append(
                    f"  {label:24s} {p['value']:.6g} {p['unit']}  SE {se:.3g}  95% CI {ci}"
                    if se is not None
                    else f"  {label:24s} {p['value']:.6g} {p['unit']}"
                )
        d = self.diagnostics
        if d.get("residual_model") == "ar1" and d.get("residual_autocorrelation_lag1") is not None:
            lines.append(
                f"  intervals for AR(1) errors: residual lag-1 autocorrelation {d['residual_autocorrelation_lag1']:.3f}, "
                f"variance x {d['variance_inflation']:.3g}, effective observations {d['n_effective']:.0f} of "
                f"{self.n_observations}"
            )
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        for label, p in self.parameters.items():
            if p.get("profile_ci95_low") is not None or p.get("profile_ci95_high") is not None:
                prof = self.profiles.get(label, {})
                lo = "open" if prof.get("open_low") else f"{p['profile_ci95_low']:.4g}"
                hi = "open" if prof.get("open_high") else f"{p['profile_ci95_high']:.4g}"
                lines.append(
                    f"  profile-likelihood 95% interval of {label}: [{lo}, {hi}]"
                    + ("  (open: the data do not bound it within its bounds)" if "open" in (lo, hi) else "")
                )
        return "\n".join(lines)

    # -- persistence ----------------------------------------------------------
    def to_dict(self) -> dict:
        return _jsonable({"format": FORMAT, **asdict(self)})

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the result as JSON; refuses to replace an existing file unless ``overwrite``.

        The file is written to a temporary name and renamed, so an interrupted save never
        leaves a half-written result (nor destroys an earlier one).
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise BiotwinError(
                f"{path} exists; not overwriting a calibration result (use overwrite=True "
                "or --overwrite, or choose another name)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a result is an ordinary file
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path) -> CalibrationResult:
        """Read a result saved by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BiotwinError(f"{path}: calibration result not found") from None
        except json.JSONDecodeError as exc:
            raise BiotwinError(f"{path}: not a JSON calibration result ({exc})") from None
        if data.pop("format", None) != FORMAT:
            raise BiotwinError(f"{path}: not a biotwin calibration result (format {FORMAT} expected)")
        names = set(cls.__dataclass_fields__)
        unknown = set(data) - names
        if unknown:
            raise BiotwinError(f"{path}: unknown field(s) {sorted(unknown)}")
        return cls(**data)
