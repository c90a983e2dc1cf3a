"""The multi-experiment estimation problem as one Pyomo model.

Each experiment is its own discretized copy of the model (a block ``exp_<i>``) with
its own recipe and initial state; measurement times are element boundaries, so
the model value at a measurement is a variable of the problem (no interpolation).
Estimated parameters are the variables ``phi[k]`` of the parent model, scaled to
order one: ``parameter = scale_k * phi[k]``, linked by equality constraints to the
parameter variable of every block they act in (all blocks for a shared parameter,
one block for an experiment-specific one).

Objective: ``sum ((y - y_model) / sigma)^2`` when every observation has a sigma
(from a ``<name>_sigma`` column or a per-variable default), else the plain sum of
squares.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from biotwin.core.dae import time_components
from biotwin.core.data import Experiment
from biotwin.core.errors import DataError, ScenarioError, SolverError
from biotwin.core.units import convert_value
from biotwin.engine.simulation import Simulation, points_at
from biotwin.engine.solver import largest_residuals

#: Largest collocation residual accepted from a forward-integration start; above it (e.g. where a
#: nutrient runs out inside an element) Ipopt first solves each experiment at the start values.
START_RESIDUAL_TOL = 1e-6


@dataclass
class EstimatedParameter:
    """One estimated quantity.

    Attributes
    ----------
    label : str
        ``name`` for a shared parameter, ``name[experiment]`` for an experiment-specific one.
    name : str
        Parameter name in ``parameters.yaml``.
    experiment : str or None
        The experiment it belongs to, None when shared by all.
    lower, upper : float or None
        Bounds [parameter unit]; None for an open side.
    start : float
        Starting value [parameter unit].
    scale : float
        ``value = scale * phi`` [parameter unit].
    unit : str
    """

    label: str
    name: str
    experiment: str | None
    lower: float | None
    upper: float | None
    start: float
    scale: float
    unit: str


@dataclass
class Observation:
    experiment: int
    variable: str
    time: float
    value: float
    sigma: float | None


def measurable_names(model) -> set[str]:
    """Names a data column may carry: time-indexed variables and expressions of the model."""
    _, variables, expressions = time_components(model.build({"t_end": 1.0}))
    return {c.local_name for c in variables + expressions}


def _scale(value, lower, upper):
    for candidate in (value, upper, lower):
        if candidate is not None and candidate != 0 and math.isfinite(candidate):
            return abs(float(candidate))
    return 1.0


class EstimationProblem:
    """Build, initialize and solve a multi-experiment least-squares problem.

    Parameters
    ----------
    model : biotwin.Model
    experiments : list of Experiment
    estimate : list of str
        Parameters shared by all experiments.
    local : list of str, optional
        Parameters estimated separately for each experiment (e.g. a seeding density).
    start : dict, optional
        Starting values ``{label: value}`` overriding the defaults (parameters.yaml values
        updated with each experiment's own parameters).
    sigma : dict, optional
        Per-variable default measurement standard deviation [variable unit].
    nfe, ncp : int
        Collocation discretization of each experiment.
    options : dict, optional
        Ipopt options.
    progress : callable, optional
    """

    def __init__(
        self,
        model,
        experiments: list[Experiment],
        estimate,
        local=None,
        start=None,
        sigma=None,
        nfe=50,
        ncp=3,
        options=None,
        progress=None,
    ):
        self.model = model
        self.experiments = list(experiments)
        self.nfe, self.ncp = nfe, ncp
        self.options = dict(options or {})
        self.say = progress or (lambda text: None)
        if not self.experiments:
            raise DataError("calibration needs at least one experiment")
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise DataError(f"experiment names must be unique, got {names}")
        estimate, local = list(estimate or []), list(local or [])
        if not estimate and not local:
            raise ScenarioError("nothing to estimate: give at least one parameter")
        for name in estimate + local:
            if name not in model.parameter_set:
                raise ScenarioError(f"cannot estimate '{name}': {model.parameter_set.unknown_message(name)}")
            entry = model.parameter_set[name]
            if entry.lower is None and entry.upper is None:
                raise ScenarioError(
                    f"cannot estimate '{name}': it has no bounds in {model.parameter_set.path}; "
                    "give bounds: [low, high] (null for an open side)"
                )
        both = set(estimate) & set(local)
        if both:
            raise ScenarioError(f"parameters {sorted(both)} are listed as both shared and experiment-specific")
        start = dict(start or {})
        self.sigma_defaults = dict(sigma or {})

        # observations, checked against the model
        known = measurable_names(model)
        self.observations: list[Observation] = []
        for i, exp in enumerate(self.experiments):
            for var in exp.variables:
                if var not in known:
                    raise DataError(
                        f"experiment '{exp.name}': column '{var}' names nothing in model "
                        f"'{model.name}'; measurable: {', '.join(sorted(known))}"
                    )
            for var in exp.variables:
                for t, y, s in zip(exp.times, exp.data[var], exp.sigma[var]):
                    if math.isnan(y):
                        continue
                    if math.isnan(s):
                        s = self.sigma_defaults.get(var)
                    self.observations.append(Observation(i, var, float(t), float(y), None if s is None else float(s)))
        have = [o.sigma is not None for o in self.observations]
        if any(have) and not all(have):
            missing = sorted({o.variable for o in self.observations if o.sigma is None})
            raise DataError(
                f"sigma is given for some observations but not for {', '.join(missing)}: give a "
                "<name>_sigma column or a per-variable default for every measured variable, or none"
            )
        self.weighted = all(have)

        # estimated parameters
        self.parameters: list[EstimatedParameter] = []
        defaults = model.parameter_set.values()
        for name in estimate:
            e = model.parameter_set[name]
            value = float(start.get(name, defaults[name]))
            self.parameters.append(
                EstimatedParameter(name, name, None, e.lower, e.upper, value, _scale(value, e.lower, e.upper), e.unit)
            )
        for name in local:
            e = model.parameter_set[name]
            for exp in self.experiments:
                label = f"{name}[{exp.name}]"
                value = float(start.get(label, exp.params.get(name, defaults[name])))
                self.parameters.append(
                    EstimatedParameter(
                        label, name, exp.name, e.lower, e.upper, value, _scale(value, e.lower, e.upper), e.unit
                    )
                )
        for p in self.parameters:
            if (p.lower is not None and p.start < p.lower) or (p.upper is not None and p.start > p.upper):
                raise ScenarioError(
                    f"start value {p.start} of '{p.label}' is outside its bounds [{p.lower}, {p.upper}]"
                )
        unknown_start = set(start) - {p.label for p in self.parameters}
        if unknown_start:
            raise ScenarioError(
                f"start values given for {sorted(unknown_start)}, which are not estimated; "
                f"estimated: {', '.join(p.label for p in self.parameters)}"
            )
        n_obs, n_par = len(self.observations), len(self.parameters)
        if n_obs <= n_par:
            raise DataError(
                f"too few observations: {n_obs} for {n_par} estimated parameters "
                "(need more observations than parameters)"
            )
        self.m = None

    # ------------------------------------------------------------------
    @property
    def n_observations(self) -> int:
        return len(self.observations)

    def start_values_for(self, i: int) -> dict:
        """Parameter values of experiment ``i`` at the start."""
        exp = self.experiments[i]
        values = dict(exp.params)
        for p in self.parameters:
            if p.experiment is None or p.experiment == exp.name:
                values[p.name] = p.start
        return values

    def build(self):
        """Build the blocks (initialized by simulation at the start values) and the parent model."""
        parent = pyo.ConcreteModel(name=f"calibration of {self.model.name}")
        parent.K = pyo.RangeSet(0, len(self.parameters) - 1)

        def phi_bounds(m, k):
            p = self.parameters[k]
            return (None if p.lower is None else p.lower / p.scale, None if p.upper is None else p.upper / p.scale)

        parent.phi = pyo.Var(
            parent.K, bounds=phi_bounds, initialize=lambda m, k: self.parameters[k].start / self.parameters[k].scale
        )
        self.blocks = []
        for i, exp in enumerate(self.experiments):
            self.say(f"experiment {i + 1}/{len(self.experiments)} '{exp.name}': simulating at the start values")
            sc = self.model.load_scenario(exp.scenario)
            t_end = sc.t_end if sc.t_end is not None else float(exp.times[-1])
            if exp.times[-1] > t_end * (1 + 1e-12):
                raise DataError(
                    f"experiment '{exp.name}': measurement at time {exp.times[-1]} is after the end "
                    f"of its recipe ({t_end} {self.model.time_unit})"
                )
            sim = Simulation(
                self.model,
                sc,
                self.start_values_for(i),
                t_end=t_end,
                nfe=self.nfe,
                ncp=self.ncp,
                use_cache=False,
                extra_points=[t for t in exp.times if t > 0],
                # the grid as given (nfe elements, the measurement times as boundaries): the parameters move
                # in the fit, so a grid refined for the start values (biotwin.engine.mesh) would fit the
                # estimates no better, and it made the repeated-calibration coverage study 60 % slower
                mesh_tol=None,
            )
            try:
                # a forward integration is an accurate start; Ipopt solves the experiment on its
                # own only when that is unavailable (saves writing the model once more)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    init = sim.initialize()
                worst = largest_residuals(sim.pyomo_model, 1)
                if init != "forward integration" or (worst and worst[0][1] > START_RESIDUAL_TOL):
                    sim.solve(self.options)
            except SolverError as exc:
                raise SolverError(
                    f"experiment '{exp.name}' cannot be simulated at the start values: {exc}",
                    exc.termination_condition,
                    exc.iterations,
                    exc.residuals,
                ) from exc
            block = sim.pyomo_model
            for obj in block.component_objects(pyo.Objective):
                obj.deactivate()
            parent.add_component(f"exp_{i}", block)
            self.blocks.append(block)
        # link parameters
        parent.link = pyo.ConstraintList()
        for k, p in enumerate(self.parameters):
            entry = self.model.parameter_set[p.name]
            for i, exp in enumerate(self.experiments):
                if p.experiment not in (None, exp.name):
                    continue
                var = getattr(self.blocks[i], p.name)
                factor = convert_value(p.scale, entry.pyomo_unit, pyo.units.get_units(var))
                var.unfix()
                if p.lower is not None:
                    var.setlb(convert_value(p.lower, entry.pyomo_unit, pyo.units.get_units(var)))
                if p.upper is not None:
                    var.setub(convert_value(p.upper, entry.pyomo_unit, pyo.units.get_units(var)))
                parent.link.add(var == factor * parent.phi[k])
        # observations: model value at the grid point of each measurement
        grid_point = {}
        for i, block in enumerate(self.blocks):
            times = sorted({o.time for o in self.observations if o.experiment == i})
            grid_point.update({(i, t): point for t, point in zip(times, points_at(block, times))})
        self.obs_components = [
            getattr(self.blocks[o.experiment], o.variable)[grid_point[o.experiment, o.time]] for o in self.observations
        ]
        weights = [1.0 / o.sigma**2 if self.weighted else 1.0 for o in self.observations]
        parent.objective = pyo.Objective(
            expr=sum(w * (o.value - c) ** 2 for w, o, c in zip(weights, self.observations, self.obs_components))
        )
        self.weights = np.array(weights)
        self.m = parent
        return parent

    def phi(self) -> np.ndarray:
        return np.array([pyo.value(self.m.phi[k]) for k in self.m.K])

    def values(self) -> np.ndarray:
        """Current parameter values [parameter units]."""
        return np.array([p.scale * v for p, v in zip(self.parameters, self.phi())])

    def residuals(self) -> np.ndarray:
        """Unweighted residuals ``y - y_model`` at the current solution."""
        return np.array([o.value - pyo.value(c) for o, c in zip(self.observations, self.obs_components)])

    def objective(self) -> float:
        r = self.residuals()
        return float(np.sum(self.weights * r**2))
