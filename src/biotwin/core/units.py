"""Unit strings from YAML and CSV files to Pyomo units, and conversions.

Unit strings are parsed by pint (the registry Pyomo's units use), e.g. ``"1/h"``,
``"g/L"``, ``"cm^2*h*torr/g"``, ``"dimensionless"``. A unit string may not carry
a numeric factor (``"1e6/mL"``): Pyomo units cannot hold one, so it would be
silently lost. Offset units (``degC``) are rejected by Pyomo for the same reason.
"""

from __future__ import annotations

import math

import pyomo.environ as pyo
from pyomo.core.base.units_container import UnitsError

units = pyo.units

#: Units biotwin adds to Pyomo's pint registry. Cell counts get their own dimension so that
#: yields [cell/mmol] and specific rates [mmol/cell/h] are checked, and "Mcell/mL"
#: (1e6 cells/mL, the usual viable-cell-density unit) converts exactly. Virus and virus-like
#: particles ("vp", as in vp/mL titers) likewise: "Gvp/mL" is 1e9 particles per mL.
#: "Torr" as written on freeze-dryer gauges and in LyoPRONTO (pint knows only lower-case "torr"), so that
#: "mTorr" and "cm^2*h*Torr/g" read as they are written.
EXTRA_DEFINITIONS = ["cell = [cell_count]", "vp = [particle_count]", "Torr = torr"]


def _add_definitions():
    registry = units.pint_registry
    missing = [d for d in EXTRA_DEFINITIONS if d.split("=")[0].strip() not in registry]
    if missing:
        units.load_definitions_from_strings(missing)


_add_definitions()


def parse_unit(text: str, where: str = "unit"):
    """Parse a unit string into a Pyomo unit expression.

    Parameters
    ----------
    text : str
        Unit string understood by pint, e.g. ``"1/h"``.
    where : str
        Description of where the string came from, used in error messages.

    Returns
    -------
    pyomo unit expression

    Raises
    ------
    ValueError
        If the string is not a unit, carries a numeric factor or is an offset unit.
    """
    import pint

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: a unit must be a non-empty string, got {text!r}")
    registry = units.pint_registry
    try:
        quantity = registry.parse_expression(text)
    except (
        pint.errors.UndefinedUnitError,
        pint.errors.DefinitionSyntaxError,
        SyntaxError,
        TypeError,
        AttributeError,
    ) as exc:
        raise ValueError(f"{where}: {text!r} is not a unit pint understands ({exc})") from None
    magnitude = getattr(quantity, "magnitude", quantity)
    if not isinstance(magnitude, (int, float)) or not math.isclose(magnitude, 1.0):
        raise ValueError(
            f"{where}: unit {text!r} carries the numeric factor {magnitude!r}; "
            "Pyomo units cannot hold factors, define the quantity in a plain unit instead"
        )
    result = None
    for name, exponent in dict(getattr(quantity, "_units", {})).items():
        try:
            factor = getattr(units, name) if exponent == 1 else getattr(units, name) ** exponent
        except UnitsError as exc:
            raise ValueError(f"{where}: unit {text!r}: {exc}") from None
        result = factor if result is None else result * factor
    return units.dimensionless if result is None else result


def unit_string(unit) -> str:
    """Short text of a Pyomo unit expression (``'dimensionless'`` for none)."""
    if unit is None:
        return "dimensionless"
    try:
        unit = units.get_units(unit) or unit
    except Exception:  # not a unit expression Pyomo can reduce; print as is  # noqa: BLE001, S110
        pass
    text = str(unit)
    return "dimensionless" if text in ("", "dimensionless", "None") else text


def convert_value(value: float, from_unit, to_unit) -> float:
    """Convert a number between two Pyomo units (raises ``UnitsError`` if incompatible)."""
    if from_unit is None:
        from_unit = units.dimensionless
    if to_unit is None:
        to_unit = units.dimensionless
    return units.convert_value(value, from_units=from_unit, to_units=to_unit)


def conversion(example, to_units):
    """The constant that converts an expression in the units of ``example`` to ``to_units``
    [``to_units`` / units of ``example``].

    ``conversion(m.dHs * m.sublimation_rate[t0], u.cal / u.s) * m.dHs * m.sublimation_rate[t]`` is what
    ``pyo.units.convert(m.dHs * m.sublimation_rate[t], to_units=u.cal / u.s)`` gives, with the units read
    once instead of at every time point (Pyomo finds an expression's units by walking it; at every
    collocation point of the lyophilization model that was about a tenth of a cold simulation).
    Raises ``UnitsError`` if the units are of different kinds.
    """
    source = units.get_units(example)
    if source is None:
        source = units.dimensionless
    return convert_value(1.0, source, to_units) * to_units / source


def same_unit(a, b) -> bool:
    """True when two Pyomo units are identical (same dimension and scale)."""
    try:
        return math.isclose(convert_value(1.0, a, b), 1.0, rel_tol=1e-12)
    except UnitsError:
        return False
