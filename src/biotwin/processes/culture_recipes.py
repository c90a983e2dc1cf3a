"""Cell-culture operating recipes: initial state, bolus feeds, samples, continuous feed.

Shared by the cell-culture models. Schema (times in ``time_unit``)::

    description: Nominal 14-day platform fed-batch
    time_unit: d                    # h (default) or d
    duration: 14
    initial: {Xv: 0.3, Glc: 35}     # state -> value in the state's unit; the rest from parameters.yaml
    parameters: {beta_P: 30}
    boluses:                        # shot additions of a feed solution
      - {time: 3, volume_L: 0.03, Glc: 400, Gln: 40}
    samples: {times: [1, 2, 3], volume_L: 0.002}   # broth withdrawn
    continuous_feed: {unit: L/d, rate: [[0, 0], [14, 0]], composition: {Glc: 400}}
    bolus_duration_h: 0.1

A bolus or sample is applied as a rectangular pulse of ``bolus_duration_h``
(default 0.1 h) that delivers exactly its volume: collocation needs continuous
states, and a 6-minute pulse is as short as a real shot addition. Boluses at the
same time are merged into one of the summed volume and volume-weighted
composition, which adds exactly the same amounts.
"""

from __future__ import annotations

import itertools

from biotwin.core import checks
from biotwin.core.errors import ScenarioError
from biotwin.core.units import convert_value, parse_unit

KEYS = {
    "description",
    "time_unit",
    "duration",
    "initial",
    "parameters",
    "boluses",
    "samples",
    "continuous_feed",
    "bolus_duration_h",
    "settings",
}


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


def read_culture_scenario(raw: dict, where: str, states: dict, species: list[str]) -> dict:
    """Translate a cell-culture recipe into the generic scenario form (times in hours).

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
    """
    unknown = set(raw) - KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown scenario key(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
    unit = raw.get("time_unit", "h")
    try:
        hours = convert_value(1.0, parse_unit(str(unit), f"{where}: time_unit"), parse_unit("h"))
    except Exception as exc:  # noqa: BLE001
        raise ScenarioError(f"{where}: time_unit {unit!r} is not a time unit ({exc})") from None
    if "duration" not in raw:
        raise ScenarioError(f"{where}: 'duration' (culture length in {unit}) is required")
    t_end = checks.number(raw["duration"], f"{where}: duration", positive=True) * hours
    checks.in_range(t_end, "culture_duration", f"{where}: duration {raw['duration']} {unit}")
    dur = checks.number(raw.get("bolus_duration_h", 0.1), f"{where}: bolus_duration_h", positive=True)

    parameters = dict(raw.get("parameters") or {})
    for name, value in (raw.get("initial") or {}).items():
        if name not in states:
            raise ScenarioError(f"{where}: initial: unknown state '{name}'; states: {', '.join(states)}")
        if f"{name}0" in parameters:
            raise ScenarioError(f"{where}: initial '{name}' is also given as parameter '{name}0'")
        value = checks.number(value, f"{where}: initial {name} [{states[name]}]", non_negative=True)
        if name == "V" and value <= 0:
            raise ScenarioError(f"{where}: initial volume V must be positive, got {value} L")
        parameters[f"{name}0"] = value

    # boluses
    merged = {}
    for i, bolus in enumerate(raw.get("boluses") or []):
        label = f"{where}: bolus {i}"
        if not isinstance(bolus, dict):
            raise ScenarioError(f"{label}: expected a mapping with time, volume_L and species")
        extra = set(bolus) - {"time", "volume_L"} - set(species)
        if extra:
            raise ScenarioError(
                f"{label}: unknown species or key(s) {sorted(extra)}; "
                f"a bolus has time, volume_L and any of {', '.join(species)} [mM]"
            )
        if "time" not in bolus or "volume_L" not in bolus:
            raise ScenarioError(f"{label}: needs 'time' [{unit}] and 'volume_L'")
        start = checks.number(bolus["time"], f"{label}: time", non_negative=True) * hours
        volume = checks.number(bolus["volume_L"], f"{label}: volume_L")
        if volume <= 0:
            raise ScenarioError(f"{label}: volume_L must be positive, got {volume}")
        if start + dur > t_end + 1e-9:
            raise ScenarioError(
                f"{label}: feed at {bolus['time']} {unit} is after the end of the culture "
                f"({raw['duration']} {unit}, the pulse lasts {dur} h)"
            )
        amounts = {s: checks.number(bolus.get(s, 0.0), f"{label}: {s}", non_negative=True) * volume for s in species}
        vol0, am0 = merged.get(start, (0.0, {s: 0.0 for s in species}))
        merged[start] = (vol0 + volume, {s: am0[s] + amounts[s] for s in species})
    bolus_pulses = [(s, s + dur, vol / dur, {sp: am[sp] / vol for sp in species}) for s, (vol, am) in merged.items()]
    check_overlaps(bolus_pulses, "boluses", where, unit, hours)

    # samples
    samples = raw.get("samples") or {}
    sample_pulses = []
    if samples:
        if not isinstance(samples, dict) or set(samples) - {"times", "volume_L"}:
            raise ScenarioError(f"{where}: samples: expected {{times: [...], volume_L: v}}")
        volume = checks.number(samples.get("volume_L"), f"{where}: samples: volume_L", positive=True)
        for j, t in enumerate(samples.get("times") or []):
            start = checks.number(t, f"{where}: samples: time {j}", non_negative=True) * hours
            if start + dur > t_end + 1e-9:
                raise ScenarioError(f"{where}: sample at {t} {unit} is after the end of the culture")
            sample_pulses.append((start, start + dur, volume / dur))
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

    feed = raw.get("continuous_feed")
    if feed:
        if not isinstance(feed, dict) or set(feed) - {"unit", "rate", "composition"} or "rate" not in feed:
            raise ScenarioError(f"{where}: continuous_feed: expected {{unit, rate: [[time, value], ...], composition}}")
        rate_unit = feed.get("unit", "L/h")
        points = feed["rate"]
        if not isinstance(points, list):
            raise ScenarioError(f"{where}: continuous_feed: rate must be a list of [time, value]")
        scaled = []
        for k, p in enumerate(points):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ScenarioError(f"{where}: continuous_feed: rate point {k}: expected [time, value]")
            t = checks.number(p[0], f"{where}: continuous_feed: rate point {k} time") * hours
            r = checks.number(p[1], f"{where}: continuous_feed: rate point {k} value")
            if r < 0:
                raise ScenarioError(f"{where}: continuous_feed: rate point {k} is negative ({r} {rate_unit})")
            scaled.append([t, r])
        inputs["F_cont"] = {"unit": rate_unit, "points": scaled}
        for sp, conc in (feed.get("composition") or {}).items():
            if sp not in species:
                raise ScenarioError(f"{where}: continuous_feed: unknown species '{sp}'; allowed: {', '.join(species)}")
            parameters[f"{sp}_feed"] = checks.number(conc, f"{where}: continuous_feed: {sp}", non_negative=True)

    return {
        "description": raw.get("description", ""),
        "t_end": t_end,
        "parameters": parameters,
        "inputs": inputs,
        "settings": dict(raw.get("settings") or {}),
    }
