"""Validation protocols: what a model is for, which data calibrate it, which held-out data judge it.

A protocol is a YAML file (``validation.yaml`` next to the model, or any file)::

    model: mab_fedbatch               # optional: refused if it names another model
    intended_use: >-                  # in words: the decision the model supports
      Compare bolus-feeding recipes for this CHO platform at bench scale.
    tier: 2                           # the decision tier claimed (1 exploratory ... 6 release-relevant)
    data_kind: real                   # real (measured batches) or synthetic (made by a model)
    estimate: [mu_max, beta_P]        # parameters calibrated
    calibration: [data/run1.csv, data/run2.csv]    # paths relative to the protocol file
    validation: [data/run4.csv]       # held-out runs, never in calibration
    nfe: 40                           # collocation elements per experiment (default 40)
    residual_model: independent       # or ar1: intervals for autocorrelated errors (biotwin.calibrate)
    criteria:
      - {metric: rmse_sd, variable: titer, threshold: 2.0, on: validation}
      - {metric: coverage95, variable: titer, threshold: 0.8, on: validation}
      - {metric: max_abs_error, variable: Glc, threshold: {value: 3.0, unit: mM}, on: validation}
      - {metric: condition_number, threshold: 1.0e+4, on: calibration, tier: 2}
      - {metric: stress_solved, threshold: 1.0, on: stress}
    stress:                           # optional: recipe ranges where the model must solve and stay physical
      grid: {feed_factor: [0.05, 2.5], seeding: [0.1, 1.0]}   # explorer knobs, as in a sweep
    requalification:                  # when a new batch should trigger requalification (biotwin drift)
      max_rmse_sd: 3.0                # RMS of the batch's normalized residuals above this: drift
      false_alarm_rate: 0.01          # chi-square test of the same residuals at this false-alarm rate

Every criterion has a metric of :data:`METRICS`, a threshold (a plain number for the dimensionless
metrics, ``{value, unit}`` for those in the variable's unit), the data it is judged ``on`` and the
lowest ``tier`` it is required for (default: the claimed tier). The tier the evidence supports is the
highest tier up to the claimed one whose criteria all pass; tier 1 (exploratory) needs none.
Synthetic data (``data_kind: synthetic``) test the machinery, not the model's agreement with a real
process: whatever their criteria show, the evidence they give supports tier 1 only, and the report
says so.

Options are validated by :mod:`pyomo.common.config` (documented domains); a protocol that does not
match the model or its data -- an unknown key, metric or variable, a validation run also used for
calibration, a threshold without a unit where one is needed -- is refused with a named reason.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from pyomo.common.config import ConfigDict, ConfigList, ConfigValue, In, ListOf, NonNegativeFloat, PositiveInt
from pyomo.core.base.units_container import UnitsError

from biotwin.core import yaml_io
from biotwin.core.errors import BiotwinError, config_error_text

#: metric -> (direction, needs a unit, what it measures)
METRICS = {
    "rmse_sd": ("max", False, "root mean square of (prediction - data) / prediction sd [-]"),
    "bias_sd": ("max", False, "|mean of (prediction - data) / prediction sd| [-]"),
    "coverage95": ("min", False, "share of the data inside the 95 % prediction band [-]"),
    "max_abs_error": ("max", True, "largest |prediction - data| [the variable's unit]"),
    "endpoint_rel_error": ("max", False, "|prediction - data| / |data| at the last measured time [-]"),
    "condition_number": ("max", False, "condition number of the scaled sensitivity matrix (calibration) [-]"),
    "max_abs_correlation": ("max", False, "largest |correlation| between two estimates (calibration) [-]"),
    "stress_solved": ("min", False, "share of the stress points that solve and stay physical (stress) [-]"),
}
CALIBRATION_ONLY = {"condition_number", "max_abs_correlation"}
STRESS_ONLY = {"stress_solved"}
REQUIRED = {
    "intended_use": "the decision the model supports, in words",
    "tier": "the decision tier claimed, 1-6",
    "data_kind": "real (measured batches) or synthetic (made by a model)",
    "estimate": "the parameters calibrated",
    "calibration": "the calibration data files",
    "validation": "held-out data files, different runs from the calibration",
}


class ProtocolError(BiotwinError):
    """A validation protocol that cannot be used as written."""


def _criterion_config() -> ConfigDict:
    c = ConfigDict()
    c.declare("metric", ConfigValue(domain=In(list(METRICS)), description="what is measured (METRICS)"))
    c.declare(
        "variable", ConfigValue(domain=str, default=None, description="measured variable (not for calibration metrics)")
    )
    c.declare("threshold", ConfigValue(default=None, description="number, or {value, unit} for metrics in a unit"))
    c.declare("on", ConfigValue(domain=In(["validation", "calibration", "stress"]), default="validation"))
    c.declare("tier", ConfigValue(domain=In([1, 2, 3, 4, 5, 6]), default=None, description="lowest tier needing it"))
    return c


def protocol_config() -> ConfigDict:
    """The protocol schema: every key, its domain and its default."""
    c = ConfigDict()
    c.declare("model", ConfigValue(domain=str, default=None, description="the model the protocol is for"))
    c.declare("intended_use", ConfigValue(domain=str, description="the decision the model supports, in words"))
    c.declare("tier", ConfigValue(domain=In([1, 2, 3, 4, 5, 6]), description="decision tier claimed"))
    c.declare(
        "data_kind",
        ConfigValue(domain=In(["real", "synthetic"]), default=None, description="real or synthetic data"),
    )
    c.declare("estimate", ConfigValue(domain=ListOf(str), description="parameters calibrated"))
    c.declare("calibration", ConfigValue(domain=ListOf(str), description="calibration data files"))
    c.declare("validation", ConfigValue(domain=ListOf(str), description="held-out data files"))
    c.declare("nfe", ConfigValue(domain=PositiveInt, default=40, description="collocation elements per experiment"))
    c.declare(
        "residual_model",
        ConfigValue(
            domain=In(["independent", "ar1"]),
            default="independent",
            description="the calibration's measurement errors: independent, or AR(1) within each series",
        ),
    )
    c.declare("criteria", ConfigList(domain=_criterion_config(), description="acceptance criteria"))
    st = ConfigDict(description="recipe ranges over which the model must stay solvable and physical")
    st.declare("recipe", ConfigValue(default=None, description="base recipe (default: the explorer's)"))
    st.declare("grid", ConfigValue(domain=dict, default={}, description="knob -> values, as in a sweep"))
    st.declare("output", ConfigValue(domain=str, default=None, description="what to record (default: X:final)"))
    c.declare("stress", st)
    r = ConfigDict()
    r.declare(
        "max_rmse_sd",
        ConfigValue(domain=NonNegativeFloat, default=3.0, description="RMS normalized residual of a batch [-]"),
    )
    r.declare(
        "false_alarm_rate",
        ConfigValue(domain=_probability, default=0.01, description="of the chi-square drift test [-]"),
    )
    c.declare("requalification", r)
    return c


def _probability(x) -> float:
    x = float(x)
    if not 0.0 < x < 1.0:
        raise ValueError(f"{x} is not a probability strictly between 0 and 1")
    return x


@dataclass
class Criterion:
    metric: str
    variable: str | None
    threshold: float  # in the variable's unit where the metric has one
    on: str
    tier: int
    unit: str | None = None

    @property
    def label(self) -> str:
        what = f"{self.metric}({self.variable})" if self.variable else self.metric
        op = ">=" if METRICS[self.metric][0] == "min" else "<="
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} {op} {self.threshold:g}{unit} on {self.on}"

    def passes(self, value: float) -> bool:
        if math.isnan(value):  # nothing to judge -> not passed
            return False
        return value >= self.threshold if METRICS[self.metric][0] == "min" else value <= self.threshold


@dataclass
class Protocol:
    path: Path | None
    sha256: str
    model: str | None
    intended_use: str
    tier: int
    data_kind: str
    estimate: list
    calibration: list
    validation: list
    nfe: int
    criteria: list
    max_rmse_sd: float
    false_alarm_rate: float = 0.01
    stress: dict | None = None  # {recipe, grid, output}
    residual_model: str = "independent"  # what the calibration assumes of its errors (biotwin.calibrate)


def variable_unit(model, name: str) -> str:
    """The unit of a model's state, input or output ``name`` (:meth:`biotwin.Model.variable_units`)."""
    units = model.variable_units()
    if name not in units:
        raise ProtocolError(f"model {model.name!r} has no time-dependent variable {name!r}")
    return units[name]


def read_protocol(source, model) -> Protocol:
    """Read and check a protocol against the model (and its data files' columns).

    Parameters
    ----------
    source : path or dict
        The YAML file (data paths relative to it) or a mapping (paths relative to the model folder).
    model : biotwin.Model
    """
    from biotwin.core.data import read_experiment
    from biotwin.core.units import convert_value, parse_unit

    if isinstance(source, dict):
        raw, path, base = dict(source), None, model.folder
        sha = hashlib.sha256(repr(sorted(source.items())).encode()).hexdigest()
    else:
        path = Path(source)
        raw = yaml_io.load_mapping_file(path, "protocol", ProtocolError, "intended_use, tier, ...")
        base = path.parent
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
    where = str(path) if path else "<protocol dict>"
    try:
        cfg = protocol_config()(raw)
    except ValueError as exc:
        raise ProtocolError(f"{where}: {config_error_text(exc)}") from None
    for key in ("intended_use", "tier", "data_kind", "estimate", "calibration", "validation"):
        if cfg[key] in (None, [], ""):
            raise ProtocolError(f"{where}: '{key}' is required ({REQUIRED[key]})")
    if cfg.model and cfg.model != model.name:
        raise ProtocolError(f"{where}: the protocol is for model {cfg.model!r}, not {model.name!r}")
    unknown = [p for p in cfg.estimate if p not in model.parameter_units()]
    if unknown:
        raise ProtocolError(f"{where}: estimate names unknown parameters {unknown} of model {model.name!r}")

    def resolve(name):
        p = Path(name)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise ProtocolError(f"{where}: data file {name} not found (looked at {p})")
        return p.resolve()

    calibration = [resolve(n) for n in cfg.calibration]
    validation = [resolve(n) for n in cfg.validation]
    shared = sorted(set(calibration) & set(validation))
    if shared:
        raise ProtocolError(
            f"{where}: {', '.join(p.name for p in shared)} is both a calibration and a validation run; "
            "held-out data must be different runs"
        )
    measured = {"calibration": set(), "validation": set()}
    for role, files in (("calibration", calibration), ("validation", validation)):
        for f in files:
            exp = read_experiment(f)
            measured[role] |= {c for c in exp.data.columns if c != "time"}

    criteria = []
    for i, c in enumerate(cfg.criteria, start=1):
        here = f"{where}: criterion {i} ({c.metric})"
        if c.metric in CALIBRATION_ONLY | STRESS_ONLY:
            kind = "calibration" if c.metric in CALIBRATION_ONLY else "stress"
            if c.on != kind:
                raise ProtocolError(f"{here}: {c.metric} describes the {kind}; write on: {kind}")
            if c.variable:
                raise ProtocolError(f"{here}: {c.metric} has no variable")
            if kind == "stress" and not cfg.stress.grid:
                raise ProtocolError(f"{here}: no stress block: give stress: {{grid: {{knob: [values]}}}}")
        else:
            if c.on == "stress":
                raise ProtocolError(f"{here}: only stress_solved is judged on the stress points")
            if not c.variable:
                raise ProtocolError(f"{here}: name the measured variable it judges (variable: ...)")
            if c.variable not in measured[c.on]:
                raise ProtocolError(
                    f"{here}: variable {c.variable!r} is not measured in the {c.on} data "
                    f"(measured: {', '.join(sorted(measured[c.on])) or 'nothing'})"
                )
        needs_unit = METRICS[c.metric][1]
        threshold, unit = c.threshold, None
        if threshold is None:
            raise ProtocolError(f"{here}: no threshold")
        if isinstance(threshold, dict):
            if not needs_unit:
                raise ProtocolError(f"{here}: {c.metric} is dimensionless; give the threshold as a plain number")
            if set(threshold) != {"value", "unit"}:
                raise ProtocolError(f"{here}: a threshold with a unit is {{value: ..., unit: ...}}, not {threshold}")
            target = variable_unit(model, c.variable)
            try:
                value = convert_value(float(threshold["value"]), parse_unit(str(threshold["unit"])), parse_unit(target))
            except (BiotwinError, UnitsError, ValueError) as exc:  # an unknown unit, or another dimension
                raise ProtocolError(
                    f"{here}: threshold {threshold['value']} {threshold['unit']} cannot be expressed in "
                    f"{c.variable}'s unit {target} ({exc})"
                ) from None
            threshold, unit = value, target
        elif needs_unit:
            raise ProtocolError(
                f"{here}: the threshold of {c.metric} is in a unit; write threshold: {{value: {threshold}, unit: ...}}"
            )
        else:
            try:
                threshold = float(threshold)
            except (TypeError, ValueError):
                raise ProtocolError(f"{here}: threshold {threshold!r} is not a number") from None
        tier = c.tier if c.tier is not None else cfg.tier
        if tier > cfg.tier:
            raise ProtocolError(f"{here}: required for tier {tier}, above the claimed tier {cfg.tier}")
        criteria.append(Criterion(c.metric, c.variable, threshold, c.on, tier, unit))
    if not criteria:
        raise ProtocolError(f"{where}: no acceptance criteria; a tier above 1 needs at least one")
    if cfg.stress.grid:  # the stress grid must name the model's knobs (checked now, run by validate)
        from biotwin.sweep import SweepError, read_sweep

        try:
            read_sweep({"recipe": cfg.stress.recipe, "grid": dict(cfg.stress.grid), "outputs": ["stress"]}, model)
        except SweepError as exc:
            raise ProtocolError(f"{where}: stress: {str(exc).split(': ', 1)[-1]}") from None
    return Protocol(
        path=path,
        sha256=sha,
        model=cfg.model,
        intended_use=cfg.intended_use,
        tier=cfg.tier,
        data_kind=cfg.data_kind,
        estimate=list(cfg.estimate),
        calibration=calibration,
        validation=validation,
        nfe=cfg.nfe,
        residual_model=cfg.residual_model,
        criteria=criteria,
        max_rmse_sd=cfg.requalification.max_rmse_sd,
        false_alarm_rate=cfg.requalification.false_alarm_rate,
        stress=(
            {"recipe": cfg.stress.recipe, "grid": dict(cfg.stress.grid), "output": cfg.stress.output}
            if cfg.stress.grid
            else None
        ),
    )
