"""The sweep specification: which recipe knobs over which values, which parameters drawn how, what to record.

A sweep is a YAML file (or a mapping)::

    model: lyophilization            # optional: refused if it names another model
    recipe: case1_standard           # the base recipe (scenario name, or a path relative to the file)
    nfe: 60                          # collocation elements per simulation
    mesh_tol: 1.0e-4                 # grid refinement per point (biotwin.engine.mesh); null: the grid as given
    grid:                            # recipe knobs (the model's EXPLORER knobs) or parameters
      shelf_C: [-20, -10, 0, 10]     #   a list of values in the knob's unit,
      pressure_mTorr: {from: 60, to: 300, n: 5}   # or evenly spaced values
    samples:                         # optional: uncertain parameters, drawn at every grid cell
      n: 200
      method: lhs                    # lhs | sobol | random | saltelli (Sobol indices; n*(d+2) points)
      seed: 1
      parameters:                    # in the unit of parameters.yaml, or give unit:
        R0: {dist: lognormal, median: 1.4, rsd: 0.2}
        KC: {dist: normal, mean: 2.75e-4, sd: 2.0e-5}
        A1: {dist: uniform, low: 12, high: 20}
      calibration: fit.json          # or: a saved calibration's estimates and covariance (normal)
    classes:                         # vial (or vessel) classes simulated together at every point
      centre: {}
      edge: {scale: {KC: 1.3, KP: 1.3}, source: "edge vials' larger heat transfer (reference)"}
    outputs: [primary_drying_time_h, max_T_bottom_C]   # keys of the model's summary(result)
    limits:                          # a point passes when every limit holds in every class
      - {output: max_T_bottom_C, max: -5.0}
      - {output: primary_drying_time_h, max: 12.0}
    chunk: 50                        # points per task (and per Parquet file)
    parameters: {mu_max: 0.031}      # optional: fixed parameter values at every point (e.g. estimates)

Options are validated by :mod:`pyomo.common.config`; a spec that does not match the model (an unknown
knob, parameter or output, a distribution without its numbers, a unit of another dimension) is
refused with a named reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pyomo.common.config import ConfigDict, ConfigValue, In, ListOf, NonNegativeInt, PositiveInt

from biotwin.core import yaml_io
from biotwin.core.errors import BiotwinError, config_error_text
from biotwin.engine.mesh import MESH_TOL

DISTRIBUTIONS = {
    "normal": ("mean", "sd"),
    "lognormal": ("median", "rsd"),
    "uniform": ("low", "high"),
}
METHODS = ("lhs", "sobol", "random", "saltelli")


class SweepError(BiotwinError):
    """A sweep that cannot run as written."""


def _mesh_tol(value):
    """A positive tolerance, or None (null in YAML): the grid as given."""
    if value is None:
        return None
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"mesh_tol must be a positive number or null, got {value!r}")
    return value


def sweep_config() -> ConfigDict:
    """The sweep schema: every key, its domain and its default."""
    c = ConfigDict()
    c.declare("model", ConfigValue(domain=str, default=None, description="the model the sweep is for"))
    c.declare("recipe", ConfigValue(default=None, description="base recipe: scenario name or YAML path"))
    c.declare("nfe", ConfigValue(domain=PositiveInt, default=60, description="collocation elements"))
    c.declare(
        "mesh_tol",
        ConfigValue(
            domain=_mesh_tol,
            default=MESH_TOL,
            description="grid refinement per point [share of a state's range]; null keeps the grid as given",
        ),
    )
    c.declare("grid", ConfigValue(domain=dict, default={}, description="knob -> values or {from, to, n}"))
    s = ConfigDict(description="uncertain parameters")
    s.declare("n", ConfigValue(domain=NonNegativeInt, default=0, description="samples per grid cell"))
    s.declare("method", ConfigValue(domain=In(METHODS), default="lhs"))
    s.declare("seed", ConfigValue(domain=int, default=0))
    s.declare("parameters", ConfigValue(domain=dict, default={}, description="name -> {dist, ...}"))
    s.declare("calibration", ConfigValue(domain=str, default=None, description="saved calibration JSON"))
    c.declare("samples", s)
    c.declare("classes", ConfigValue(domain=dict, default={}, description="class -> {scale: {param: factor}}"))
    c.declare("outputs", ConfigValue(domain=ListOf(str), default=[], description="summary keys to record"))
    c.declare("limits", ConfigValue(domain=list, default=[], description="[{output, max|min}]"))
    c.declare("chunk", ConfigValue(domain=PositiveInt, default=50, description="points per task and file"))
    c.declare("parameters", ConfigValue(domain=dict, default={}, description="fixed parameter values for every point"))
    return c


@dataclass
class SweepSpec:
    """A checked sweep: the base recipe, the point table and what to record."""

    model: object
    base_raw: dict
    nfe: int
    mesh_tol: float | None
    grid: dict  # knob -> list of values
    classes: dict  # class -> {param: factor}
    outputs: list
    limits: list  # [(output, "max"|"min", value)]
    chunk: int
    points: pd.DataFrame = field(repr=False)
    knob_names: list = field(default_factory=list)
    sampled: list = field(default_factory=list)
    method: str = "lhs"
    n_base: int = 0
    source: dict = field(default_factory=dict)

    @property
    def plan_sha256(self) -> str:
        """Hash of everything that decides the points' results (a resumed sweep must match it)."""
        payload = {
            "model": self.model.name,
            "recipe": self.base_raw,
            "nfe": self.nfe,
            "mesh_tol": self.mesh_tol,
            "classes": self.classes,
            "outputs": self.outputs,
            "chunk": self.chunk,
            "points": self.points.round(12).to_dict(orient="list"),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _values(name, spec) -> list:
    if isinstance(spec, dict):
        if set(spec) != {"from", "to", "n"}:
            raise SweepError(f"grid '{name}': give a list of values or {{from, to, n}}, not {spec}")
        n = int(spec["n"])
        if n < 1:
            raise SweepError(f"grid '{name}': n must be at least 1")
        return [float(v) for v in np.linspace(float(spec["from"]), float(spec["to"]), n)]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise SweepError(f"grid '{name}': give a non-empty list of values or {{from, to, n}}")
    out = []
    for v in spec:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise SweepError(f"grid '{name}': {v!r} is not a number") from None
        if not math.isfinite(x):
            raise SweepError(f"grid '{name}': {v!r} is not a finite number")
        out.append(x)
    return out


def _unit_factor(model, name, unit) -> float:
    from biotwin.core.units import convert_value, parse_unit

    target = model.parameter_units()[name]
    try:
        return convert_value(1.0, parse_unit(str(unit)), parse_unit(target))
    except Exception as exc:  # noqa: BLE001 - an unknown unit or another dimension, named below
        raise SweepError(f"samples: parameter '{name}': unit {unit} cannot be expressed in {target} ({exc})") from None


def _distribution(model, name, d) -> tuple:
    """(kind, a, b) in the parameter's own unit."""
    if name not in model.parameter_units():
        raise SweepError(f"samples: unknown parameter '{name}' of model '{model.name}'")
    if not isinstance(d, dict) or d.get("dist") not in DISTRIBUTIONS:
        raise SweepError(f"samples: parameter '{name}': give dist: one of {', '.join(DISTRIBUTIONS)}")
    kind = d["dist"]
    keys = DISTRIBUTIONS[kind]
    extra = set(d) - {"dist", "unit", *keys}
    if extra or any(k not in d for k in keys):
        raise SweepError(f"samples: parameter '{name}': a {kind} distribution is {{dist, {', '.join(keys)}[, unit]}}")
    try:
        a, b = float(d[keys[0]]), float(d[keys[1]])
    except (TypeError, ValueError):
        raise SweepError(f"samples: parameter '{name}': {keys[0]} and {keys[1]} must be numbers") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise SweepError(f"samples: parameter '{name}': {keys[0]} and {keys[1]} must be finite")
    if kind == "normal" and b < 0 or kind == "lognormal" and (a <= 0 or b < 0) or kind == "uniform" and b < a:
        raise SweepError(f"samples: parameter '{name}': impossible {kind} distribution {d}")
    factor = _unit_factor(model, name, d["unit"]) if "unit" in d else 1.0
    if kind == "lognormal":
        return kind, a * factor, b
    return kind, a * factor, b * factor


def _uniforms(method, n, d, seed) -> np.ndarray:
    from scipy.stats import qmc

    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=seed).random(n)
    if method == "sobol":
        return qmc.Sobol(d=d, scramble=True, seed=seed).random(n)
    if method == "random":
        return np.random.default_rng(seed).random((n, d))
    from SALib.sample import sobol as saltelli

    problem = {"num_vars": d, "names": [f"x{i}" for i in range(d)], "bounds": [[0.0, 1.0]] * d}
    u = saltelli.sample(problem, n, calc_second_order=False, seed=seed)
    return np.clip(u, 1e-12, 1 - 1e-12)


def transform(u: np.ndarray, dists: list) -> np.ndarray:
    """Uniforms on (0, 1) -> samples of each parameter's distribution (column by column)."""
    from scipy import stats

    out = np.empty_like(u, dtype=float)
    for j, (kind, a, b) in enumerate(dists):
        if kind == "normal":
            out[:, j] = a + b * stats.norm.ppf(u[:, j])
        elif kind == "lognormal":
            sigma = math.sqrt(math.log1p(b * b))
            out[:, j] = a * np.exp(sigma * stats.norm.ppf(u[:, j]))
        else:
            out[:, j] = a + (b - a) * u[:, j]
    return out


def _calibration_samples(model, path: Path, n, method, seed) -> tuple[list, np.ndarray]:
    from scipy import stats

    from biotwin.calibration.result import CalibrationResult

    if not path.is_file():
        raise SweepError(f"samples: calibration {path}: no such file")
    fit = CalibrationResult.load(path)
    labels = list(fit.covariance["labels"])
    unknown = [p for p in labels if p not in model.parameter_units()]
    if unknown:
        raise SweepError(f"samples: calibration {path.name} estimates {unknown}, not parameters of {model.name}")
    cov = np.array(fit.covariance["matrix"], dtype=float)
    if not np.all(np.isfinite(cov)):
        raise SweepError(
            f"samples: calibration {path.name} has a direction the data did not inform (infinite variance); "
            "it cannot be sampled: give that parameter a stated distribution instead"
        )
    mean = np.array([fit.parameters[p]["value"] for p in labels], dtype=float)
    chol = np.linalg.cholesky(cov + 1e-300 * np.eye(len(labels)))
    z = stats.norm.ppf(_uniforms(method, n, len(labels), seed))
    return labels, mean + z @ chol.T


def read_sweep(source, model=None) -> SweepSpec:
    """Read and check a sweep (a YAML path or a mapping) against its model.

    Parameters
    ----------
    source : path or dict
    model : biotwin.Model, optional
        Default: the spec's ``model``.
    """
    from biotwin.core.model import Model, load_model
    from biotwin.engine.knobs import explorer_spec

    if isinstance(source, dict):
        raw, base, where = dict(source), Path.cwd(), "<sweep dict>"
    else:
        path = Path(source)
        raw = yaml_io.load_mapping_file(path, "sweep", SweepError, "model, recipe, grid, ...")
        base, where = path.parent, str(path)
    try:
        cfg = sweep_config()(raw)
    except ValueError as exc:
        raise SweepError(f"{where}: {config_error_text(exc)}") from None
    if model is None:
        if not cfg.model:
            raise SweepError(f"{where}: name the model (model: ...) or pass one")
        model = load_model(cfg.model)
    elif not isinstance(model, Model):
        model = load_model(model)
    if cfg.model and cfg.model != model.name:
        raise SweepError(f"{where}: the sweep is for model {cfg.model!r}, not {model.name!r}")
    recipe = cfg.recipe
    if isinstance(recipe, str) and recipe.endswith((".yaml", ".yml")) and not Path(recipe).is_absolute():
        recipe = str(base / recipe)
    knobs = {k.name: k for k in explorer_spec(model).knobs}
    if recipe is None:
        recipe = (model.hook("EXPLORER") or {}).get("scenario")
    base_raw = model.load_scenario(recipe).raw

    grid = {}
    for name, values in dict(cfg.grid).items():
        if name not in knobs and name not in model.parameter_units():
            raise SweepError(
                f"{where}: grid '{name}' is neither a recipe knob ({', '.join(k for k in knobs if knobs[k].apply)}) "
                f"nor a parameter of {model.name}"
            )
        grid[name] = _values(name, values)

    s = cfg.samples
    sampled, columns = [], None
    n_base = int(s.n)
    if s.calibration and s.parameters:
        raise SweepError(f"{where}: samples: give parameters or calibration, not both")
    if n_base and not (s.parameters or s.calibration):
        raise SweepError(f"{where}: samples: n = {n_base} but no parameters (or calibration) to draw")
    if (s.parameters or s.calibration) and not n_base:
        raise SweepError(f"{where}: samples: give n, the number of draws")
    fixed = {}
    for name, value in dict(cfg.parameters).items():
        if name not in model.parameter_units():
            raise SweepError(f"{where}: parameters: unknown parameter '{name}' of model '{model.name}'")
        try:
            fixed[name] = float(value)
        except (TypeError, ValueError):
            raise SweepError(f"{where}: parameters: {name} = {value!r} is not a number") from None
    clash = set(grid) & set(s.parameters)
    if clash:
        raise SweepError(f"{where}: {sorted(clash)} both swept on the grid and sampled; choose one")
    if s.parameters:
        sampled = list(s.parameters)
        dists = [_distribution(model, p, s.parameters[p]) for p in sampled]
        columns = transform(_uniforms(s.method, n_base, len(sampled), s.seed), dists)
    elif s.calibration:
        if s.method == "saltelli":
            raise SweepError(f"{where}: saltelli samples need independent stated distributions, not a calibration")
        cal = Path(s.calibration)
        sampled, columns = _calibration_samples(
            model, cal if cal.is_absolute() else base / cal, n_base, s.method, s.seed
        )

    classes = {}
    for name, c in dict(cfg.classes).items():
        c = c or {}
        if not isinstance(c, dict) or set(c) - {"scale", "source"}:
            raise SweepError(f"{where}: class '{name}' is {{scale: {{parameter: factor}}, source: ...}}")
        scale = dict(c.get("scale") or {})
        for p, f in scale.items():
            if p not in model.parameter_units():
                raise SweepError(f"{where}: class '{name}' scales unknown parameter '{p}'")
            if not isinstance(f, (int, float)) or not f > 0:
                raise SweepError(f"{where}: class '{name}': factor of {p} must be a positive number, not {f!r}")
        classes[name] = {p: float(f) for p, f in scale.items()}
    if not classes:
        classes = {"all": {}}

    limits = []
    for i, lim in enumerate(cfg.limits, start=1):
        if not isinstance(lim, dict) or "output" not in lim or len(set(lim) & {"max", "min"}) != 1:
            raise SweepError(f"{where}: limit {i} is {{output: ..., max: value}} or {{output: ..., min: value}}")
        kind = "max" if "max" in lim else "min"
        limits.append((str(lim["output"]), kind, float(lim[kind])))
    outputs = list(dict.fromkeys([*cfg.outputs, *(lim[0] for lim in limits)]))
    if not outputs:
        raise SweepError(f"{where}: name the outputs to record (keys of the model's summary)")

    cells = list(itertools.product(*grid.values())) if grid else [()]
    n_samples = len(columns) if columns is not None else 1
    rows = []
    for c, cell in enumerate(cells):
        for k in range(n_samples):
            row = {"point": c * n_samples + k, "cell": c, "sample": k}
            row.update({q: v for q, v in fixed.items() if q not in grid and q not in sampled})
            row.update(dict(zip(grid, cell)))
            if columns is not None:
                row.update({p: float(columns[k, j]) for j, p in enumerate(sampled)})
            rows.append(row)
    points = pd.DataFrame(rows)
    return SweepSpec(
        model=model,
        base_raw=base_raw,
        nfe=int(cfg.nfe),
        mesh_tol=cfg.mesh_tol,
        grid=grid,
        classes=classes,
        outputs=outputs,
        limits=limits,
        chunk=int(cfg.chunk),
        points=points,
        knob_names=list(grid),
        sampled=sampled,
        method=s.method,
        n_base=n_base,
        source={"spec": where, "raw": raw},
    )
