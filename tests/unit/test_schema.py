"""The recipe validation layer (biotwin.core.schema): values with units, programs, old spellings."""

import copy
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyomo.common.config import ConfigDict, ConfigValue

from biotwin.core.errors import ScenarioError
from biotwin.core.schema import (
    Points,
    Quantity,
    RecipeSpellingWarning,
    modernize,
    points_in,
    quantity_in,
    split_quantity,
    validate,
)


@pytest.mark.parametrize(
    "text, unit, expected",
    [
        ("3.8 cm^2", "cm^2", 3.8),
        ("380 mm^2", "cm^2", 3.8),
        ({"value": 2, "unit": "mL"}, "mL", 2.0),
        ("0.002 L", "mL", 2.0),
        ("-35 degC", "degC", -35.0),
        ("238.15 K", "degC", -35.0),  # an absolute temperature in kelvin, converted with the offset
        ("1.4 cm^2*h*torr/g", "cm^2*h*mtorr/g", 1400.0),
        ("150 mtorr", "torr", 0.15),
        ("150 mTorr", "mtorr", 150.0),  # as a dryer's gauge writes it
        ("1.4 cm^2*h*Torr/g", "cm^2*h*torr/g", 1.4),
        ("20 Pa", "mtorr", 20 * 760 / 101325 * 1000),  # 1 torr = 101325/760 Pa
        ("2 d", "h", 48.0),
        ("5 mM", "mmol/L", 5.0),
        ("0.3 Mcell/mL", "cell/mL", 3e5),
        (".5e-3 kg/h", "g/h", 0.5),
    ],
)
def test_a_value_with_its_unit_is_converted(text, unit, expected):
    assert quantity_in(text, unit) == pytest.approx(expected, rel=1e-12)


def test_a_temperature_difference_is_not_a_temperature():
    # a margin of 2 degC is 2 K, a ramp of 1 degC/min is 60 K/h; as a temperature, 2 degC is 275.15 K
    assert quantity_in("2 degC", "K", difference=True) == pytest.approx(2.0)
    assert quantity_in("1 degC/min", "K/h", difference=True) == pytest.approx(60.0)
    assert quantity_in("2 degC", "K") == pytest.approx(275.15)


@pytest.mark.parametrize(
    "value, message",
    [
        (3.8, r"3.8 has no unit; write it with its unit, e.g. '3.8 cm\^2'"),
        ("3.8 mL", "'mL' is not a unit of the same kind as 'cm"),
        ("3.8 furlongs^2 per fortnight", "is not a unit"),
        ("nan cm^2", "is not a number followed by its unit"),
        ("cm^2", "is not a number followed by its unit"),
        ({"value": 3.8}, r"expected \{value: ..., unit: ...\}"),
        ({"value": float("inf"), "unit": "cm^2"}, "is not a finite number"),
        ([3.8, "cm^2"], "has no unit"),
        (True, "has no unit"),
    ],
)
def test_a_quantity_without_its_unit_or_in_another_kind_is_refused(value, message):
    with pytest.raises(ValueError, match=message):
        Quantity("cm^2")(value)


def test_signs_and_counts():
    with pytest.raises(ValueError, match="must be positive"):
        Quantity("mL", positive=True)("0 mL")
    with pytest.raises(ValueError, match="must not be negative"):
        Quantity("mL", non_negative=True)("-1 mL")
    assert Quantity("", bare=True)(398) == 398.0  # a count needs no unit


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.sampled_from(["mL", "L", "uL", "m^3"]))
def test_writing_a_value_and_reading_it_back_is_exact(number, unit):
    # split_quantity reads what a user writes: "<number> <unit>" with Python's float text
    parsed, text_unit = split_quantity(f"{number!r} {unit}")
    assert parsed == number and text_unit == unit
    back = quantity_in(f"{quantity_in(f'{number!r} {unit}', 'mL')!r} mL", unit)
    assert math.isclose(back, number, rel_tol=1e-12, abs_tol=1e-300)


def test_a_program_has_a_unit_and_sorted_times():
    points = points_in({"unit": "K", "points": [[0, 238.15], [1, 293.15]]}, "degC")
    assert [t for t, _ in points] == [0.0, 1.0] and [v for _, v in points] == pytest.approx([-35.0, 20.0])
    with pytest.raises(ValueError, match=r"points\[1\]: time 0 is before the previous 1; sort the times"):
        Points("degC")({"unit": "degC", "points": [[1, 0], [0, 0]]})
    with pytest.raises(ValueError, match=r"expected \{unit: degC, points"):
        Points("degC")([[0, -35], [1, 20]])
    with pytest.raises(ValueError, match=r"points\[0\]: expected \[time, value\]"):
        Points("degC")({"unit": "degC", "points": [[0, float("nan")]]})
    with pytest.raises(ValueError, match="must be positive"):
        Points("mtorr", positive=True)({"unit": "mtorr", "points": [[0, 0]]})


def _config():
    c = ConfigDict()
    vial = c.declare("vial", ConfigDict())
    vial.declare("Vfill", ConfigValue(domain=Quantity("mL", positive=True), default=None))
    vial.declare("margin", ConfigValue(domain=Quantity("K", difference=True), default="0 K"))
    return c


def test_validate_names_the_file_the_key_and_the_allowed_keys():
    cfg = validate(_config(), {"vial": {"Vfill": "2 mL"}}, "r.yaml")
    assert cfg.vial.Vfill == 2.0 and cfg.vial.margin == 0.0  # a default with its unit
    with pytest.raises(ScenarioError, match=r"^r.yaml: vial: unknown key 'fill'; allowed: Vfill, margin$"):
        validate(_config(), {"vial": {"fill": "2 mL"}}, "r.yaml")
    with pytest.raises(ScenarioError, match=r"^r.yaml: vial.Vfill: 2 has no unit; write it with its unit, e.g. '2 mL'"):
        validate(_config(), {"vial": {"Vfill": 2}}, "r.yaml")


SPELLINGS = {
    "vial.fill_mL": ("Vfill", "mL"),
    "shelf_temperature_C": ("shelf_temperature", "degC"),
    "boluses.volume_L": ("volume", "L"),
    "optimize.shelf_temperature_C": ("shelf_temperature", ""),
    "optimize.shelf_temperature.min": ("min", "degC"),
}


def test_old_spellings_are_rewritten_on_a_copy_with_one_note():
    raw = {
        "vial": {"fill_mL": 2.0},
        "shelf_temperature_C": [[0, -35], [1, 20]],
        "boluses": [{"time": 3, "volume_L": 0.03}],
        "optimize": {"shelf_temperature_C": {"min": -40, "max": "40 degC"}},
    }
    before = copy.deepcopy(raw)
    with pytest.warns(RecipeSpellingWarning) as notes:
        new = modernize(raw, SPELLINGS, "old.yaml")
    assert raw == before  # the input is not modified
    assert len(notes) == 1 and "fill_mL: 2.0 -> Vfill: 2.0 mL" in str(notes[0].message)
    assert new == {
        "vial": {"Vfill": "2.0 mL"},
        "shelf_temperature": {"unit": "degC", "points": [[0, -35], [1, 20]]},
        "boluses": [{"time": 3, "volume": "0.03 L"}],
        "optimize": {"shelf_temperature": {"min": "-40 degC", "max": "40 degC"}},
    }


def test_a_recipe_in_the_new_spelling_reads_without_a_note(recwarn):
    raw = {"vial": {"Vfill": "2 mL"}, "optimize": {"shelf_temperature": {"min": "-40 degC"}}}
    assert modernize(raw, SPELLINGS, "new.yaml") == raw
    assert not [w for w in recwarn if issubclass(w.category, RecipeSpellingWarning)]


def test_both_spellings_of_one_key_is_an_error():
    with pytest.raises(ScenarioError, match="old.yaml: vial.fill_mL and Vfill both given; keep Vfill"):
        modernize({"vial": {"fill_mL": 2, "Vfill": "2 mL"}}, SPELLINGS, "old.yaml")


@pytest.mark.parametrize("name", ["lyophilization", "mab_fedbatch", "hek293_vlp", "aav_triple_transfection"])
def test_every_shipped_recipe_is_in_the_new_spelling_and_reads_to_plain_numbers(name, recwarn):
    import warnings

    import yaml

    import biotwin

    model = biotwin.load_model(name)
    folders = [model.folder / "scenarios", model.folder / "data"]
    paths = [p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.yaml"))]
    assert paths
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecipeSpellingWarning)  # a shipped recipe in the old spelling fails here
        for path in paths:
            sc = model.load_scenario(path)
            values = list(sc.parameters.values()) + [v for p in sc.inputs.values() for pt in p["points"] for v in pt]
            assert all(type(v) in (float, int) for v in values), path  # no domain's float subclass leaks out
            yaml.safe_dump({"parameters": sc.parameters, "inputs": sc.inputs})


def test_a_temperature_difference_in_any_spelling_and_units_pint_cannot_read():
    for text in ("2 degC", "2 celsius", "2 degree_Celsius", "3.6 degF", "2 K"):
        assert quantity_in(text, "K", difference=True) == pytest.approx(2.0), text
    assert quantity_in("0.46 /torr", "1/torr") == pytest.approx(0.46)
    with pytest.raises(ValueError, match="is not a unit pint understands"):
        quantity_in("2 \u2103", "K")  # the one-character degree Celsius sign
    with pytest.raises(ValueError, match="'2' has no unit; write it with its unit, e.g. '2 h'"):
        quantity_in("2", "h")


def test_a_key_without_a_value_is_an_empty_list_or_block_and_an_error_for_a_quantity():
    c = _config()
    c.declare("boluses", ConfigValue(domain=list, default=[]))
    assert validate(c, {"boluses": None, "vial": None}, "r.yaml").boluses == []
    with pytest.raises(ScenarioError, match="r.yaml: vial.Vfill: no value given; write it"):
        validate(c, {"vial": {"Vfill": None}}, "r.yaml")


def test_an_unknown_key_in_a_nested_block_lists_that_blocks_keys():
    c = ConfigDict()
    c.declare("optimize", ConfigDict()).declare("constraints", ConfigDict()).declare("margin", ConfigValue())
    with pytest.raises(ScenarioError, match="optimize.constraints: unknown key 'gap'; allowed: margin$"):
        validate(c, {"optimize": {"constraints": {"gap": 1}}}, "r.yaml")


def test_an_old_default_is_written_out_when_the_key_is_renamed():
    spellings = {"continuous_feed.rate": ("points", "", {"unit": "L/h"})}
    with pytest.warns(RecipeSpellingWarning, match="unit: L/h"):
        new = modernize({"continuous_feed": {"rate": [[0, 0.001]]}}, spellings, "old.yaml")
    assert new == {"continuous_feed": {"points": [[0, 0.001]], "unit": "L/h"}}
    with pytest.warns(RecipeSpellingWarning):
        kept = modernize({"continuous_feed": {"rate": [[0, 0.03]], "unit": "L/d"}}, spellings, "old.yaml")
    assert kept["continuous_feed"]["unit"] == "L/d"
