"""The simulation engine: one :class:`Simulation` per run of a model.

``Simulation(model, scenario, params, ...)``:

1. reads the scenario, checks parameter overrides and input programs;
2. builds the time grid: recipe corners and requested output times are element
   boundaries, the rest of about ``nfe`` elements are spread by length; then integrates the run
   forward (:mod:`biotwin.engine.forward`) and halves the elements its trajectory turns too sharply
   for (:mod:`biotwin.engine.mesh`, ``mesh_tol``): the grid is a function of the run alone;
3. builds the model and applies Radau collocation (``pyomo.dae``), or reuses a
   :class:`Discretization` built before for the same grid and settings (the engine's cache
   per model, :func:`cached_discretizations`, :func:`clear_cache`);
4. ``initialize()`` loads the forward integration; ``solve()``
   warm-starts a re-used model that solved before and solves the square system with Ipopt
   (:mod:`biotwin.engine.solver`), through a kept NLP on re-solves;
5. ``result()`` collects the :class:`~biotwin.engine.results.SimulationResult` and checks its physics.

Optimizers, calibration and the coming estimators work on ``sim.pyomo_model`` (the discretized
Pyomo model with the recipe applied), ``sim.grid``, ``sim.programs`` and ``sim.parameters``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings
import weakref
from collections import OrderedDict

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from pyomo.core.base.units_container import UnitsError

from biotwin.core import checks
from biotwin.core.dae import time_components
from biotwin.core.errors import ModelDefinitionError, ScenarioError, SolverError
from biotwin.core.programs import Program
from biotwin.core.units import convert_value, parse_unit, unit_string
from biotwin.engine.expressions import CompiledExpressions
from biotwin.engine.forward import ForwardIntegrator, UnsupportedStructure
from biotwin.engine.mesh import MESH_TOL, refine_grid
from biotwin.engine.results import SimulationResult
from biotwin.engine.solver import PersistentNLP, degrees_of_freedom, solve

CACHE_SIZE = 4
#: Ipopt options of every simulation unless the caller overrides them: a square simulation that has not
#: converged in a minute will not (measured: the shipped recipes solve in 0.1-6 s; a growth rate 100x its
#: default ran past ten minutes at the default max_iter of 3000).
SIMULATION_OPTIONS = {"max_wall_time": 60.0}
#: Ipopt iterations a warm start (a re-solve from the last solution) may take before the engine falls back to a
#: fresh forward-integration start. Warm re-solves converge in a handful of iterations; one that has not in 100
#: started far away (an explorer corner after the other corner took 60 s of warm iterations, then 16 s cold).
WARM_START_MAX_ITER = 100
#: Re-solve cached models through a kept :class:`~biotwin.engine.solver.PersistentNLP` (False: write the
#: model for every solve, the path before it existed; ``benchmarks/widgets.py`` compares the two).
REUSE_NLP = True


# the discretizations of each model, most recently used last (owned here, not by the Model object)
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cache(model) -> OrderedDict:
    if model not in _CACHES:
        _CACHES[model] = OrderedDict()
    return _CACHES[model]


def cached_discretizations(model) -> list[Discretization]:
    """The discretizations the engine keeps for ``model`` (at most ``CACHE_SIZE``), most recently used last."""
    return list(_cache(model).values())


def clear_cache(model) -> None:
    """Forget every discretization of ``model``: the next simulation builds it again (benchmarks of cold runs)."""
    _cache(model).clear()


def time_grid(t_end: float, nfe: int, fixed=()) -> list[float]:
    """Element boundaries: ``0``, ``t_end`` and every fixed point, plus points to reach about ``nfe`` elements.

    Parameters
    ----------
    t_end : float
        End time [time unit].
    nfe : int
        Target number of finite elements; each interval between fixed points gets
        ``max(1, round(nfe * length / t_end))`` elements.
    fixed : iterable of float
        Times that must be element boundaries (recipe corners, measurement times).
    """
    anchors = sorted({0.0, float(t_end)} | {float(f) for f in fixed if 0.0 < f < t_end})
    grid = [anchors[0]]
    for a, b in itertools.pairwise(anchors):
        n = max(1, round(nfe * (b - a) / t_end))
        grid.extend(np.linspace(a, b, n + 1)[1:].tolist())
        grid[-1] = b
    return grid


class Discretization:
    """A built, discretized model kept for reuse: the Pyomo model ``m``, its states, inputs (with their
    declared defaults), time-indexed variables and expressions, the forward integrator and the kept NLP."""

    def __init__(self, model, settings, ncp, progress):
        t0 = time.perf_counter()
        self.m = model.build(settings)
        self.build_s = time.perf_counter() - t0
        self.ncp = ncp
        m = self.m
        lo, hi = m.t.first(), m.t.last()
        if lo != 0 or not math.isclose(hi, settings["t_end"]):
            raise ScenarioError(
                f"model '{model.name}': build(settings) made m.t span [{lo}, {hi}] "
                f"but the simulation asks for [0, {settings['t_end']}]; build must use settings['t_end']"
            )
        t0 = time.perf_counter()
        try:
            self.integrator = ForwardIntegrator(m, m.t)
            self.unsupported = None
        except UnsupportedStructure as exc:
            self.integrator, self.unsupported = None, str(exc)
        self.template_s = time.perf_counter() - t0  # sympy compile of the forward integrator
        tstar = m.t.last()
        derivs, self.time_vars, self.time_exprs = time_components(m)
        self.state_names = {dv.get_state_var().local_name for dv in derivs}
        self.input_vars = [v for v in self.time_vars if v[tstar].fixed]
        self.inputs = {v.local_name for v in self.input_vars}
        # the declared default of each input (its value as build fixed it): every solve starts from these,
        # so an input that a recipe does not set never keeps the value an earlier recipe gave it
        self.input_defaults = {v.local_name: v[tstar].value for v in self.input_vars}
        self.grid, self.refined = None, False  # set by discretize (refined: a grid refined for one run)
        self.solved = False
        self.nlp = None  # PersistentNLP, written on the first warm re-solve
        self._expressions = None
        self._units_and_kinds = None

    def discretize(self, grid, model) -> None:
        """Make ``grid`` the element boundaries and apply Radau collocation (once per Discretization)."""
        m, tstar = self.m, self.m.t.last()
        input_vars = self.input_vars
        t0 = time.perf_counter()
        for point in grid:
            m.t.add(point)
        # ContinuousSet keeps its finite-element boundaries in _fe (set at construction and by
        # pyomo.dae.misc.generate_finite_elements); points added by hand must be registered there
        # too, or the collocation equations are written for the construction-time elements only.
        # The squareness check below catches a Pyomo that changes this.
        m.t._fe = sorted(m.t)
        m.t.set_changed(True)
        pyo.TransformationFactory("dae.collocation").apply_to(
            m, wrt=m.t, nfe=len(grid) - 1, ncp=self.ncp, scheme="LAGRANGE-RADAU"
        )
        self.grid = list(grid)
        for v in input_vars:  # points added by the discretization are inputs too
            default = v[tstar].value
            for t in m.t:
                if not v[t].fixed:
                    v[t].fix(default)
        self.discretize_s = time.perf_counter() - t0
        n_var, n_eq = degrees_of_freedom(m)
        if n_var != n_eq:
            free = _free_scalars(m)
            if free:
                raise ModelDefinitionError(
                    f"model '{model.name}': {', '.join(free)} "
                    f"{'is a scalar variable that is' if len(free) == 1 else 'are scalar variables that are'} "
                    f"neither fixed nor in {model.parameter_set.path}: add each to parameters.yaml (value, unit, "
                    f"bounds, source), or fix it in build ({n_var} unfixed variables in {n_eq} equations)"
                )
            raise ModelDefinitionError(
                f"model '{model.name}': the simulation problem is not square ({n_var} unfixed variables in "
                f"{n_eq} equations); every state needs an initial condition and every output an equation at "
                "every time, and inputs must be fixed in build"
            )

    def expressions(self) -> CompiledExpressions:
        """The time-indexed expressions, compiled for evaluation on the whole grid (on first use)."""
        if self._expressions is None:
            self._expressions = CompiledExpressions(self.m.t, self.time_exprs)
        return self._expressions

    def units_and_kinds(self, time_unit: str) -> tuple[dict, dict]:
        """Units and kinds (state, input, output, expression) of the result columns (found once)."""
        if self._units_and_kinds is None:
            units, kinds = {"time": time_unit}, {}
            for v in self.time_vars:
                name = v.local_name
                units[name] = unit_string(pyo.units.get_units(v))
                kinds[name] = "state" if name in self.state_names else "input" if name in self.inputs else "output"
            last = self.m.t.last()
            for e in self.time_exprs:
                name = e.local_name
                try:
                    units[name] = unit_string(pyo.units.get_units(e[last]))
                except Exception:  # noqa: BLE001 - inconsistent units inside a user expression
                    units[name] = "?"
                kinds[name] = "expression"
            self._units_and_kinds = (units, kinds)
        return self._units_and_kinds


def _free_scalars(m) -> list[str]:
    """Names of the scalar (not time-indexed) Vars of ``m`` that are not fixed."""
    return sorted(
        v.local_name for v in m.component_objects(pyo.Var, descend_into=True) if not v.is_indexed() and not v.fixed
    )


def _programs(model, scenario, d, t_end):
    """Validated input programs in model units, by input name."""
    programs = {}
    where = f"scenario {scenario.source}"
    time_var_names = {v.local_name for v in d.time_vars}
    for name, spec in scenario.inputs.items():
        if name not in time_var_names:
            raise ScenarioError(
                f"{where}: unknown input '{name}'; inputs of model '{model.name}': "
                f"{', '.join(sorted(d.inputs)) or 'none'}"
            )
        if name not in d.inputs:
            raise ScenarioError(f"{where}: '{name}' is a model variable, not an input (inputs are fixed in build)")
        var = getattr(d.m, name)
        unit, points = None, spec
        if isinstance(spec, dict):
            extra = set(spec) - {"unit", "points"}
            if extra or "points" not in spec:
                raise ScenarioError(f"{where}: input '{name}': expected {{unit, points}}, got keys {sorted(spec)}")
            unit, points = spec.get("unit"), spec["points"]
        model_unit = pyo.units.get_units(var)
        scale = 1.0
        if unit is not None:
            try:
                scale = convert_value(1.0, parse_unit(unit, f"{where}: input '{name}'"), model_unit)
            except ValueError as exc:
                raise ScenarioError(str(exc)) from None
            except UnitsError:
                raise ScenarioError(
                    f"{where}: input '{name}': unit {unit!r} does not convert to the model's "
                    f"{unit_string(model_unit)!r}"
                ) from None
        program = Program.from_points(name, points, where, scale)
        program.check_covers(t_end, where)
        programs[name] = program
    return programs


def _in_recipe_unit(t: float, model, sc) -> str:
    """``t`` [model time unit] as text, also in the recipe's own ``time_unit`` when it has another."""
    text = f"{t:g} {model.time_unit}"
    unit = sc.raw.get("time_unit") if isinstance(sc.raw, dict) else None
    if isinstance(unit, str) and unit != model.time_unit:
        try:
            factor = convert_value(1.0, parse_unit(model.time_unit), parse_unit(unit))
            text = f"{t * factor:g} {unit} ({text})"
        except (ValueError, UnitsError):
            pass
    return text


def _check_times(times, t_end):
    if times is None:
        return None
    arr = np.asarray(list(times), dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ScenarioError("times: expected a non-empty list of output times")
    if not np.all(np.isfinite(arr)):
        raise ScenarioError(f"times: non-finite output time at position {int(np.argmin(np.isfinite(arr)))}")
    if np.any(arr < 0):
        raise ScenarioError(f"times: negative output time {arr[arr < 0][0]}")
    if np.any(np.diff(arr) <= 0):
        i = int(np.argmax(np.diff(arr) <= 0)) + 1
        raise ScenarioError(
            f"times: output times must be strictly increasing (position {i}: {arr[i]} after {arr[i - 1]})"
        )
    if arr[-1] > t_end * (1 + 1e-12):
        raise ScenarioError(f"times: output time {arr[-1]} is after t_end {t_end}")
    return arr


def _apply_inputs(d: Discretization, programs):
    """Set every input of ``d`` on every point: from its program, or to its declared default when the
    recipe gives none (a cached model must not keep an input from an earlier recipe)."""
    m = d.m
    t_start = m.t.first()
    points = list(m.t)
    for name in sorted(d.inputs):
        var = getattr(m, name)
        prog = programs.get(name)
        if prog is None:
            default = d.input_defaults[name]
            for t in points:
                var[t].fix(default)
        else:
            for t, value in zip(points, prog.at_collocation_points(points, t_start).tolist()):
                var[t].fix(value)


class Simulation:
    """One run of a model: a discretized Pyomo model with a recipe's inputs and a parameter set applied.

    Parameters
    ----------
    model : biotwin.core.model.Model
    scenario : str, path, mapping or Scenario, optional
        The recipe (the model's default when None).
    params : mapping, optional
        Parameter overrides ``{name: value}`` in the units of parameters.yaml, or ``{name: (value, unit)}``.
    t_end : float, optional
        End of the run [model time unit]; the recipe's end when None.
    nfe, ncp : int
        About ``nfe`` finite elements (recipe corners and output times are boundaries) of ``ncp``
        Radau points each.
    times : array-like, optional
        Output times [model time unit]; the collocation points when None.
    use_cache : bool
        Re-use (and keep) a discretization of the same model, grid and settings; False builds a fresh
        model that the caller owns (calibration attaches it to a larger problem).
    progress : callable, optional
        Called with a line of text at each stage.
    extra_points : iterable of float
        Times that must be element boundaries without being output times (measurement times).
    mesh_tol : float or None
        Refine the grid before solving until, on every element, the collocation polynomial through the
        forward integration is within ``mesh_tol`` of it between the collocation points, as a share of each
        state's range (:mod:`biotwin.engine.mesh`; default 1e-4). The grid depends on this run only: a
        forward integration of every run decides it (and starts a cold solve). None keeps the grid as given
        (optimizers, whose controls change the trajectory a grid would be refined for).

    Attributes
    ----------
    pyomo_model : pyomo.environ.ConcreteModel
        The discretized model with the recipe and parameters applied.
    discretization : Discretization
    scenario : biotwin.core.scenario.Scenario
    parameters : dict
        Every parameter value used [units of parameters.yaml].
    programs : dict
        The input programs (``biotwin.core.programs.Program``) by input name.
    grid : list of float
        Finite-element boundaries [model time unit].
    reused : bool
        True when the discretization came from the cache.
    timings : dict
        Seconds spent building, compiling, discretizing, initializing and solving.
    """

    def __init__(
        self,
        model,
        scenario=None,
        params=None,
        t_end=None,
        nfe=50,
        ncp=3,
        times=None,
        use_cache=True,
        progress=None,
        extra_points=(),
        mesh_tol=MESH_TOL,
    ):
        self.model = model
        self.progress = progress
        self.initialized = None  # how initialize() started it, until the next solve
        sc = model.load_scenario(scenario)
        with checks.allow_unusual(sc.allow_unusual):
            _prepare(self, model, sc, params, t_end, nfe, ncp, times, use_cache, progress, extra_points, mesh_tol)
        self.ncp = ncp

    @property
    def pyomo_model(self):
        """The discretized Pyomo model with the recipe and parameters applied."""
        return self.discretization.m

    @property
    def nfe(self) -> int:
        """Number of finite elements of the grid."""
        return len(self.grid) - 1

    def initialize(self) -> str:
        """Load a forward integration into the model's variables; returns how it started.

        A following :meth:`solve` starts from it rather than integrating again.
        """
        self.initialized = _forward_initialize(self.model, self, self.progress)
        return self.initialized

    def solve(self, options=None, tee=False) -> dict:
        """Initialize (forward integration, or a warm start of a re-used model) and solve with Ipopt.

        Returns ``{"iterations", "termination", "initialization"}``; raises ``SolverError`` naming
        parameters far from their defaults when the solve fails.
        """
        return _solve_with_note(self.model, self, options, tee, self.progress)

    def result(self, check=True) -> SimulationResult:
        """The solved run as a :class:`~biotwin.engine.results.SimulationResult` at the requested times.

        ``check`` refuses a solution with a state below zero (:func:`check_physical`).
        """
        result = _collect(self.model, self.discretization, self.scenario, self.parameters, self.out_times)
        if check:
            check_physical(self.model, result, self.scenario, nfe=self.nfe)
        return result

    def run(self, options=None, tee=False) -> SimulationResult:
        """Solve and return the checked result with its statistics (what ``model.simulate`` does)."""
        wall0 = time.perf_counter()
        info = self.solve(options, tee)
        self.timings["total_s"] = time.perf_counter() - wall0
        result = self.result()
        result.stats = {
            **self.timings,
            **info,
            "reused_model": self.reused,
            "n_elements": self.nfe,
            "ncp": self.ncp,
            "mesh": dict(self.mesh),
        }
        return result


def _prepare(sim, model, sc, params, t_end, nfe, ncp, times, use_cache, progress, extra_points, mesh_tol) -> None:
    say = progress or (lambda text: None)
    if t_end is None:
        t_end = sc.t_end
    if t_end is None:
        raise ScenarioError(f"no end time: give t_end or set t_end in the scenario ({sc.source})")
    if not checks.is_number(t_end) or t_end <= 0:
        raise ScenarioError(f"t_end must be a positive number [{model.time_unit}], got {t_end!r}")
    t_end = float(t_end)
    if sc.t_end is not None and sc.inputs and t_end > sc.t_end * (1 + 1e-12):
        raise ScenarioError(
            f"t_end {_in_recipe_unit(t_end, model, sc)} is after the end of the recipe "
            f"({_in_recipe_unit(sc.t_end, model, sc)}, {sc.source}): the recipe says nothing about "
            "its inputs after its end; lengthen the recipe (its duration) instead"
        )
    if not isinstance(nfe, int) or nfe < 1 or not isinstance(ncp, int) or ncp < 1:
        raise ScenarioError(f"nfe and ncp must be positive integers, got nfe={nfe!r}, ncp={ncp!r}")
    out_times = _check_times(times, t_end)
    values = model.parameter_values(sc.parameters, where=f"scenario {sc.source}")
    values = model.parameter_values({**values, **(params or {})}, where="params")
    settings = dict(sc.settings)
    settings["t_end"] = t_end
    key_settings = json.dumps(settings, sort_keys=True, default=str)
    # recipe corners must be element boundaries: read the programs' times before building
    corners = set()
    for name, spec in sc.inputs.items():
        pts = spec.get("points") if isinstance(spec, dict) else spec
        corners.update(Program.from_points(name, pts, f"scenario {sc.source}").corners)
    fixed = set(corners) | {float(x) for x in extra_points}
    if out_times is not None:
        fixed |= set(out_times.tolist())
    grid = time_grid(t_end, nfe, fixed)
    cache = _cache(model)
    family = [v for k, v in cache.items() if k[0] == key_settings and k[2] == ncp]  # same settings: same equations
    fresh = None
    if family:  # any discretization of these settings integrates this run (its integrator is grid-free)
        integ_d = family[-1]
    else:
        say(f"building {model.name}")
        integ_d = fresh = Discretization(model, settings, ncp, say)
    programs = _programs(model, sc, integ_d, t_end)
    model.set_parameters(integ_d.m, values)
    _apply_inputs(integ_d, programs)  # inputs without a program at their defaults, not an earlier recipe's
    sim.start, sim.mesh = None, {"checked": False, "note": "grid as given (mesh_tol None)"}
    if mesh_tol is not None:
        grid, sim.mesh, sim.start = _refine(model, integ_d, programs, grid, mesh_tol, say)
    key = (key_settings, tuple(grid), ncp)
    reused = use_cache and key in cache
    if reused:
        d = cache.pop(key)
        cache[key] = d  # most recently used last
    else:
        if fresh is None:
            say(f"building {model.name}")
            fresh = Discretization(model, settings, ncp, say)
        d = fresh
        say(f"discretizing {model.name} ({len(grid) - 1} elements x {ncp} points)")
        d.discretize(grid, model)
        d.refined = bool(sim.mesh.get("elements_after", 0) > sim.mesh.get("elements_before", 0))
        if use_cache:
            _store(cache, key, d)
    if d is not integ_d:
        programs = _programs(model, sc, d, t_end)
    model.set_parameters(d.m, values)
    _apply_inputs(d, programs)
    timings = (
        {"build_s": 0.0, "template_s": 0.0, "discretize_s": 0.0}
        if reused
        else {"build_s": d.build_s, "template_s": d.template_s, "discretize_s": d.discretize_s}
    )
    if sim.start is not None:
        timings["integrate_s"] = sim.start[1]
    sim.discretization, sim.scenario, sim.parameters, sim.programs = d, sc, values, programs
    sim.grid, sim.reused, sim.out_times, sim.timings = grid, reused, out_times, timings


def _refine(model, d: Discretization, programs, grid, tol, say) -> tuple[list, dict, tuple | None]:
    """This run's grid: ``grid`` when, on every element, the collocation polynomial through a forward
    integration of this run is within ``tol`` of it, else ``grid`` refined until it is
    (:mod:`biotwin.engine.mesh`). The grid is a function of the run alone (the recipe, the parameters), never of
    what was solved before. Returns the grid, the report and ``(trajectory, seconds)`` for the solve's start;
    a model the integrator cannot run exactly (time-explicit equations) or an integration that fails keeps
    ``grid``, and the report says why."""
    integ = d.integrator
    if integ is None or integ.time_explicit or not integ.n_x:
        why = d.unsupported or (
            "equations depend on time explicitly" if integ is not None and integ.time_explicit else "no states"
        )
        return grid, {"tolerance": tol, "checked": False, "note": f"grid not checked: {why}"}, None
    say("forward integration (start and mesh check)")
    t0 = time.perf_counter()
    try:
        traj = integ.integrate(programs, grid, dense=True)
    except (FloatingPointError, np.linalg.LinAlgError, ValueError, ZeroDivisionError, OverflowError) as exc:
        note = f"grid not checked: forward integration failed ({exc})"
        return grid, {"tolerance": tol, "checked": False, "note": note}, None
    names = [s.local_name for s in integ.states]
    signed = set(model.hook("SIGNED_STATES") or ())
    x = traj["x"]
    below = [n for i, n in enumerate(names) if n not in signed and x[:, i].min() < -physical_tolerance(x[:, i])]
    if below:  # the run leaves the physical range: the solve's physics check names it; nothing to resolve
        note = f"grid not checked: the forward integration takes {', '.join(below)} below zero"
        return grid, {"tolerance": tol, "checked": False, "note": note}, (traj["dense"], time.perf_counter() - t0)
    refined, report = refine_grid(traj["dense"], grid, d.ncp, tol, names)
    if not report.met:
        warnings.warn(
            f"model '{model.name}': the time grid does not meet the mesh tolerance {tol:g} near "
            f"{report.worst_state} at {report.worst_time:g} {model.time_unit} (interpolation error "
            f"{report.max_error:.2g} of its range after growing to {report.elements_after} elements): raise nfe",
            stacklevel=4,
        )
    return refined, {**report.as_dict(), "checked": True}, (traj["dense"], time.perf_counter() - t0)


def _store(cache: OrderedDict, key, d: Discretization) -> None:
    """Keep ``d`` (most recent last) and drop the oldest beyond ``CACHE_SIZE``; a refined grid belongs to one
    run's trajectory, so the oldest refined one goes first when more than one is kept: the grids every
    smooth run of a recipe shares stay."""
    cache[key] = d
    while len(cache) > CACHE_SIZE:
        refined = [k for k, v in cache.items() if v.refined]
        cache.pop(refined[0] if len(refined) > 1 else next(iter(cache)))


def _forward_initialize(model, sim: Simulation, progress=None) -> str:
    """Load a forward integration of the prepared model into its variables; say how it started."""
    d, say = sim.discretization, progress or (lambda text: None)
    if d.integrator is None:
        warnings.warn(
            f"model '{model.name}': no forward-integration start ({d.unsupported}); "
            "Ipopt starts from the model's initial values",
            stacklevel=3,
        )
        return "model initial values"
    if d.integrator.time_explicit:  # a start only: the collocation solve uses the true equations
        say(
            f"initializing by forward integration (approximate: {', '.join(d.integrator.time_explicit)} "
            "depend on time explicitly and are integrated at the last time's form)"
        )
    else:
        say("initializing by forward integration")
    t0 = time.perf_counter()
    try:
        if sim.start is not None:  # integrated already to refine the grid: read it at the refined grid's points
            traj = d.integrator.trajectory_at(sim.start[0], sim.programs, list(d.m.t))
            sim.start = None
        else:
            traj = d.integrator.integrate(sim.programs, list(d.m.t))
    except (FloatingPointError, np.linalg.LinAlgError, ValueError, ZeroDivisionError, OverflowError) as exc:
        warnings.warn(
            f"model '{model.name}': forward integration failed ({exc}); Ipopt starts from the current values",
            stacklevel=3,
        )
        return "forward integration failed"
    finally:
        sim.timings["initialize_s"] = sim.timings.get("initialize_s", 0.0) + time.perf_counter() - t0
    d.integrator.load(traj)
    return "forward integration"


def _solve_with_note(model, sim: Simulation, options=None, tee=False, progress=None) -> dict:
    """Initialize (forward integration, or warm start when reusing a solved model) and solve."""
    what = f"simulation of {model.name} ({sim.scenario.name})"
    options = {**SIMULATION_OPTIONS, **(options or {})}
    try:
        return _solve_prepared(model, sim, options, tee, progress, what)
    except SolverError as exc:
        note = _unusual_parameters(model, sim.parameters)
        if note:
            raise SolverError(f"{exc} {note}", exc.termination_condition, exc.iterations, exc.residuals) from None
        raise


def _unusual_parameters(model, values) -> str:
    """A note naming parameter values outside their bounds or more than 10x from their defaults."""
    odd = []
    for name, value in values.items():
        entry = model.parameter_set[name]
        if (entry.lower is not None and value < entry.lower) or (entry.upper is not None and value > entry.upper):
            odd.append(f"{name} = {value:g} {entry.unit} (bounds [{entry.lower}, {entry.upper}])")
        elif entry.value != 0 and (value / entry.value > 10 or value / entry.value < 0.1):
            odd.append(f"{name} = {value:g} {entry.unit} (default {entry.value:g})")
    if not odd:
        return ""
    return "Parameter values far from their defaults may be why: " + "; ".join(odd) + "."


def _solve_prepared(model, sim: Simulation, options, tee, progress, what) -> dict:
    d, say = sim.discretization, progress or (lambda text: None)
    if sim.reused and d.solved:
        init = "warm start"
        sim.timings["initialize_s"] = 0.0
    elif sim.initialized in ("forward integration", "model initial values"):
        init = sim.initialized  # initialize() has just loaded this start: integrating again gives the same
    else:
        init = _forward_initialize(model, sim, progress)
    say("solving with Ipopt")
    try:
        warm_options = {**options, "max_iter": min(int(options.get("max_iter", 3000)), WARM_START_MAX_ITER)}
        if init == "warm start" and REUSE_NLP:
            # a re-solve of a cached model: its NLP is written once and kept (PersistentNLP)
            if d.nlp is None:
                d.nlp = PersistentNLP(d.m)
            stats = d.nlp.solve(options=warm_options, tee=tee, what=what)
        elif init == "warm start":
            stats = solve(d.m, options=warm_options, tee=tee, what=what)
        else:
            stats = solve(d.m, options=options, tee=tee, what=what)
    except SolverError:
        d.solved = False
        if init != "warm start":
            raise
        init = _forward_initialize(model, sim, progress) + " (after warm start failed)"
        stats = solve(d.m, options=options, tee=tee, what=what)
    d.solved = True
    sim.initialized = None
    sim.timings["solve_s"] = stats.wall_time_s
    return {"iterations": stats.iterations, "termination": stats.termination_condition, "initialization": init}


def simulate(
    model,
    scenario=None,
    params=None,
    t_end=None,
    nfe=50,
    ncp=3,
    times=None,
    options=None,
    tee=False,
    progress=None,
    mesh_tol=MESH_TOL,
) -> SimulationResult:
    """See :meth:`biotwin.core.model.Model.simulate`."""
    wall0 = time.perf_counter()
    sim = Simulation(model, scenario, params, t_end, nfe, ncp, times, progress=progress, mesh_tol=mesh_tol)
    result = sim.run(options, tee)
    result.stats["total_s"] = time.perf_counter() - wall0  # including building and discretizing
    return result


#: A state may dip below zero by this share of its largest magnitude over the run (collocation undershoot
#: at an exhaustion: measured -0.026 mM glucose at 60 elements against 40 mM), plus an absolute 1e-6.
NEGATIVE_TOLERANCE = 1e-2


def physical_tolerance(values) -> float:
    """How far below zero a state may dip: ``NEGATIVE_TOLERANCE`` of its largest magnitude, plus 1e-6."""
    return NEGATIVE_TOLERANCE * float(np.nanmax(np.abs(values))) + 1e-6


def check_physical(model, result, sc, nfe=None) -> None:
    """Refuse a solution that breaks physics: a state (other than the model's ``SIGNED_STATES``) below zero.

    A state far below zero -- a volume of -1.25 L after samples that drain the reactor, a glucose of
    -574 mM -- is not a result to write as CSV: it is an error naming the state, the time and the value.
    """
    signed = set(model.hook("SIGNED_STATES") or ())
    wide = result.wide
    # the volume first: a drained vessel makes every concentration meaningless
    for name, kind in sorted(result.kinds.items(), key=lambda item: item[0] != "V"):
        if kind != "state" or name in signed or name not in wide:
            continue
        values = wide[name].to_numpy(dtype=float)
        if values.size == 0:
            continue
        tol = physical_tolerance(values)
        k = int(np.nanargmin(values))
        if not np.isfinite(values).all() or values[k] < -tol:
            where = (
                f"state {name} is {values[k]:.4g} {result.units.get(name, '')} at time "
                f"{wide['time'].iloc[k]:g} {model.time_unit}"
                if np.isfinite(values).all()
                else f"state {name} is not finite"
            )
            hint = (
                " The recipe removes more than the vessel holds (samples or withdrawals larger than "
                "the volume and the feeds)?"
                if name == "V"
                else " The recipe or the parameter values take the model outside its physical range -- or, "
                "if the undershoot sits at a sharp transition such as substrate exhaustion, the time "
                f"grid is too coarse there: raise nfe (now {nfe})."
            )
            raise ScenarioError(f"simulation of {model.name} ({sc.source}) breaks physics: {where}.{hint}")


def points_at(m, times) -> list:
    """The points of ``m.t`` at ``times``, which must be grid points (they were element boundaries).

    Pyomo keys its time-indexed components by these exact values, so results are read through them.
    """
    points = list(m.t)
    lookup = np.asarray(points, dtype=float)
    chosen = []
    for t in times:
        j = int(np.argmin(np.abs(lookup - t)))
        if abs(lookup[j] - t) > 1e-9 * (1 + abs(t)):
            raise RuntimeError(f"time {t} is not a point of the discretized model (internal error)")
        chosen.append(points[j])
    return chosen


def _collect(model, d, sc, values, out_times) -> SimulationResult:
    m = d.m
    points = list(m.t) if out_times is None else points_at(m, out_times)
    cached_units, cached_kinds = d.units_and_kinds(model.time_unit)
    units, kinds = dict(cached_units), dict(cached_kinds)
    columns = {"time": np.asarray(points, dtype=float)}
    for v in d.time_vars:
        columns[v.local_name] = np.array([pyo.value(v[t]) for t in points], dtype=float)
    expression_values = d.expressions().evaluate(points)
    for e in d.time_exprs:
        columns[e.local_name] = expression_values[e.local_name]
    wide = pd.DataFrame(columns)
    wide.attrs["units"] = dict(units)
    return SimulationResult(
        wide=wide,
        units=units,
        time_unit=model.time_unit,
        model_name=model.name,
        scenario_name=sc.name,
        parameters=dict(values),
        kinds=kinds,
        pyomo_model=m,
    )
