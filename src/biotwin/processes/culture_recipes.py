"""Cell-culture operating recipes: initial state, bolus feeds, samples, continuous feed.

Shared by the cell-culture models. Every quantity is a value with its unit
(:mod:`biotwin.core.schema`); times are numbers in the recipe's ``time_unit``::

    description: Nominal 14-day platform fed-batch
    time_unit: d                    # of every time below (h, the default, or d)
    duration: 14
    initial: {Xv: 0.3 Mcell/mL, Glc: 35 mM, V: 1 L}   # the rest from parameters.yaml
    parameters: {beta_P: 30}        # the generic form: in the parameter's unit, or {value, unit}
    boluses:                        # shot additions of a feed solution
      - {time: 3, volume: 30 mL, Glc: 400 mM, Gln: 40 mM}
    samples: {times: [1, 2, 3], volume: 2 mL}   # broth withdrawn
    continuous_feed: {unit: L/d, points: [[0, 0], [14, 0]], composition: {Glc: 400 mM}}
    bolus_duration: 0.1 h

A bolus or sample is applied as a rectangular pulse of ``bolus_duration``
(default 0.1 h) that delivers exactly its volume: collocation needs continuous
states, and a 6-minute pulse is as short as a real shot addition. Boluses at the
same time are merged into one of the summed volume and volume-weighted
composition, which adds exactly the same amounts.

Recipes written before (``volume_L: 0.03``, ``Glc: 400`` meaning mM, ``bolus_duration_h``,
``continuous_feed.rate``) still load, with a note giving the new spelling
(:func:`culture_spellings`).
"""

from __future__ import annotations

import functools
import itertools

from pyomo.common.config import ConfigDict, ConfigValue, ListOf

from biotwin.core import checks
from biotwin.core.errors import ScenarioError
from biotwin.core.schema import Number, Points, Quantity, validate
from biotwin.core.units import convert_value, parse_unit


def culture_spellings(states: dict, species: list[str]) -> dict:
    """Old recipe spellings (unit in the key, concentrations without unit) -> new, for a model's ``RECIPE_SPELLINGS``."""
    out = {f"initial.{name}": (name, unit) for name, unit in states.items()}
    out.update({f"boluses.{sp}": (sp, "mM") for sp in species})
    out.update({f"continuous_feed.composition.{sp}": (sp, "mM") for sp in species})
    out.update(
        {
            "boluses.volume_L": ("volume", "L"),
            "samples.volume_L": ("volume", "L"),
            "continuous_feed.rate": ("points", "", {"unit": "L/h"}),  # the old reader's default unit
            "bolus_duration_h": ("bolus_duration", "h"),
        }
    )
    return out


def _time_unit(text) -> str:
    hours_per(str(text))  # refuses a unit that is not a time
    return str(text)


@functools.lru_cache(maxsize=64)
def hours_per(time_unit: str) -> float:
    """Hours in one ``time_unit`` of a recipe (``"d"`` -> 24); ValueError for a unit that is not a time."""
    try:
        return convert_value(1.0, parse_unit(str(time_unit), "time_unit"), parse_unit("h"))
    except Exception as exc:  # noqa: BLE001 (any unit text that is not a time)
        raise ValueError(f"{time_unit!r} is not a time unit ({exc})") from None


def bolus_config(species: list[str]) -> ConfigDict:
    """One bolus: ``{time: 3, volume: 30 mL, Glc: 400 mM}`` (species not given: none in the feed)."""
    bolus = ConfigDict(description="a shot addition")
    bolus.declare("time", ConfigValue(domain=Number(non_negative=True), default=None, description="[time_unit]"))
    bolus.declare("volume", ConfigValue(domain=Quantity("L", positive=True), default=None, description="[L]"))
    for sp in species:
        bolus.declare(sp, ConfigValue(domain=Quantity("mM", non_negative=True), default="0 mM", description="[mM]"))
    return bolus


def culture_config(states: dict, species: list[str]) -> ConfigDict:
    """The cell-culture recipe schema (``pyomo.common.config``) for a model's states and feed species."""
    c = ConfigDict(description="a cell-culture recipe")
    c.declare("description", ConfigValue(domain=str, default=""))
    c.declare("time_unit", ConfigValue(domain=_time_unit, default="h", description="unit of every time"))
    c.declare("duration", ConfigValue(domain=Number(positive=True), default=None, description="[time_unit]"))
    initial = c.declare("initial", ConfigDict(description="initial state; the rest from parameters.yaml"))
    for name, unit in states.items():
        initial.declare(name, ConfigValue(domain=Quantity(unit, non_negative=True), default=None, description=unit))
    c.declare("parameters", ConfigValue(domain=dict, default={}, description="overrides, the generic form"))
    c.declare("boluses", ConfigValue(domain=list, default=[], description="bolus feeds, each bolus_config"))
    samples = c.declare("samples", ConfigDict(description="broth withdrawn"))
    samples.declare("times", ConfigValue(domain=ListOf(float, Number(non_negative=True)), default=[]))
    samples.declare("volume", ConfigValue(domain=Quantity("L", positive=True), default=None, description="[L]"))
    feed = c.declare("continuous_feed", ConfigDict(description="a continuous feed"))
    feed.declare("unit", ConfigValue(domain=str, default=None, description="of the feed rate, e.g. L/d"))
    feed.declare("points", ConfigValue(domain=list, default=None, description="[[time, rate], ...]"))
    composition = feed.declare("composition", ConfigDict(description="the feed's concentrations"))
    for sp in species:
        composition.declare(sp, ConfigValue(domain=Quantity("mM", non_negative=True), default=None))
    c.declare("bolus_duration", ConfigValue(domain=Quantity("h", positive=True), default="0.1 h"))
    c.declare("settings", ConfigValue(domain=dict, default={}, description="passed to build(settings)"))
    return c


def pulse_program(pulses, t_end):
    """Points of a program that is zero except for rectangular pulses ``(start, end, value)``."""
    points = []
    for start, end, value in sorted(pulses):
        if not points or points[-1][0] < start:
            points.append([start, 0.0])
        points.extend([[start, value], [end, value], [end, 0.0]])
    if not points or points[0][0] > 0:
        points.insert(0, [0.0, 0.0])
    if points[-1][0] < t_end:
        points.append([t_end, 0.0])
    return points


def check_overlaps(pulses, what, where, unit="h", hours=1.0):
    """Pulses ``(start, end, ...)`` [h] must not overlap; the message quotes times in the recipe's ``unit``."""
    ordered = sorted(pulses)
    for (s1, e1, *_), (s2, e2, *_) in itertools.pairwise(ordered):
        if s2 < e1:
            raise ScenarioError(
                f"{where}: {what} at {s1 / hours:g} {unit} and {s2 / hours:g} {unit} overlap "
                f"(each lasts {e1 - s1:g} h); space them further apart"
            )


def read_culture_scenario(raw: dict, where: str, states: dict, species: list[str], model_keys=()) -> dict:
    """Translate a cell-culture recipe (:func:`culture_config`) into the generic scenario form (times in hours).

    Parameters
    ----------
    raw : dict
        The scenario as read from YAML.
    where : str
        Its source, for messages.
    states : dict
        State name -> unit; ``initial`` entries become parameters ``<state>0``.
    species : list of str
        Species a bolus or the continuous feed may carry (e.g. ``["Glc", "Gln"]``); the
        model has inputs ``<species>_bolus`` and parameters ``<species>_feed``.
    model_keys : iterable of str
        The model's own recipe keys (read by its ``read_scenario``): left out here, listed as allowed.
    """
    schema = culture_config(states, species)
    unknown = sorted(set(raw) - set(schema.keys()) - set(model_keys))
    if unknown:
        allowed = ", ".join(sorted(set(schema.keys()) | set(model_keys)))
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}; allowed: {allowed}")
    cfg = validate(schema, {k: v for k, v in raw.items() if k not in model_keys}, where)
    unit = cfg.time_unit
    hours = hours_per(unit)
    if cfg.duration is None:
        raise ScenarioError(f"{where}: 'duration' (culture length in {unit}) is required")
    t_end = cfg.duration * hours
    checks.in_range(t_end, "culture_duration", f"{where}: duration {cfg.duration:g} {unit}")
    dur = cfg.bolus_duration

    parameters = dict(cfg.parameters)
    for name in states:
        value = cfg.initial[name]
        if value is None:
            continue
        if f"{name}0" in parameters:
            raise ScenarioError(f"{where}: initial '{name}' is also given as parameter '{name}0'")
        if name == "V" and value <= 0:
            raise ScenarioError(f"{where}: initial volume V must be positive, got {value} L")
        parameters[f"{name}0"] = float(value)

    # boluses
    merged = {}
    for i, given in enumerate(cfg.boluses):
        label = f"{where}: bolus {i}"
        bolus = validate(bolus_config(species), given, label)
        if bolus.time is None or bolus.volume is None:
            raise ScenarioError(f"{label}: needs 'time' [{unit}] and 'volume' (e.g. 30 mL)")
        start = bolus.time * hours
        volume = bolus.volume
        if start + dur > t_end + 1e-9:
            raise ScenarioError(
                f"{label}: feed at {bolus.time:g} {unit} is after the end of the culture "
                f"({cfg.duration:g} {unit}, the pulse lasts {dur:g} h)"
            )
        amounts = {s: bolus[s] * volume for s in species}
        vol0, am0 = merged.get(start, (0.0, {s: 0.0 for s in species}))
        merged[start] = (vol0 + volume, {s: am0[s] + amounts[s] for s in species})
    bolus_pulses = [(s, s + dur, vol / dur, {sp: am[sp] / vol for sp in species}) for s, (vol, am) in merged.items()]
    check_overlaps(bolus_pulses, "boluses", where, unit, hours)

    # samples
    sample_pulses = []
    if cfg.samples.times:
        if cfg.samples.volume is None:
            raise ScenarioError(f"{where}: samples: give the volume withdrawn (e.g. volume: 2 mL)")
        for t in cfg.samples.times:
            start = t * hours
            if start + dur > t_end + 1e-9:
                raise ScenarioError(f"{where}: sample at {t:g} {unit} is after the end of the culture")
            sample_pulses.append((start, start + dur, cfg.samples.volume / dur))
        check_overlaps(sample_pulses, "samples", where, unit, hours)

    inputs = {
        "F_bolus": {"unit": "L/h", "points": pulse_program([(s, e, r) for s, e, r, _ in bolus_pulses], t_end)},
        "F_out": {"unit": "L/h", "points": pulse_program(sample_pulses, t_end)},
    }
    for sp in species:
        inputs[f"{sp}_bolus"] = {
            "unit": "mM",
            "points": pulse_program([(s, e, comp[sp]) for s, e, _, comp in bolus_pulses], t_end),
        }

    feed = cfg.continuous_feed
    if raw.get("continuous_feed") and feed.points is None:
        raise ScenarioError(f"{where}: continuous_feed: give its points, [[time, rate], ...] in its unit")
    if feed.points is not None:
        label = f"{where}: continuous_feed"
        if feed.unit is None:
            raise ScenarioError(f"{label}: give the rate's unit (unit: L/d)")
        try:  # checked as a flow rate; passed on in its own unit (the engine converts it)
            Points("L/h", non_negative=True)({"unit": feed.unit, "points": feed.points})
        except ValueError as exc:
            raise ScenarioError(f"{label}: {exc}") from None
        inputs["F_cont"] = {"unit": feed.unit, "points": [[float(t) * hours, float(r)] for t, r in feed.points]}
        for sp in species:
            if feed.composition[sp] is not None:
                parameters[f"{sp}_feed"] = float(feed.composition[sp])

    return {
        "description": cfg.description,
        "t_end": t_end,
        "parameters": parameters,
        "inputs": inputs,
        "settings": dict(cfg.settings),
    }
