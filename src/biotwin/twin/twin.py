"""The Twin: an extended Kalman filter on a model folder's own equations, fed row by row.

The filter's state is ``a = [x; log theta]``: every model state ``x`` [state units] and the natural
logarithm of each estimated parameter ``theta`` [units of parameters.yaml] (positive by construction,
and a relative uncertainty is a constant in log space). Between measurement times ``a`` is carried by
the model's right-hand side (:meth:`biotwin.engine.forward.ForwardIntegrator.propagate`, LSODA) under
the recipe's input programs; its covariance by ``P <- F P F' + Q dt``, with ``F = da(t_k)/da(t_{k-1})``
from forward differences of that integration and ``Q`` the process noise on the states (parameters
are constant). Each row's measured states and outputs (a time-indexed Expression or algebraic variable,
``h(x, u, p)`` compiled by :meth:`biotwin.engine.forward.ForwardIntegrator.output` and differentiated by
forward differences) correct ``a`` with the Kalman gain (Joseph form), states
kept non-negative. Simon, *Optimal State Estimation*, 2006, ch. 13 (the continuous-discrete EKF).

The forecast of every state to the end of the recipe carries the current mean through the model and
its covariance through the linearization ``J P J'`` (``J = dx(t)/da(now)``); the 95 % band is
``mean +- 1.96 sd``. Parameters the data have not informed keep their prior spread, so the band says
so.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from biotwin.calibration.statistics import AUTOCORRELATION_WARNING, MIN_AUTOCORRELATION_PAIRS, ar1_variance_inflation
from biotwin.core.errors import BiotwinError, DataError, ModelDefinitionError
from biotwin.core.model import Model, load_model
from biotwin.core.units import convert_value, parse_unit, unit_string
from biotwin.engine.forward import UnsupportedStructure
from biotwin.engine.simulation import Simulation
from biotwin.twin.alarms import AlarmRule

Z95 = 1.959963984540054
log = logging.getLogger(__name__)
_UNIT_IN_NAME = re.compile(r"^\s*([A-Za-z_]\w*)\s*[\[(]\s*(.+?)\s*[\])]\s*$")  # "Glc [g/L]", "Xv (1e6/mL)"


def _autocorrelation(value, residual_model) -> dict:
    """``autocorrelation`` as ``{variable or None (every variable): rho}``, each checked to be in [0, 1)."""
    if value is None:
        return {}
    if residual_model != "ar1":
        raise BiotwinError("autocorrelation is given but residual_model is 'independent': use residual_model='ar1'")
    items = value.items() if isinstance(value, dict) else [(None, value)]
    out = {}
    for name, rho in items:
        if not _is_number(rho) or not 0 <= rho < 1:
            where = f"autocorrelation[{name!r}]" if name is not None else "autocorrelation"
            raise BiotwinError(f"{where} must be a number in [0, 1) (the errors' lag-1 autocorrelation), got {rho!r}")
        out[name] = float(rho)
    return out


def _measured_rho(stats) -> float:
    """Lag-1 autocorrelation from ``[last, sum of products, sum of squares, pairs]``; NaN before 10 pairs."""
    _, cross, squares, pairs = stats
    return cross / squares if pairs >= MIN_AUTOCORRELATION_PAIRS and squares > 0 else math.nan


def _is_number(value) -> bool:
    """A real number (Python or NumPy, integer or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


@dataclass
class TwinUpdate:
    """What one :meth:`Twin.update` returns: the estimate at the latest time, the test and any alarms.

    Attributes
    ----------
    time : float
        Time of the latest row used [model time unit].
    states : dict
        ``{state: (value, sd)}`` [state units].
    parameters : dict
        ``{parameter: (value, sd)}`` [units of parameters.yaml]; ``sd`` from the log-space spread
        (``value * sqrt(exp(s^2) - 1)``).
    nis : float
        Normalized innovation squared of the new rows, summed [-] (NaN when none was measured).
    n_measured : int
        Number of measured values in the new rows (the chi-square degrees of freedom of ``nis``).
    alarms : list of dict
    refused : list of dict
        Rows of this call refused, each with its reason.
    update_s : float
        Wall time of the update [s].
    """

    time: float
    states: dict
    parameters: dict
    nis: float
    n_measured: int
    alarms: list
    refused: list
    update_s: float
    _twin: Twin = field(repr=False, default=None)
    _snapshot: tuple = field(repr=False, default=None)

    def forecast(self, points: int = 40, method: str = "linear", samples: int = 400, seed: int = 0) -> pd.DataFrame:
        """Every state from now to the end of the recipe: ``time, variable, value, lo95, hi95, unit``.

        ``method="linear"`` (default): the band is ``value +- 1.96 sd`` with the covariance carried by the
        linearization ``J P J'``. ``method="sampling"``: ``samples`` draws of the states and parameters from
        the estimate's normal distribution (log-normal parameters; states kept non-negative), each
        integrated to the end; the band is their 2.5 and 97.5 percentiles (``seed`` fixes the draws).
        The sampled band checks the linear one where the model is strongly nonlinear (about
        ``samples`` integrations instead of one per estimated quantity).
        """
        if method not in ("linear", "sampling"):
            raise BiotwinError(f"forecast method {method!r}: use 'linear' or 'sampling'")
        return self._twin._forecast(*self._snapshot, points=points, method=method, samples=samples, seed=seed)


class Twin:
    """A model kept in step with a running batch through its measurements.

    Parameters
    ----------
    model : str, path or Model
    recipe : str, path, mapping, optional
        The batch's recipe (the model's default when None); its inputs drive the forecast.
    estimate : list of str
        Parameters estimated online (their prior: ``prior``, else the parameters.yaml value with
        ``prior_rsd``).
    prior : CalibrationResult or path, optional
        A calibration: its estimates and covariance are the prior of ``estimate``.
    prior_rsd : float
        Relative standard deviation of a parameter without a calibrated prior [-] (default 0.3).
    state_rsd : float
        Relative standard deviation of the initial states, from the recipe [-] (default 0.1).
    process_noise : float or dict
        Standard deviation of the states' random disturbance per sqrt(hour), relative to each state's
        scale (its largest magnitude over the nominal run) [1/sqrt(h)]; one number, or per state
        (default 0.002: about 1 % of the scale over a day).
    alarm_rule : AlarmRule, optional
    nfe : int
        Finite elements of the nominal run that sets the integrator up.
    method : {"ekf", "mhe"}
        ``"ekf"``: the extended Kalman filter (cheap: one linearization per row). ``"mhe"``: moving-horizon
        estimation over the last ``window`` rows, re-solved at every update with an EKF arrival cost
        (:mod:`biotwin.twin.mhe`); the innovations and alarms are the same test on its prediction.
    window : int
        Rows in the moving horizon (``method="mhe"``) [-] (default 8).
    iterations : int
        Largest number of least-squares iterations per update of the moving horizon [-] (default 3).
    residual_model : {"independent", "ar1"}
        What the measurement errors are assumed to be. ``"independent"`` (default): each row's error
        independent of the last, as the EKF's equations say. ``"ar1"``: each measured variable's errors
        follow an AR(1) process, as a densely sampled probe that the model does not follow exactly gives
        (a thermocouple every 36 s); the lag-1 autocorrelation ``rho`` of each variable's normalized
        innovations is measured as rows arrive (from 10 consecutive pairs on) and each later value's
        variance is multiplied by ``(1 + rho)/(1 - rho)``
        (:func:`biotwin.calibration.statistics.ar1_variance_inflation`): a row then informs the estimate
        as much as an independent row would with that variance, which is what a correlated record carries.
        The same widening as ``biotwin.calibrate(..., residual_model="ar1")``. The alarms test the
        innovations normalized with the sds as measured and whitened with the same rho, so they keep their
        stated false-alarm rates on AR(1) noise; a sustained offset then moves them less (by
        ``sqrt((1 - rho)/(1 + rho))``): on a densely sampled probe, a slow drift is harder to tell from
        correlated noise. Under ``"independent"`` a warning says
        when the innovations are autocorrelated above 0.5 (the parameter sds are then too narrow).
    autocorrelation : float or dict, optional
        The errors' lag-1 autocorrelation when it is known (``residual_model="ar1"``): one number for every
        variable or ``{variable: rho}``, each in [0, 1) [-]; from the first row on, instead of measured
        online. Default: a ``prior`` calibrated with ``residual_model="ar1"`` gives its residuals' value;
        otherwise it is measured online, which widens only the rows after the first 10 pairs and from a
        short record: on AR(1) errors with rho 0.9 the 95 % intervals of a toy decay rate covered the truth
        in 16 of 20 records measured online and in 20 of 20 with rho given (9 of 20 as independent errors)
        (``tests/engine/test_twin_autocorrelated.py``).
    """

    def __init__(
        self,
        model,
        recipe=None,
        estimate=(),
        prior=None,
        prior_rsd=0.3,
        state_rsd=0.1,
        process_noise=0.002,
        alarm_rule=None,
        nfe=40,
        method="ekf",
        window=8,
        iterations=3,
        residual_model="independent",
        autocorrelation=None,
    ):
        if residual_model not in ("independent", "ar1"):
            raise BiotwinError(f"residual_model {residual_model!r}: use 'independent' or 'ar1'")
        self.residual_model = residual_model
        self.autocorrelation = _autocorrelation(autocorrelation, residual_model)
        #: per measured variable: [last normalized innovation, sum of products of consecutive ones,
        #: sum of squares, consecutive pairs] (see :attr:`innovation_autocorrelation`)
        self._innovations: dict[str, list] = {}
        self._warned_autocorrelation = False
        if method not in ("ekf", "mhe"):
            raise BiotwinError(f"method {method!r}: use 'ekf' (extended Kalman filter) or 'mhe' (moving horizon)")
        for value, what in ((window, "window"), (iterations, "iterations")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BiotwinError(f"{what} must be a whole number of at least 1, got {value!r}")
        self.method = method
        self.model = model if isinstance(model, Model) else load_model(model)
        self.sim = Simulation(self.model, recipe, nfe=nfe)
        integ = self.sim.discretization.integrator
        if integ is None:
            raise BiotwinError(
                f"model '{self.model.name}': the twin needs the forward integrator, which this model's "
                f"structure does not support ({self.sim.discretization.unsupported})"
            )
        try:
            integ.require_autonomous(f"the twin of model '{self.model.name}' (its filter predicts from any time)")
        except UnsupportedStructure as exc:
            raise ModelDefinitionError(str(exc)) from None
        self.integrator = integ
        self.t_end = float(self.sim.grid[-1])
        self.time_unit = self.model.time_unit
        self.state_names = [s.local_name for s in integ.states]
        self.units = {s.local_name: unit_string(pyo.units.get_units(s)) for s in integ.states}
        self.signed = set(self.model.hook("SIGNED_STATES") or ())
        #: states kept non-negative (every state but the model's SIGNED_STATES), in state order
        self.nonnegative = np.array([s not in self.signed for s in self.state_names], dtype=bool)
        # outputs a sensor may read instead of a state (a thermocouple at the vial bottom): compiled on first use
        self._outputs = {k: v for k, v in integ.output_components().items() if k not in self.state_names}
        self._h: dict = {}
        names = integ.parameter_names()
        self.p_model = integ.parameter_vector()
        self.estimate = list(estimate)
        self._p_index, self._factor = [], []
        for name in self.estimate:
            if name not in self.model.parameter_set:
                raise BiotwinError(f"estimate: unknown parameter {name!r} of model '{self.model.name}'")
            if name not in names:
                raise BiotwinError(
                    f"estimate: parameter {name!r} does not enter the model's rate equations "
                    "(an initial value? the twin estimates the states themselves)"
                )
            yaml_value = self.sim.parameters[name]
            if not yaml_value > 0:
                raise BiotwinError(
                    f"estimate: parameter {name!r} is {yaml_value}; the twin estimates positive "
                    "parameters (in log space)"
                )
            k = names.index(name)
            self._p_index.append(k)
            self._factor.append(self.p_model[k] / yaml_value)
        for rsd, what in ((prior_rsd, "prior_rsd"), (state_rsd, "state_rsd")):
            if not (isinstance(rsd, (int, float)) and 0 < rsd < 10):
                raise BiotwinError(f"{what} must be a relative standard deviation in (0, 10), got {rsd!r}")
        theta0, cov_log = self._prior(prior, prior_rsd)
        # a variable no row can measure is refused by name
        unknown = [k for k in self.autocorrelation if k is not None and k not in self.measurable]
        if unknown:
            raise BiotwinError(
                f"autocorrelation: unknown variable(s) {unknown}; what a row may measure: {', '.join(self.measurable)}"
            )

        u0 = self._inputs_at(0.0)
        x0 = integ.initial_state(u0)
        nominal = integ.propagate(
            x0, 0.0, self.t_end, self.sim.programs, self._p(theta0), points=np.linspace(0, self.t_end, 41)[1:]
        )
        self.scale = np.maximum(np.max(np.abs(np.vstack([x0, nominal])), axis=0), 1e-9)
        n, q = len(self.state_names), len(self.estimate)
        self.a = np.concatenate([x0, np.log(theta0)])
        self.P = np.zeros((n + q, n + q))
        self.P[:n, :n] = np.diag(np.maximum(state_rsd * np.abs(x0), 1e-3 * self.scale) ** 2)
        self.P[n:, n:] = cov_log
        noise = process_noise if isinstance(process_noise, dict) else dict.fromkeys(self.state_names, process_noise)
        unknown = set(noise) - set(self.state_names)
        if unknown:
            raise BiotwinError(f"process_noise: unknown state(s) {sorted(unknown)}; states: {self.state_names}")
        self.Q = np.diag([(float(noise.get(s, 0.0)) * self.scale[i]) ** 2 for i, s in enumerate(self.state_names)])
        self.t = 0.0
        self._corrected_at = None
        self.alarm_rule = alarm_rule or AlarmRule()
        self.history: list[TwinUpdate] = []
        self.refused: list[dict] = []
        self.horizon = None
        if method == "mhe":
            from biotwin.twin.mhe import MovingHorizon

            self.horizon = MovingHorizon(self, window, iterations)

    # -- set-up helpers ----------------------------------------------------------------------------
    def _prior(self, prior, prior_rsd):
        theta = np.array([self.sim.parameters[p] for p in self.estimate], dtype=float)
        sd_log = math.sqrt(math.log(1 + prior_rsd**2))
        cov = np.diag(np.full(len(theta), sd_log**2))
        if prior is None:
            return theta, cov
        if isinstance(prior, (str, Path)):
            from biotwin.calibration import CalibrationResult

            prior = CalibrationResult.load(prior)
        diagnostics = getattr(prior, "diagnostics", None) or {}
        rho = diagnostics.get("residual_autocorrelation_lag1")
        if (
            self.residual_model == "ar1"
            and not self.autocorrelation
            and diagnostics.get("residual_model") == "ar1"
            and rho is not None
            and np.isfinite(rho)
        ):
            self.autocorrelation = {None: float(rho)}  # the calibration's residuals, pooled: every variable
        labels = list(prior.covariance["labels"])
        matrix = np.array(prior.covariance["matrix"], dtype=float)
        for i, name in enumerate(self.estimate):
            if name in prior.parameters and np.isfinite(prior.parameters[name].get("std_error") or np.inf):
                theta[i] = prior.parameters[name]["value"]
                for j, other in enumerate(self.estimate):
                    if name in labels and other in labels:
                        c = matrix[labels.index(name), labels.index(other)]
                        if np.isfinite(c):
                            theta_j = prior.parameters[other]["value"] if other in prior.parameters else theta[j]
                            cov[i, j] = c / (theta[i] * theta_j)
        return theta, cov

    def _p(self, theta) -> np.ndarray:
        p = self.p_model.copy()
        for k, factor, value in zip(self._p_index, self._factor, theta, strict=True):
            p[k] = factor * value
        return p

    def _inputs_at(self, t):
        u = np.array([float(v[max(self.integrator.time_set)].value or 0.0) for v in self.integrator.inputs])
        for k, v in enumerate(self.integrator.inputs):
            prog = self.sim.programs.get(v.local_name)
            if prog is not None:
                u[k] = prog.value_at(t, "right")
        return u

    def _flow(self, a, t0, t1, points=()):
        n = len(self.state_names)
        return self.integrator.propagate(a[:n], t0, t1, self.sim.programs, self._p(np.exp(a[n:])), points=points)

    def _jacobian(self, a, t0, t1, points=()):
        """Forward-difference sensitivities of the states at ``points`` and ``t1`` to ``a`` at ``t0``."""
        base = self._flow(a, t0, t1, points)
        n = len(self.state_names)
        J = np.empty((base.shape[0], n, len(a)))
        for j in range(len(a)):
            h = self._step(a, j)
            b = a.copy()
            b[j] += h
            J[:, :, j] = (self._flow(b, t0, t1, points) - base) / h
        return base, J

    def _step(self, a, j) -> float:
        """Forward-difference step of ``a[j]``: 1e-6 of a state's magnitude (at least 1e-3 of its scale),
        1e-6 in a log parameter."""
        n = len(self.state_names)
        return 1e-6 * (max(abs(a[j]), 1e-3 * self.scale[j]) if j < n else 1.0)

    def clip(self, a) -> np.ndarray:
        """``a`` with its non-negative states raised to zero where they dipped below it (a copy)."""
        a = np.array(a, dtype=float)
        n = len(self.state_names)
        a[:n][self.nonnegative & (a[:n] < 0)] = 0.0
        return a

    # -- the update --------------------------------------------------------------------------------
    def update(self, rows) -> TwinUpdate:
        """Use the rows that arrived; return the estimate at the latest time.

        ``rows``: a DataFrame (or a mapping of columns) in the calibration data format: ``time`` [model
        time unit], one column per measured state or output (:attr:`measurable`), ``<name>_sigma`` its
        standard deviation (required),
        empty = not measured. A row that cannot be used -- time not after the last update, no time, a
        negative or non-finite value, a value without its sigma, an unknown column, a column that names a
        measured variable with a unit (``Glc [g/L]``: values are read in the model's unit) -- is refused with
        its reason (in ``update.refused`` and ``twin.refused``, and logged as a warning on the
        ``biotwin.twin.twin`` logger) and the twin goes on.
        """
        wall0 = _time.perf_counter()
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        refused, nis_total, m_total, contributions = [], 0.0, 0, {}
        unknown = [c for c in frame.columns if c != "time" and c.removesuffix("_sigma") not in self.measurable]
        for column in list(unknown):
            reason = self._unit_in_name(column)
            if reason:
                refused.append({"time": None, "reason": reason})
                unknown.remove(column)
                frame = frame.drop(columns=column)
        if unknown:
            refused.append(
                {
                    "time": None,
                    "reason": f"unknown column(s) {unknown}: not states or outputs of "
                    f"'{self.model.name}' (states: {', '.join(self.state_names)}; outputs: "
                    f"{', '.join(self._outputs) or 'none'})",
                }
            )
            frame = frame.drop(columns=unknown)
        if "time" not in frame.columns:
            raise DataError("rows without a 'time' column [model time unit]")
        for _, row in frame.iterrows():
            reason, measured = self._check_row(row)
            if reason:
                refused.append({"time": row.get("time"), "reason": reason})
                continue
            t_k = float(row["time"])
            if t_k > self.t:
                self._predict(t_k)
            widened = self._error_model(measured)
            nis, m, contrib = self._correct(widened, t_k, marginal=measured)
            self._corrected_at = t_k
            if self.horizon is not None:
                self.horizon.add(t_k, widened)
            nis_total += nis
            m_total += m
            for k, v in contrib.items():
                contributions[k] = contributions.get(k, 0.0) + v
        self.refused.extend(refused)
        for r in refused:
            log.warning(
                "twin of '%s': refused %s: %s",
                self.model.name,
                f"row at {r['time']}" if r["time"] is not None else "input",
                r["reason"],
            )
        if self.horizon is not None and m_total:
            try:
                self.a, self.P = self.horizon.solve()
            except (FloatingPointError, np.linalg.LinAlgError, BiotwinError) as exc:
                # the filter's estimate of this update stands; the failure is on record, the twin goes on
                self.horizon.last = {"failed": f"{type(exc).__name__}: {exc}"}
                refused.append(
                    {"time": self.t, "reason": f"moving horizon not solved, the EKF estimate is used ({exc})"}
                )
        alarms = self.alarm_rule.check(self.t, nis_total, m_total, contributions) if m_total else []
        update = TwinUpdate(
            time=self.t,
            states=self._state_estimates(),
            parameters=self._parameter_estimates(),
            nis=nis_total if m_total else float("nan"),
            n_measured=m_total,
            alarms=alarms,
            refused=refused,
            update_s=_time.perf_counter() - wall0,
            _twin=self,
            _snapshot=(self.a.copy(), self.P.copy(), self.t),
        )
        self.history.append(update)
        return update

    def _unit_in_name(self, column: str) -> str | None:
        """The reason to refuse a column that names a measured variable with a unit (``Glc [g/L]``), or None."""
        match = _UNIT_IN_NAME.match(column)
        name = match.group(1).removesuffix("_sigma") if match else None
        if name not in self.measurable:
            return None
        unit, expected = match.group(2), self.unit_of(name)
        try:
            factor = convert_value(1.0, parse_unit(unit, f"column {column!r}"), parse_unit(expected))
            kind = (
                f"{unit} is {expected}: rename the column"
                if abs(factor - 1.0) < 1e-12
                else f"1 {unit} = {factor:.6g} {expected}: convert the values"
            )
        except Exception:  # noqa: BLE001 - an unknown unit or one of another kind: the same refusal
            kind = f"{unit!r} is not a unit of {name} ({expected})"
        return (
            f"column {column!r}: the twin reads {name} in the model's unit ({expected}) from a column named "
            f"{match.group(1)!r}, never a unit from a column name ({kind}); the column is not used"
        )

    def _check_row(self, row):
        t = row.get("time")
        if not _is_number(t) or not np.isfinite(t):
            return f"time {t!r} is not a number", None
        if t > self.t_end:
            return f"time {t:g} {self.time_unit} is after the end of the recipe ({self.t_end:g})", None
        if t < self.t:
            return f"time {t:g} {self.time_unit} is before the last row used ({self.t:g}): late or out of order", None
        if t == self._corrected_at:
            return f"time {t:g} {self.time_unit} was already used: a duplicate row", None
        measured = {}
        for name in self.measurable:
            if name not in row.index or pd.isna(row[name]):
                continue
            value, sigma = row[name], row.get(f"{name}_sigma")
            if not _is_number(value) or not np.isfinite(value):
                return f"{name} = {value!r} is not a finite number", None
            if value < 0 and name in self.state_names and name not in self.signed:
                return f"{name} = {value:g} is negative", None
            if name in self._outputs:
                try:
                    self._output_function(name)
                except BiotwinError as exc:
                    return str(exc), None
            if sigma is None or pd.isna(sigma) or not sigma > 0:
                return f"{name} has no positive {name}_sigma (its standard deviation, same unit)", None
            measured[name] = (float(value), float(sigma))
        if not measured:
            return "nothing measured in the row", None
        return None, measured

    def _predict(self, t_k):
        self.a, self.P = self._predicted(self.a, self.P, self.t, t_k)
        self.t = t_k

    def _predicted(self, a, P, t0, t1):
        """Mean and covariance of ``a`` carried from ``t0`` to ``t1`` (the EKF's time update)."""
        n = len(self.state_names)
        base, J = self._jacobian(a, t0, t1)
        F = np.eye(len(a))
        F[:n, :] = J[-1]
        a = a.copy()
        a[:n] = base[-1]
        P = F @ P @ F.T
        P[:n, :n] += self.Q * (t1 - t0)
        return a, 0.5 * (P + P.T)

    def _correct(self, measured, t, marginal=None):
        """The filter's correction with ``measured`` (sds widened by the error model). The innovations are
        normalized with the sds as measured (``marginal``: one reading's error has that variance whatever
        its correlation with the last); under ``residual_model="ar1"`` the alarm test takes them whitened,
        ``(v_k - rho v_(k-1)) / sqrt(1 - rho^2)`` per variable (independent again under AR(1) errors), so its
        thresholds keep their stated false-alarm rates. The price is the usual one: a sustained offset moves
        the whitened innovations by ``sqrt((1 - rho)/(1 + rho))`` of what it moves the raw ones."""
        self.a, self.P, nis, m, contrib, normalized = self._corrected(self.a, self.P, measured, t, marginal)
        if self.residual_model == "ar1":
            contrib = {}
            for name, value in normalized.items():
                rho, last = self._rho(name), self._innovations.get(name, [math.nan])[0]
                if math.isfinite(last) and math.isfinite(rho) and rho > 0:
                    rho = min(rho, 0.999)
                    value = (value - rho * last) / math.sqrt(1.0 - rho * rho)
                contrib[name] = value * value
            nis = float(sum(contrib.values()))
        for name, value in normalized.items():
            stats = self._innovations.setdefault(name, [math.nan, 0.0, 0.0, 0])
            if math.isfinite(stats[0]):
                stats[1] += value * stats[0]
                stats[3] += 1
            stats[0] = value
            stats[2] += value * value
        self._warn_if_autocorrelated()
        return nis, m, contrib

    @property
    def innovation_autocorrelation(self) -> dict:
        """``{variable: (rho, pairs)}``: lag-1 autocorrelation of each measured variable's normalized
        innovations so far, ``sum v_k v_(k-1) / sum v_k^2`` (not centred, as
        :func:`biotwin.calibration.statistics.residual_autocorrelation`); NaN before 10 consecutive pairs.
        Near 0 when the errors are independent and the model follows the process; near 1 for a dense
        record the model misses slowly."""
        return {name: (_measured_rho(stats), stats[3]) for name, stats in self._innovations.items()}

    def _error_model(self, measured: dict) -> dict:
        """``measured`` with each sd widened by the AR(1) inflation of its variable (``residual_model="ar1"``)."""
        if self.residual_model != "ar1":
            return measured
        return {
            name: (value, sd * math.sqrt(ar1_variance_inflation(self._rho(name))))
            for name, (value, sd) in measured.items()
        }

    def _rho(self, name) -> float:
        """The lag-1 autocorrelation in use for ``name``: given, else measured (NaN before 10 pairs)."""
        rho = self.autocorrelation.get(name, self.autocorrelation.get(None))
        if rho is None:
            rho = _measured_rho(self._innovations.get(name, (math.nan, 0.0, 0.0, 0)))
        return rho

    def _warn_if_autocorrelated(self) -> None:
        if self.residual_model != "independent" or self._warned_autocorrelation:
            return
        for name, (rho, pairs) in self.innovation_autocorrelation.items():
            if pairs >= 3 * MIN_AUTOCORRELATION_PAIRS and rho > AUTOCORRELATION_WARNING:
                self._warned_autocorrelation = True
                warnings.warn(
                    f"twin of '{self.model.name}': the innovations of {name} are autocorrelated (lag-1 {rho:.2f} "
                    f"over {pairs} pairs): parameter sds that assume independent errors are too narrow (variance "
                    f"understated about {ar1_variance_inflation(rho):.3g}x); Twin(..., residual_model='ar1') "
                    "widens them",
                    UserWarning,
                    stacklevel=4,
                )
                return

    @property
    def measurable(self) -> list[str]:
        """What a row may measure: every state, and the model's time-indexed outputs (algebraic variables
        and ``Expression`` components), each in the model's unit."""
        return self.state_names + list(self._outputs)

    def unit_of(self, name) -> str:
        """The unit of a state or output, as the model declares it."""
        if name in self.units:
            return self.units[name]
        component = self._outputs[name]
        return unit_string(pyo.units.get_units(component[self.t_end]))

    def _output_function(self, name):
        if name not in self._h:
            try:
                self._h[name] = self.integrator.output(self._outputs[name])
            except UnsupportedStructure as exc:
                raise BiotwinError(f"{name} cannot be measured by the twin: {exc}") from None
        return self._h[name]

    def _measure(self, a, names, t, jacobian=True):
        """Predicted values of the measured ``names`` at ``a`` (time ``t``) and their derivatives to ``a``.

        A state is read directly; an output through its compiled function of the states, the inputs at
        ``t`` and the parameters, differentiated by forward differences (the steps of :meth:`_jacobian`).
        """
        n = len(self.state_names)
        y, H = np.zeros(len(names)), np.zeros((len(names), len(a)))
        u = None
        for k, name in enumerate(names):
            if name in self.state_names:
                i = self.state_names.index(name)
                y[k], H[k, i] = a[i], 1.0
                continue
            h = self._output_function(name)
            if u is None:
                u = self._inputs_at(t)

            def value(b, h=h, u=u):
                return h(b[:n], u, self._p(np.exp(b[n:])))

            y[k] = value(a)
            if jacobian:
                for j in range(len(a)):
                    step = self._step(a, j)
                    b = a.copy()
                    b[j] += step
                    H[k, j] = (value(b) - y[k]) / step
        return y, H

    def _corrected(self, a, P, measured, t, marginal=None):
        """The EKF's measurement update of ``(a, P)`` with ``measured`` ``{name: (value, sd)}`` at time ``t``;
        the normalized innovations (NIS, per-variable contributions and signed values) with the sds of
        ``marginal`` when given."""
        y = np.array([v for v, _ in measured.values()])
        R = np.diag([s**2 for _, s in measured.values()])
        y_hat, H = self._measure(a, list(measured), t)
        nu = y - y_hat
        HPH = H @ P @ H.T
        S = HPH + R
        S_inv = np.linalg.inv(S)
        K = P @ H.T @ S_inv
        if marginal is not None and marginal is not measured:  # sds widened (AR(1)): test with the measured ones
            S = HPH + np.diag([s**2 for _, s in marginal.values()])
            S_test = np.linalg.inv(S)
        else:
            S_test = S_inv
        a = a + K @ nu
        IKH = np.eye(len(a)) - K @ H
        P = IKH @ P @ IKH.T + K @ R @ K.T
        a = self.clip(a)
        contrib = {name: float(nu[k] ** 2 / S[k, k]) for k, name in enumerate(measured)}
        normalized = {name: float(nu[k] / math.sqrt(S[k, k])) for k, name in enumerate(measured)}
        return a, P, float(nu @ S_test @ nu), len(measured), contrib, normalized

    # -- outputs -----------------------------------------------------------------------------------
    def _state_estimates(self):
        n = len(self.state_names)
        sd = np.sqrt(np.maximum(np.diag(self.P)[:n], 0.0))
        return {s: (float(self.a[i]), float(sd[i])) for i, s in enumerate(self.state_names)}

    def _parameter_estimates(self):
        n = len(self.state_names)
        out = {}
        for j, name in enumerate(self.estimate):
            s2 = max(self.P[n + j, n + j], 0.0)
            value = float(np.exp(self.a[n + j]))
            out[name] = (value, value * math.sqrt(math.expm1(s2)))
        return out

    def _forecast(self, a, P, t_now, points=40, method="linear", samples=400, seed=0):
        times = np.linspace(t_now, self.t_end, points + 1)[1:]
        if t_now >= self.t_end:
            times = np.array([self.t_end])
        if method == "sampling":
            base = self._flow(a, t_now, self.t_end, points=times[:-1])
            draws = np.random.default_rng(seed).multivariate_normal(a, 0.5 * (P + P.T), size=samples, method="eigh")
            runs = np.array([self._flow(self.clip(d), t_now, self.t_end, points=times[:-1]) for d in draws])
            lo, hi = np.percentile(runs, [2.5, 97.5], axis=0)
        else:
            base, J = self._jacobian(a, t_now, self.t_end, points=times[:-1])
            sd = np.sqrt(np.maximum(np.einsum("kij,jl,kil->ki", J, P, J), 0.0))  # diag(J_k P J_k')
            lo, hi = base - Z95 * sd, base + Z95 * sd
        rows = []
        for k, t in enumerate(times):
            for i, s in enumerate(self.state_names):
                rows.append((t, s, base[k, i], lo[k, i], hi[k, i], self.units.get(s, "")))
        return pd.DataFrame(rows, columns=["time", "variable", "value", "lo95", "hi95", "unit"])
