"""Recipe knobs and operating points: the one place where knob values become a recipe and a solve.

A model declares its process knobs in ``model.py`` (``EXPLORER["knobs"]``: ``apply(raw_recipe, value) ->
raw_recipe``); parameters become knobs too. :func:`evaluate` turns a set of knob values (and any further
parameter overrides) into a simulation, lengthening a recipe that ends before the process does. The
explorers (:mod:`biotwin.ui.widgets`) and the sweeps (:mod:`biotwin.sweep`) both evaluate points here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from biotwin.core.errors import BiotwinError, RecipeTooShortError
from biotwin.engine.mesh import MESH_TOL


@dataclass
class Knob:
    """One slider: a recipe knob (``apply`` edits the raw recipe) or a parameter (``apply`` is None)."""

    name: str
    label: str
    unit: str
    min: float
    max: float
    step: float
    value: float
    apply: object = None
    help: str = ""  # a tooltip: for a parameter its symbol, unit and source

    @property
    def description(self) -> str:
        return f"{self.label} [{self.unit}]" if self.unit else self.label


@dataclass
class ExplorerSpec:
    knobs: list
    panels: list
    table: object = None
    time_column: str = "time"
    time_label: str = "time [h]"
    readouts: object = None
    scenario: object = None
    nfe: int = 60
    extra: dict = field(default_factory=dict)
    lengthen: object = None
    mesh_tol: object = MESH_TOL  # the engine's grid refinement (None: the grid as given)
    time_scale: float = 1.0  # axis time per model time (1/24: a model in hours drawn in days), data too


def _parameter_knob(model, name, start=None) -> Knob:
    """A slider over a parameter's bounds, starting at ``start`` (the recipe's value) or parameters.yaml's."""
    entry = model.parameter_set[name]
    value = float(entry.value if start is None else start)
    lo = float(entry.lower) if entry.lower is not None else value * 0.5
    hi = float(entry.upper) if entry.upper is not None else value * 1.5
    if value > 0 and lo <= 0:
        lo = value / 10.0
    hi = min(hi, max(value * 3.0, lo * 1.01)) if value > 0 else hi
    unit = entry.unit if entry.unit != "dimensionless" else "-"
    help_text = f"{name} [{unit}], parameters.yaml: {entry.source}"
    return Knob(name, entry.title, unit, lo, hi, (hi - lo) / 200.0, value, help=help_text)


def explorer_spec(model, scenario=None, parameters=None, panels=None) -> ExplorerSpec:
    """The model's ``EXPLORER`` declaration (or a default one) as an :class:`ExplorerSpec`."""
    raw = dict(model.hook("EXPLORER") or {})
    knobs = [
        Knob(
            k["name"],
            k.get("label", k["name"]),
            k.get("unit", ""),
            float(k["min"]),
            float(k["max"]),
            float(k.get("step", (k["max"] - k["min"]) / 100.0)),
            float(k["value"]),
            k["apply"],
            k.get("help", ""),
        )
        for k in raw.get("knobs", [])
    ]
    names = parameters if parameters is not None else raw.get("parameters")
    if names is None:
        names = [p.name for p in model.parameter_set if p.lower is not None and p.upper is not None][:4]
    unknown = [n for n in names if n not in model.parameter_set]
    if unknown:
        raise BiotwinError(f"explore: unknown parameter(s) {unknown} of model '{model.name}'")
    # a parameter slider starts where the explorer's recipe sets it (LyoPRONTO's case 2 sets its own R0),
    # not at parameters.yaml's value, which would silently replace the recipe's
    start_scenario = scenario if scenario is not None else raw.get("scenario")
    starts = model.parameter_values(model.load_scenario(start_scenario).parameters) if start_scenario else {}
    knobs += [_parameter_knob(model, n, starts.get(n)) for n in names]
    spec_panels = panels or raw.get("panels")
    if spec_panels is None:
        build = model.build({"t_end": 1.0})
        import pyomo.environ as pyo
        from pyomo import dae

        states = [dv.get_state_var() for dv in build.component_objects(dae.DerivativeVar)]
        spec_panels = [(s.local_name, f"{s.local_name} [{pyo.units.get_units(s)}]") for s in states][:6]
    spec_panels = [(p, p) if isinstance(p, str) else tuple(p) for p in spec_panels]
    return ExplorerSpec(
        knobs,
        spec_panels,
        raw.get("table"),
        raw.get("time_column", "time"),
        raw.get("time_label", f"time [{model.time_unit}]"),
        raw.get("readouts"),
        scenario if scenario is not None else raw.get("scenario"),
        int(raw.get("nfe", 60)),
        lengthen=raw.get("lengthen"),
        time_scale=float(raw.get("time_scale", 1.0)),
    )


LENGTHEN_FACTOR, LENGTHEN_TIMES = 4.0, 2


def evaluate(
    model, spec: ExplorerSpec, values: dict, base_raw: dict, params: dict | None = None, lengthen_first: int = 0
):
    """Simulate the recipe with knob ``values``; return (table, readouts, result).

    ``params`` are parameter overrides on top of the parameter knobs (e.g. a sampled parameter set).

    A recipe that ends before the process does (:class:`RecipeTooShortError`, e.g. a cold shelf still
    drying when the hold ends) is run again with the model's ``lengthen`` (its last hold 4x, then 16x):
    every value a slider offers gives an answer. ``lengthen_first`` starts at that many lengthenings
    (a sweep knows the previous sample of the same cell needed them); ``result.stats["lengthened"]``
    says how many the answer used.
    """
    recipe = dict(base_raw)
    extra, params = dict(params or {}), {}
    for knob in spec.knobs:
        value = values.get(knob.name, knob.value)
        if knob.apply is None:
            params[knob.name] = value
        else:
            recipe = knob.apply(recipe, value)
    params.update(extra)
    first = min(int(lengthen_first), LENGTHEN_TIMES) if spec.lengthen is not None else 0
    for _ in range(first):
        recipe = spec.lengthen(recipe, LENGTHEN_FACTOR)
    for attempt in range(first, LENGTHEN_TIMES + 1):
        try:
            result = model.simulate(scenario=recipe, params=params, nfe=spec.nfe, mesh_tol=spec.mesh_tol)
            table = spec.table(result) if spec.table else result.wide
            readouts = spec.readouts(result) if spec.readouts else {}
            result.stats["lengthened"] = attempt
            return table, readouts, result
        except RecipeTooShortError:
            if spec.lengthen is None or attempt == LENGTHEN_TIMES:
                raise
            recipe = spec.lengthen(recipe, LENGTHEN_FACTOR)
    raise AssertionError("unreachable")


__all__ = ["LENGTHEN_FACTOR", "LENGTHEN_TIMES", "ExplorerSpec", "Knob", "evaluate", "explorer_spec"]
