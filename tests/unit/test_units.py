import pyomo.environ as pyo
import pytest

from biotwin.core.units import convert_value, parse_unit, same_unit


@pytest.mark.parametrize("text", ["1/h", "g/L", "cm^2*h*torr/g", "dimensionless", "mM", "cal/s/K/cm^2", "L/h"])
def test_parse(text):
    parse_unit(text)


def test_conversions():
    assert convert_value(1.0, parse_unit("1/d"), parse_unit("1/h")) == pytest.approx(1 / 24)
    assert convert_value(150.0, parse_unit("mtorr"), parse_unit("torr")) == pytest.approx(0.15)
    assert same_unit(parse_unit("g/L"), pyo.units.g / pyo.units.L)
    assert not same_unit(parse_unit("g/L"), parse_unit("mg/L"))


@pytest.mark.parametrize(
    "text, message", [("", "non-empty"), ("blorp", "not a unit"), ("1e6/mL", "numeric factor"), ("degC", "offset")]
)
def test_bad_units(text, message):
    with pytest.raises(ValueError, match=message):
        parse_unit(text, "somewhere")
