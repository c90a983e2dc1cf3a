"""Model folders: loading, the contract checks, parameters and scenarios.

A model is a folder (DESIGN.md, "The model-folder contract")::

    model.py           build(settings) -> ConcreteModel (not discretized); TIME_UNIT
    parameters.yaml    value, unit, bounds, source, note, label of every parameter
    scenarios/*.yaml   operating recipes
    data/              example experiments
    README.md          model card

``load_model("mab_fedbatch")`` finds a shipped model by name; any folder on
disk works the same way through its path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from pyomo import dae
from pyomo.core.base.units_container import UnitsError

from biotwin.core import checks
from biotwin.core import scenario as scenario_mod
from biotwin.core.errors import BiotwinError, ModelDefinitionError, ScenarioError
from biotwin.core.parameters import ParameterSet
from biotwin.core.units import convert_value, parse_unit, unit_string

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/biotwin (this file is in core/)


def model_search_path() -> list[Path]:
    """Folders searched for shipped models, in order.

    The wheel carries the models inside the package (``biotwin/models``); a
    source checkout keeps them at the repository root (``models/``).
    """
    return [p for p in (_PACKAGE_DIR / "models", _PACKAGE_DIR.parents[1] / "models") if p.is_dir()]


def available_models() -> list[str]:
    """Names of the shipped models."""
    names = set()
    for folder in model_search_path():
        names.update(p.name for p in folder.iterdir() if (p / "model.py").is_file())
    return sorted(names)


def resolve_model_folder(name_or_path: str | Path) -> Path:
    """Folder of a model given by shipped name or by path."""
    path = Path(name_or_path).expanduser()
    if (path / "model.py").is_file():
        return path.resolve()
    if len(path.parts) == 1:  # a bare name: a shipped model (even if a folder of that name is here)
        for folder in model_search_path():
            if (folder / path.name / "model.py").is_file():
                return (folder / path.name).resolve()
    if path.exists():
        raise ModelDefinitionError(f"{path}: not a model folder (no model.py)")
    raise ModelDefinitionError(
        f"no model named or at '{name_or_path}'; shipped models: {', '.join(available_models()) or 'none'}"
    )


def load_model(name_or_path: str | Path) -> Model:
    """Load a model folder.

    Parameters
    ----------
    name_or_path : str or pathlib.Path
        A shipped model's name (``"mab_fedbatch"``) or the path of a model folder.

    Returns
    -------
    Model
    """
    return Model(resolve_model_folder(name_or_path))


def _check_bounds(entry, value: float, where: str) -> None:
    """A parameter value outside its ``parameters.yaml`` bounds is refused unless unusual values are allowed."""
    if (entry.lower is not None and value < entry.lower) or (entry.upper is not None and value > entry.upper):
        lo = "-inf" if entry.lower is None else f"{entry.lower:g}"
        hi = "inf" if entry.upper is None else f"{entry.upper:g}"
        checks.unusual(
            f"{where}: parameter '{entry.name}' = {value:g} {entry.unit} is outside its bounds "
            f"[{lo}, {hi}] {entry.unit} (parameters.yaml)"
        )


def folder_sha256(folder: Path) -> str:
    """SHA-256 over the model folder's files (names and contents), for provenance."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# Optional hooks a model.py may define, with what the loader checks: kind, the positional arguments
# biotwin calls a function hook with, and what it is for (README, "The model-folder contract").
HOOKS = {
    "read_scenario": ("function", ("raw", "where"), "translate a recipe mapping into inputs and settings"),
    "summary": ("function", ("result",), "key numbers of a run (dict), for the CLI's --summary and notebooks"),
    "output_table": ("function", ("result",), "the CSV table of a run (pandas.DataFrame) for the CLI's --out"),
    "optimize": ("function", ("model", "scenario"), "the optimization behind `biotwin optimize`"),
    "EXPLORER": ("mapping", None, "knobs, panels and readouts of biotwin.explore"),
    "SIGNED_STATES": ("names", None, "states allowed below zero by the physics check"),
    "RECIPE_SPELLINGS": ("mapping", None, "old recipe keys -> (new key, unit), read with a note"),
}


def _check_hooks(module, model_py: Path) -> None:
    """Refuse a malformed optional hook with the file, the hook and the fix."""
    import inspect

    for name, (kind, args, purpose) in HOOKS.items():
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        where = f"{model_py}: {name} ({purpose})"
        if kind == "function":
            if not callable(value):
                raise ModelDefinitionError(
                    f"{where} must be a function {name}({', '.join(args)}), not {type(value).__name__}"
                )
            try:
                inspect.signature(value).bind(*args)
            except TypeError as exc:
                raise ModelDefinitionError(
                    f"{where}: biotwin calls it as {name}({', '.join(args)}), which "
                    f"its signature {name}{inspect.signature(value)} does not accept "
                    f"({exc}); change the signature"
                ) from None
        elif kind == "mapping" and not isinstance(value, Mapping):
            raise ModelDefinitionError(f"{where} must be a dict, not {type(value).__name__}")
        elif kind == "names" and (isinstance(value, str) or not all(isinstance(v, str) for v in value)):
            raise ModelDefinitionError(f"{where} must be a list of state names, e.g. ['T_product']")


def _module_name(folder: Path) -> str:
    folder = Path(folder).resolve()
    return f"biotwin_model_{folder.name}_{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"


def helper_module(model_file, name: str):
    """Import ``<name>.py`` next to a model's ``model.py`` (a model folder is not a package), once.

    The one loader of a folder's helper modules: :meth:`Model.submodule` calls it, and code inside a
    model folder calls ``helper_module(__file__, "cycle_optimization")``.
    """
    folder = Path(model_file).resolve().parent
    module_name = f"{_module_name(folder)}_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = folder / f"{name}.py"
    if not path.is_file():
        raise ModelDefinitionError(f"model '{folder.name}' has no module {name}.py in {folder}")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise
    return module


class Model:
    """A loaded model folder: its code, parameters and scenarios composed in one object.

    Attributes
    ----------
    name : str
    folder : pathlib.Path
    parameter_set : biotwin.core.parameters.ParameterSet
    time_unit : str
        Unit of the model's time set (``TIME_UNIT`` in ``model.py``).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        model_py = self.folder / "model.py"
        module_name = _module_name(self.folder)
        spec = importlib.util.spec_from_file_location(module_name, model_py)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ModelDefinitionError(f"{model_py}: failed to import: {type(exc).__name__}: {exc}") from exc
        if not callable(getattr(module, "build", None)):
            raise ModelDefinitionError(f"{model_py}: must define build(settings: dict | None = None)")
        time_unit = getattr(module, "TIME_UNIT", None)
        if not isinstance(time_unit, str):
            raise ModelDefinitionError(f"{model_py}: must define TIME_UNIT, the unit of m.t, e.g. TIME_UNIT = 'h'")
        try:
            self.time_pyomo_unit = parse_unit(time_unit, f"{model_py}: TIME_UNIT")
        except ValueError as exc:
            raise ModelDefinitionError(str(exc)) from None
        _check_hooks(module, model_py)
        self.module = module
        self.time_unit = time_unit
        self.parameter_set = ParameterSet.from_yaml(self.folder / "parameters.yaml")
        self._variable_units = {}  # variable_units() per settings

    def submodule(self, name: str):
        """Import ``<folder>/<name>.py``, a helper module shipped with the model (imported once)."""
        return helper_module(self.folder / "model.py", name)

    def __repr__(self):
        return f"<biotwin Model '{self.name}' at {self.folder}>"

    def hook(self, name: str):
        """The optional hook ``name`` of model.py (see :data:`HOOKS`), or None when the model has none."""
        if name not in HOOKS:
            raise ModelDefinitionError(f"unknown hook {name!r}; hooks: {', '.join(HOOKS)}")
        return getattr(self.module, name, None)

    def summary(self, result) -> dict:
        """Key numbers of a run: the model's ``summary`` hook, else the final state and run statistics."""
        hook = self.hook("summary")
        return hook(result) if hook is not None else result.summary()

    def output_table(self, result):
        """The table of a run as the CLI writes it: the model's ``output_table`` hook, else ``result.wide``."""
        hook = self.hook("output_table")
        return hook(result) if hook is not None else result.wide

    # -- parameters ---------------------------------------------------------
    @property
    def parameters(self) -> pd.DataFrame:
        """The parameter table: label, value, unit, bounds, source, note."""
        return self.parameter_set.to_frame()

    def parameter_values(self, overrides: dict | None = None, where: str = "params") -> dict[str, float]:
        """Default values updated with ``overrides``, each in its ``parameters.yaml`` unit.

        Parameters
        ----------
        overrides : dict, optional
            ``name -> value`` (in the parameter's own unit), ``(value, "unit")`` or
            ``{"value": v, "unit": "..."}``.
        """
        values = self.parameter_set.values()
        if overrides is not None and not isinstance(overrides, Mapping):
            raise ScenarioError(
                f"{where}: parameter overrides must be a mapping name -> value, e.g. "
                f"{{'mu_max': 0.03}}, got {type(overrides).__name__} {overrides!r}"
            )
        for name, given in (overrides or {}).items():
            if name not in self.parameter_set:
                raise ScenarioError(f"{where}: {self.parameter_set.unknown_message(name)}")
            entry = self.parameter_set[name]
            unit = None
            if isinstance(given, dict):
                extra = set(given) - {"value", "unit"}
                if extra or "value" not in given:
                    raise ScenarioError(f"{where}: parameter '{name}': expected {{value, unit}}, got {given!r}")
                given, unit = given["value"], given.get("unit")
            elif isinstance(given, (tuple, list)):
                if len(given) != 2:
                    raise ScenarioError(f"{where}: parameter '{name}': expected (value, unit), got {given!r}")
                given, unit = given
            if not checks.is_number(given):
                raise ScenarioError(f"{where}: parameter '{name}' must be a finite number, got {given!r}")
            value = float(given)
            if unit is not None:
                try:
                    value = convert_value(value, parse_unit(unit, f"{where}: parameter '{name}'"), entry.pyomo_unit)
                except (ValueError, UnitsError) as exc:
                    raise ScenarioError(
                        f"{where}: parameter '{name}': unit {unit!r} does not convert to {entry.unit!r} ({exc})"
                    ) from None
            _check_bounds(entry, value, where)
            values[name] = value
        return values

    # -- building -----------------------------------------------------------
    def build(self, settings: dict | None = None) -> pyo.ConcreteModel:
        """Call ``model.py``'s ``build`` and check the result against the contract.

        Parameters
        ----------
        settings : dict, optional
            Passed to ``build``; the engine always includes ``t_end`` [time unit]. ``build`` also receives
            ``settings["parameter_units"]``, ``{name: unit}`` of every parameter in ``parameters.yaml`` (the
            one place parameter units are written): ``declare(m, TIME_UNIT, settings["parameter_units"], ...)``
            declares them.

        Returns
        -------
        pyomo.environ.ConcreteModel
            Not discretized; parameters fixed at their ``parameters.yaml`` values.
        """
        where = f"{self.folder / 'model.py'}: build()"
        try:
            m = self.module.build({**(settings or {}), "parameter_units": self.parameter_units()})
        except BiotwinError:
            raise
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            line = next(
                (
                    f" (line {f.lineno}: {f.line})"
                    for f in reversed(tb)
                    if Path(f.filename).resolve() == (self.folder / "model.py").resolve()
                ),
                "",
            )
            raise ModelDefinitionError(
                f"{where} failed{line}: {type(exc).__name__}: {exc} (settings {dict(settings or {})})"
            ) from exc
        if not isinstance(m, pyo.Block):
            raise ModelDefinitionError(f"{where} must return a Pyomo ConcreteModel, got {type(m).__name__}")
        t = getattr(m, "t", None)
        if not isinstance(t, dae.ContinuousSet):
            raise ModelDefinitionError(
                f"{where}: the model needs one continuous time set m.t (pyomo.dae.ContinuousSet)"
            )
        if t.get_discretization_info():
            raise ModelDefinitionError(
                f"{where} returned a model that is already discretized; build must not apply "
                "dae.collocation or dae.finite_difference (the engine discretizes)"
            )
        for p in self.parameter_set:
            var = getattr(m, p.name, None)
            if not isinstance(var, pyo.Var) or var.is_indexed():
                raise ModelDefinitionError(
                    f"{where}: parameter '{p.name}' of {self.parameter_set.path} must be a scalar Var m.{p.name}"
                )
            var_unit = pyo.units.get_units(var)
            try:
                convert_value(1.0, p.pyomo_unit, var_unit)
            except UnitsError:
                raise ModelDefinitionError(
                    f"{where}: parameter '{p.name}' has unit {p.unit!r} in parameters.yaml but "
                    f"{unit_string(var_unit)!r} in model.py"
                ) from None
        self.set_parameters(m, self.parameter_set.values())
        return m

    def parameter_units(self) -> dict[str, str]:
        """``{name: unit}`` of every parameter, as written in ``parameters.yaml``."""
        return {p.name: p.unit for p in self.parameter_set}

    def variable_units(self, settings: dict | None = None) -> dict[str, str]:
        """``{name: unit}`` of every time-dependent variable and output (states, inputs, algebraic
        variables, Expressions over ``m.t``) of the model built with ``settings``.

        The model is built once per ``settings`` and Model object (a protocol naming ten variables asked
        for ten builds before).
        """
        key = json.dumps(settings or {}, sort_keys=True, default=str)
        cache = self._variable_units
        if key not in cache:
            m = self.build(settings)
            units = {}
            for comp in m.component_objects((pyo.Var, pyo.Expression), descend_into=False):
                if comp.is_indexed() and comp.index_set() is m.t and len(comp):
                    units[comp.local_name] = unit_string(pyo.units.get_units(next(iter(comp.values()))))
            cache[key] = units
        return dict(cache[key])

    def set_parameters(self, m, values: dict[str, float]):
        """Fix the parameter Vars of ``m`` at ``values`` (each in its ``parameters.yaml`` unit)."""
        for name, value in values.items():
            entry = self.parameter_set[name]
            var = getattr(m, name)
            var.fix(convert_value(value, entry.pyomo_unit, pyo.units.get_units(var)))

    # -- scenarios ----------------------------------------------------------
    def scenario_names(self) -> list[str]:
        """Names of the scenarios shipped in ``scenarios/``."""
        folder = self.folder / "scenarios"
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def load_scenario(self, scenario=None) -> scenario_mod.Scenario:
        """A scenario by name (in ``scenarios/``), path, mapping, or None for the model's default.

        The model's default is ``scenarios/default.yaml`` when present, else an
        empty scenario.
        """
        translate = self.hook("read_scenario")
        spellings = self.hook("RECIPE_SPELLINGS")
        if isinstance(scenario, scenario_mod.Scenario):
            return scenario
        if scenario is None:
            default = self.folder / "scenarios" / "default.yaml"
            if not default.is_file():
                return scenario_mod.from_dict({}, "default", "<no scenario>", translate, spellings)
            scenario = default
        if isinstance(scenario, dict):
            return scenario_mod.from_dict(scenario, "custom", "<dict>", translate, spellings)
        path = Path(scenario)
        if not path.is_file() and path.suffix == "" and len(path.parts) == 1:
            candidate = self.folder / "scenarios" / f"{path.name}.yaml"
            if not candidate.is_file() and path.name == "default":
                return self.load_scenario(None)  # the model's default: no recipe file, declared inputs
            if not candidate.is_file():
                raise ScenarioError(
                    f"model '{self.name}' has no scenario '{scenario}'; "
                    f"available: {', '.join(self.scenario_names()) or 'none'}"
                )
            path = candidate
        raw = scenario_mod.read_yaml(path)
        return scenario_mod.from_dict(raw, path.stem, str(path), translate, spellings)

    # -- rates ----------------------------------------------------------------
    def rates(
        self, states: dict, inputs: dict | None = None, params: dict | None = None, settings: dict | None = None
    ) -> dict[str, float]:
        """Time derivatives of the states at one point, without integrating.

        Parameters
        ----------
        states : dict
            Value of every state, each in its model unit.
        inputs : dict, optional
            Input values in model units (default: the model's fixed values).
        params : dict, optional
            Parameter overrides (see :meth:`parameter_values`).
        settings : dict, optional
            Passed to ``build``.

        Returns
        -------
        dict[str, float]
            ``d<state>/dt`` for each state [state unit / time unit].
        """
        from biotwin.engine.forward import ForwardIntegrator, UnsupportedStructure

        key = json.dumps(settings or {}, sort_keys=True, default=str)
        if getattr(self, "_rates_cache", (None,))[0] != key:
            m = self.build({"t_end": 1.0, **(settings or {})})
            self._rates_cache = (key, m, ForwardIntegrator(m, m.t))
        _, m, integrator = self._rates_cache
        try:
            integrator.require_autonomous(f"model '{self.name}': rates(states) (no time is given)")
        except UnsupportedStructure as exc:
            raise ModelDefinitionError(str(exc)) from None
        self.set_parameters(m, self.parameter_values(params))
        names = [s.local_name for s in integrator.states]
        missing = set(names) - set(states)
        unknown = set(states) - set(names)
        if missing or unknown:
            raise ScenarioError(
                f"rates: states must be exactly {', '.join(names)} "
                f"(missing {sorted(missing)}, unknown {sorted(unknown)})"
            )
        inputs = dict(inputs or {})
        input_names = [v.local_name for v in integrator.inputs]
        if set(inputs) - set(input_names):
            raise ScenarioError(
                f"rates: unknown input(s) {sorted(set(inputs) - set(input_names))}; inputs: {', '.join(input_names)}"
            )
        t = m.t.last()
        u = [float(inputs.get(n, pyo.value(v[t]))) for n, v in zip(input_names, integrator.inputs)]
        x = np.array([float(states[n]) for n in names])
        dx = integrator.rates_at(x, u)
        return {f"d{n}/dt": float(v) for n, v in zip(names, dx)}

    # -- simulation ---------------------------------------------------------
    def simulate(
        self,
        scenario=None,
        params: dict | None = None,
        t_end: float | None = None,
        nfe: int = 50,
        ncp: int = 3,
        times=None,
        options: dict | None = None,
        tee: bool = False,
        progress=None,
        mesh_tol: float | None = 1e-4,
    ):
        """Simulate a scenario by collocation.

        Parameters
        ----------
        scenario : str, path, dict or Scenario, optional
            Operating recipe; default ``scenarios/default.yaml``.
        params : dict, optional
            Parameter overrides (see :meth:`parameter_values`), applied after the scenario's.
        t_end : float, optional
            End time [``time_unit``]; default the scenario's ``t_end``.
        nfe : int
            About this many finite elements (recipe corners and output times are
            always element boundaries).
        ncp : int
            Radau collocation points per element.
        times : sequence of float, optional
            Output times [``time_unit``]; default every discretization point.
        options : dict, optional
            Ipopt options overriding the defaults.
        tee : bool
            Show Ipopt's log.
        progress : callable, optional
            Called with a short text at each stage (build, initialize, solve).
        mesh_tol : float or None
            Before the solve, elements are halved where the collocation polynomial through the forward
            integration misses it by more than this share of a state's range [dimensionless]; None keeps
            the grid (:mod:`biotwin.engine.mesh`). ``result.stats["mesh"]`` reports what was done.

        Returns
        -------
        biotwin.engine.results.SimulationResult
        """
        from biotwin.engine.simulation import simulate

        return simulate(
            self,
            scenario=scenario,
            params=params,
            t_end=t_end,
            nfe=nfe,
            ncp=ncp,
            times=times,
            options=options,
            tee=tee,
            progress=progress,
            mesh_tol=mesh_tol,
        )
