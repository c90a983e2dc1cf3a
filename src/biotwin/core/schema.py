"""The validation layer of recipe files: :mod:`pyomo.common.config` domains for quantities and programs.

One unit convention for every quantity a recipe holds -- a value with its unit::

    fill: 2 mL                                   # a value and its unit, as text
    fill: {value: 2, unit: mL}                   # the same, as a mapping
    shelf_temperature:                           # a program: [time, value] pairs, times in the
      unit: degC                                 # recipe's time unit, values in ``unit``
      points: [[0, -35], [0.92, 20], [12, 20]]

(the generic scenario form's ``parameters`` and ``inputs`` use the same two shapes). A recipe reader
declares its keys in a :class:`pyomo.common.config.ConfigDict` whose domains are :class:`Quantity`
and :class:`Points`; :func:`validate` applies it and turns a rejected value into a
:class:`~biotwin.core.errors.ScenarioError` naming the file, the key and the problem.

Files written before this convention carried the unit in the key (``fill_mL: 2``). They keep
loading: :func:`modernize` rewrites a copy of the recipe (never the file) into the new spelling and
warns once with a :class:`RecipeSpellingWarning` that gives the new spelling of every old key.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings

from pyomo.common.config import ConfigDict

from biotwin.core.checks import is_number, sign_problem
from biotwin.core.errors import ScenarioError, config_error_text

_VALUE_AND_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


class RecipeSpellingWarning(UserWarning):
    """A recipe uses the old spelling (unit in the key); the message gives the new one."""


def _registry():
    from biotwin.core.units import units

    return units.pint_registry


def _pint_unit(text: str):
    import pint

    text = text.strip()
    if text.startswith("/"):  # "/torr" as in "0.46 /torr"
        text = "1" + text
    try:
        return _registry().parse_units(text)
    except (
        pint.errors.UndefinedUnitError,
        pint.errors.DefinitionSyntaxError,
        pint.errors.OffsetUnitCalculusError,
        AssertionError,
        AttributeError,
        TypeError,
        ValueError,
    ) as exc:
        raise ValueError(f"{text!r} is not a unit pint understands ({str(exc) or type(exc).__name__})") from None


def split_quantity(value) -> tuple[float, str]:
    """``(number, unit text)`` of a quantity written ``"2 mL"`` or ``{value: 2, unit: mL}``.

    Raises
    ------
    ValueError
        For anything else, with the expected form in the message.
    """
    if isinstance(value, dict):
        if set(value) != {"value", "unit"}:
            raise ValueError(f"expected {{value: ..., unit: ...}}, got keys {sorted(value)}")
        number, unit = value["value"], value["unit"]
        if not is_number(number):
            raise ValueError(f"value {number!r} is not a finite number")
        if not isinstance(unit, str) or not unit.strip():
            raise ValueError(f"unit {unit!r} must be a unit text such as 'mL'")
        return float(number), unit.strip()
    if isinstance(value, str):
        match = _VALUE_AND_UNIT.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a number followed by its unit (e.g. '2 mL')")
        number = float(match.group(1))
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not finite")
        return number, match.group(2)
    raise ValueError(f"{value!r} has no unit; write the value with its unit, e.g. '2 mL' or {{value: 2, unit: mL}}")


@functools.lru_cache(maxsize=1024)
def _affine(given: str, unit: str, difference: bool) -> tuple[float, float]:
    """``(scale, offset)`` with ``value in unit = scale * value in given + offset`` (pint, once per pair).

    Every unit conversion is affine (an offset only between temperatures such as degC and K), so two
    conversions by pint give it exactly; recipes are read again on every explorer move and sweep point,
    and pint's parser takes about 0.1 ms per unit.
    """
    import pint

    source, target = _pint_unit(given), _pint_unit(unit)
    q = _registry().Quantity
    try:
        if difference:  # a temperature difference or rate: pint's difference of two values, whatever the spelling
            return float((q(1.0, source) - q(0.0, source)).to(target).magnitude), 0.0
        at0 = float(q(0.0, source).to(target).magnitude)
        at1 = float(q(1.0, source).to(target).magnitude)
        return (at1 if at0 == 0.0 else at1 - at0), at0  # a pure scale taken as pint gives it, unrounded
    except pint.errors.DimensionalityError:
        raise ValueError(f"{given!r} is not a unit of the same kind as {unit!r}") from None
    except pint.errors.OffsetUnitCalculusError as exc:
        raise ValueError(f"{given!r} cannot be converted to {unit!r} ({exc})") from None


def to_unit(number: float, given: str, unit: str, *, difference: bool = False) -> float:
    """``number`` [``given``] in ``unit``; offset units (degC) read as differences when ``difference``."""
    scale, offset = _affine(given.strip(), unit.strip(), bool(difference))
    return float(number) * scale + offset


class Converted(float):
    """A value :class:`Quantity` has converted (pyomo.common.config passes a stored value through the domain again)."""


class ConvertedPoints(list):
    """A program :class:`Points` has converted."""


class Quantity:
    """Config domain: a value with its unit, returned as a float in ``unit``.

    Parameters
    ----------
    unit : str
        The unit the value is returned in (pint text: ``"mL"``, ``"cm^2*h*torr/g"``, ``"degC"``).
    positive, non_negative : bool
        Sign required.
    difference : bool
        A temperature difference or rate: ``degC`` given means a difference of degrees
        (``margin: 2 degC`` is 2 K), not a temperature.
    bare : bool
        Accept a number without a unit, read in ``unit`` (counts such as the number of vials).
    """

    def __init__(self, unit: str, *, positive=False, non_negative=False, difference=False, bare=False):
        self.unit, self.positive, self.non_negative = unit, positive, non_negative
        self.difference, self.bare = difference, bare

    def domain_name(self) -> str:  # shown by pyomo.common.config in its documentation and errors
        return f"Quantity[{self.unit}]"

    def __call__(self, value) -> float:
        if isinstance(value, Converted):
            return value
        if is_number(value) and self.bare:
            number, given = float(value), self.unit
        elif is_number(value):
            raise ValueError(f"{value} has no unit; write it with its unit, e.g. '{value} {self.unit}'")
        else:
            number, given = split_quantity(value)
            if not given and self.unit in ("", "dimensionless"):
                given = "dimensionless"
            elif not given:
                raise ValueError(f"{value!r} has no unit; write it with its unit, e.g. '{number:g} {self.unit}'")
        out = to_unit(number, given, self.unit, difference=self.difference)
        problem = sign_problem(out, positive=self.positive, non_negative=self.non_negative)
        if problem:
            raise ValueError(f"{problem}, got {value!r}")
        return Converted(out)


class Number:
    """Config domain: a finite real number (a count, a ratio, a time in the recipe's declared time unit)."""

    def __init__(self, *, positive=False, non_negative=False):
        self.positive, self.non_negative = positive, non_negative

    def domain_name(self) -> str:
        return "Number"

    def __call__(self, value) -> float:
        if not is_number(value):
            raise ValueError(f"{value!r} is not a finite number")
        problem = sign_problem(value, positive=self.positive, non_negative=self.non_negative)
        if problem:
            raise ValueError(f"{problem}, got {value!r}")
        return float(value)


class Choice:
    """Config domain: one of named options, the error listing each with what it means.

    Parameters
    ----------
    options : dict
        Option -> what it means, in words.
    """

    def __init__(self, options: dict):
        self.options = dict(options)

    def domain_name(self) -> str:
        return f"Choice[{', '.join(self.options)}]"

    def __call__(self, value) -> str:
        if isinstance(value, str) and value in self.options:
            return value
        listed = "; ".join(f"{k} ({v})" for k, v in self.options.items())
        raise ValueError(f"{value!r} is not one of the options; use {listed}")


class Points:
    """Config domain: a program ``{unit: U, points: [[time, value], ...]}``, returned as ``[[t, v], ...]`` in ``unit``.

    Times are in the recipe's time unit and must not decrease (a repeated time is a step). Values
    are converted from the table's ``unit`` to ``unit``.
    """

    def __init__(self, unit: str, *, positive=False, non_negative=False):
        self.unit, self.positive, self.non_negative = unit, positive, non_negative

    def domain_name(self) -> str:
        return f"Points[{self.unit}]"

    def __call__(self, value) -> list:
        if isinstance(value, ConvertedPoints):
            return value
        example = f"{{unit: {self.unit}, points: [[0, v0], [t1, v1], ...]}}"
        if not isinstance(value, dict) or set(value) != {"unit", "points"}:
            raise ValueError(f"expected {example}, got {value!r}")
        unit = value["unit"]
        if not isinstance(unit, str):
            raise ValueError(f"unit {unit!r} must be a unit text such as {self.unit!r}")  # noqa: TRY004 (config domains raise ValueError)
        points = value["points"]
        if not isinstance(points, list) or not points:
            raise ValueError(f"points: expected a non-empty list of [time, value] pairs, got {points!r}")
        out = []
        for k, pair in enumerate(points):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(is_number(x) for x in pair):
                raise ValueError(f"points[{k}]: expected [time, value] (two finite numbers), got {pair!r}")
            if out and pair[0] < out[-1][0]:
                raise ValueError(f"points[{k}]: time {pair[0]:g} is before the previous {out[-1][0]:g}; sort the times")
            v = to_unit(float(pair[1]), unit, self.unit)
            if self.positive and not v > 0:
                raise ValueError(f"points[{k}]: value {pair[1]} {unit} must be positive")
            if self.non_negative and v < 0:
                raise ValueError(f"points[{k}]: value {pair[1]} {unit} is negative")
            out.append([float(pair[0]), v])
        return ConvertedPoints(out)


def points_in(table: dict, unit: str) -> list:
    """The ``[[t, v], ...]`` of a program table (``{unit, points}``) with the values in ``unit``."""
    return list(Points(unit)(table))


def quantity_in(value, unit: str, **kw) -> float:
    """A quantity (``"2 mL"`` or ``{value, unit}``) as a float in ``unit``."""
    return float(Quantity(unit, **kw)(value))


def validate(config: ConfigDict, raw: dict, where: str):
    """``config(raw)``, a rejected value raised as a :class:`ScenarioError` naming ``where`` and the key.

    A key written without a value (``boluses:`` in YAML, read as null) means an empty block or list
    where the key holds one; for a quantity it is an error (pyomo.common.config would keep the default).
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected a mapping, got {raw!r}")
    raw = _without_empty(config, raw, where, "")
    try:
        return config(raw)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {_readable(config, config_error_text(exc))}") from None


def _without_empty(config, raw: dict, where: str, path: str) -> dict:
    out = {}
    for key, value in raw.items():
        item = config.get(key) if key in config else None
        label = f"{path}{key}"
        if value is None:
            if item is None:
                out[key] = value  # an unknown key: the schema names it
            elif isinstance(item, ConfigDict) or getattr(item, "_domain", None) in (list, dict):
                continue  # an empty block or list
            else:
                raise ScenarioError(f"{where}: {label}: no value given; write it (with its unit) or delete the key")
        elif isinstance(value, dict) and isinstance(item, ConfigDict):
            out[key] = _without_empty(item, value, where, f"{label}.")
        else:
            out[key] = value
    return out


def _readable(config: ConfigDict, text: str) -> str:
    """pyomo.common.config's message without the domain's class name, unknown keys with the allowed ones."""
    text = re.sub(r"Failed casting .*? Error: ", "", text)
    text = re.sub(r"^invalid value for configuration '([^']+)': ", r"\1: ", text)
    unknown = re.match(r"key '(.+?)' not defined for ConfigDict '(.*?)'", text)
    if unknown:
        key, block = unknown.groups()
        found = config
        for part in block.split(".") if block else []:
            found = found.get(part) if isinstance(found, ConfigDict) and part in found else None
        allowed = sorted(found.keys()) if isinstance(found, ConfigDict) else []
        where = f"{block}: " if block else ""
        return f"{where}unknown key {key!r}; allowed: {', '.join(allowed)}"
    return text


def modernize(raw: dict, spellings: dict, where: str) -> dict:
    """A copy of ``raw`` with old spellings (unit in the key) rewritten; warns once with the new spellings.

    Parameters
    ----------
    raw : dict
        The recipe as read (not modified).
    spellings : dict
        ``{"path.old_key": ("new_key", "unit")}``, the path in the new spelling (``"vial.fill_mL"``,
        ``"optimize.constraints.T_bottom_max_C"``; items of a list share the list's path:
        ``"boluses.volume_L"``); an optional third item ``{key: value}`` adds keys the old reader
        defaulted when the mapping lacks them (``"continuous_feed.rate": ("points", "", {"unit": "L/h"})``). A list of ``[time, value]`` pairs becomes a program ``{unit,
        points}``; a number becomes ``"value unit"``, a list of numbers a list of those; with unit ``""``
        only the key is renamed.
    where : str
        The recipe's origin, for the warning and errors.
    """
    out = copy.deepcopy(raw)
    notes = []

    def rewrite(mapping, path):
        for key in list(mapping):
            spelled = spellings.get(f"{path}.{key}" if path else key)
            if spelled is None:
                continue
            new, unit, *default = spelled
            if new == key and not is_number(mapping[key]):
                continue  # the key is unchanged and its value already carries its unit
            if new != key and new in mapping:
                raise ScenarioError(f"{where}: {path + '.' if path else ''}{key} and {new} both given; keep {new}")
            value = mapping.pop(key)
            if unit and isinstance(value, list) and value and all(isinstance(p, (list, tuple)) for p in value):
                mapping[new] = {"unit": unit, "points": value}
                notes.append(f"{key}: [[t, v], ...] -> {new}: {{unit: {unit}, points: [[t, v], ...]}}")
            elif unit and is_number(value):
                mapping[new] = f"{value} {unit}"
                notes.append(f"{key}: {value} -> {new}: {mapping[new]}")
            elif unit and isinstance(value, list) and value and all(is_number(v) for v in value):
                mapping[new] = [f"{v} {unit}" for v in value]
                notes.append(f"{key}: {value} -> {new}: [{', '.join(mapping[new])}]")
            else:
                mapping[new] = value
                notes.append(f"{key} -> {new}")
            for name, old_default in (default[0] if default else {}).items():
                if name not in mapping:  # the old reader's default, now written out
                    mapping[name] = old_default
                    notes.append(f"{name}: {old_default} (the old default, now required)")
        for key, value in mapping.items():
            inner = f"{path}.{key}" if path else key
            if isinstance(value, dict):
                rewrite(value, inner)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        rewrite(item, inner)

    rewrite(out, "")
    if notes:
        warnings.warn(
            RecipeSpellingWarning(f"{where}: old spelling read; the new one is " + "; ".join(notes)),
            stacklevel=3,
        )
    return out
