"""Scenarios: named operating recipes read from YAML.

Generic schema (a model may translate its own schema into this one by defining
``read_scenario(raw: dict, where: str) -> dict`` in its ``model.py``)::

    description: free text
    t_end: 240                # end of the simulation [model time unit]
    settings: {}              # passed to the model's build(settings)
    parameters:               # overrides of parameters.yaml values
      X0: 0.2                 #   in the parameter's own unit, or
      mu_max: {value: 0.7, unit: 1/d}
    allow_unusual: false      # true: values outside plausible ranges / parameter bounds are intended
    inputs:                   # piecewise-linear programs of the model's inputs
      F:
        unit: L/h             # optional; default: the model component's unit
        points: [[0, 0], [24, 0], [24, 0.01], [240, 0.01]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from biotwin.core import checks, yaml_io
from biotwin.core.errors import ScenarioError

GENERIC_KEYS = {"description", "t_end", "settings", "parameters", "inputs"}


@dataclass
class Scenario:
    """An operating recipe in the generic form.

    Attributes
    ----------
    name : str
    t_end : float or None
        End time [model time unit].
    settings : dict
        Passed to ``build(settings)``.
    parameters : dict
        Raw parameter overrides (number, or ``{value, unit}``).
    inputs : dict
        Raw input programs (list of points, or ``{unit, points}``).
    description : str
    source : str
        Where the scenario came from (file path or ``"<dict>"``).
    raw : dict
        The scenario as given (old key spellings rewritten), before any model-specific translation.
    allow_unusual : bool
        The recipe says ``allow_unusual: true``: values outside the plausible ranges
        (:mod:`biotwin.core.checks`) and parameters outside their bounds are intended.
    """

    name: str = "default"
    t_end: float | None = None
    settings: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    description: str = ""
    source: str = "<dict>"
    raw: dict = field(default_factory=dict)
    allow_unusual: bool = False


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping, with errors naming the file."""
    try:
        raw = yaml_io.load(Path(path).read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario file not found") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML ({exc})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario must be a mapping")
    return raw


def from_dict(raw: dict, name: str, source: str, translate=None, spellings=None) -> Scenario:
    """Build a :class:`Scenario` from a mapping, translating a model-specific schema first.

    ``spellings`` (the model's ``RECIPE_SPELLINGS``) rewrites old key spellings first
    (:func:`biotwin.core.schema.modernize`, with a note); :attr:`Scenario.raw` holds the new spelling.
    """
    if spellings:
        from biotwin.core.schema import modernize

        raw = modernize(raw, spellings, source)
    original = dict(raw)
    raw = dict(raw)
    allow = raw.pop("allow_unusual", False)
    if not isinstance(allow, bool):
        raise ScenarioError(f"{source}: allow_unusual must be true or false, got {allow!r}")
    with checks.allow_unusual(allow):
        return _from_dict(raw, name, source, translate, original, allow)


def _from_dict(raw, name, source, translate, original, allow) -> Scenario:
    if translate is not None:
        raw = translate(dict(raw), source)
        if not isinstance(raw, dict):
            raise ScenarioError(f"{source}: the model's read_scenario must return a mapping")
    unknown = set(raw) - GENERIC_KEYS
    if unknown:
        raise ScenarioError(f"{source}: unknown scenario key(s) {sorted(unknown)}; allowed: {sorted(GENERIC_KEYS)}")
    t_end = raw.get("t_end")
    if t_end is not None:
        if not checks.is_number(t_end) or t_end <= 0:
            raise ScenarioError(f"{source}: t_end must be a positive number, got {t_end!r}")
        t_end = float(t_end)
    for key in ("settings", "parameters", "inputs"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise ScenarioError(f"{source}: '{key}' must be a mapping")
    return Scenario(
        name=name,
        t_end=t_end,
        settings=dict(raw.get("settings") or {}),
        parameters=dict(raw.get("parameters") or {}),
        inputs=dict(raw.get("inputs") or {}),
        description=str(raw.get("description") or ""),
        source=source,
        raw=original,
        allow_unusual=allow,
    )
