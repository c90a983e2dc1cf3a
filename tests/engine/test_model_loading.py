"""Model folders: loading by name and path, parameters.yaml validation, the build contract."""

import shutil
import textwrap

import pandas as pd
import pytest

import biotwin
from biotwin.core.errors import ModelDefinitionError
from biotwin.core.parameters import ParameterSet


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_load_by_path_anywhere_on_disk(monod_folder, tmp_path):
    copy = tmp_path / "my_process"
    shutil.copytree(monod_folder, copy)
    model = biotwin.load_model(copy)
    assert model.name == "my_process" and model.time_unit == "h"
    result = model.simulate(nfe=20)
    assert result.wide["V"].iloc[-1] == pytest.approx(1.0 + 0.02 * 12)


def test_parameters_table(monod_folder):
    table = biotwin.load_model(monod_folder).parameters
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["label", "value", "unit", "lower", "upper", "source", "note"]
    assert table.loc["mu_max", "unit"] == "1/h" and table.loc["mu_max", "upper"] == 2.0
    assert pd.isna(table.loc["Sf", "lower"])


def test_unknown_model_name_lists_shipped_models():
    with pytest.raises(ModelDefinitionError, match="no model named or at 'no_such_model'"):
        biotwin.load_model("no_such_model")


def test_folder_without_model_py(tmp_path):
    with pytest.raises(ModelDefinitionError, match="not a model folder"):
        biotwin.load_model(tmp_path)


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("mu: {value: 0.1, unit: 1/h, source: x, colour: red}", r"parameter 'mu': unknown key\(s\) \['colour'\]"),
        ("mu: {value: 0.1, source: x}", r"parameter 'mu': missing key\(s\) \['unit'\]"),
        ("mu: {value: .nan, unit: 1/h, source: x}", "parameter 'mu', key 'value': value must be finite"),
        ("mu: {value: abc, unit: 1/h, source: x}", "parameter 'mu', key 'value': expected a number"),
        ("mu: {value: 0.1, unit: furlongs_per_parsec, source: x}", "parameter 'mu', key 'unit'"),
        ("mu: {value: 0.1, unit: 1e6/mL, source: x}", "numeric factor"),
        ("mu: {value: 0.1, unit: degC, source: x}", "offset"),
        ("mu: {value: 0.1, unit: 1/h, bounds: [1, 0.5], source: x}", "must be below"),
        ("mu: {value: 3, unit: 1/h, bounds: [0, 1], source: x}", "outside its bounds"),
        ("mu: {value: 3, unit: 1/h, bounds: [0], source: x}", r"expected \[low, high\]"),
        ("mu: {value: 3, unit: 1/h, source: ''}", "give the reference"),
        ("mu: {value: 3, unit: 1/h, source: x, label: [growth]}", "key 'label': expected the parameter in words"),
        ("mu: [1, 2]", "expected a mapping"),
        ("mu: {value: 1, unit: 1/h, source: x\n", "not valid YAML"),
    ],
)
def test_malformed_parameters_yaml(tmp_path, yaml_text, message):
    path = write(tmp_path / "parameters.yaml", yaml_text + "\n")
    with pytest.raises(ModelDefinitionError, match=message) as info:
        ParameterSet.from_yaml(path)
    assert str(path) in str(info.value), "the error must name the file"


def test_a_parameter_slider_says_in_words_what_it_moves():
    """Issue #19: an explorer's parameter slider reads "cake resistance growth with cake length (A1) [unit]",
    its tooltip the symbol, unit and source; the parameter table carries the label beside the symbol."""
    from biotwin.engine.knobs import explorer_spec

    model = biotwin.load_model("lyophilization")
    knob = next(k for k in explorer_spec(model).knobs if k.name == "A1")
    assert knob.description == "cake resistance growth with cake length (A1) [cm*h*torr/g]"
    assert knob.help.startswith("A1 [cm*h*torr/g], parameters.yaml: LyoPRONTO")
    assert model.parameters.loc["A1", "label"] == "cake resistance growth with cake length"
    for name in ("mab_fedbatch", "hek293_vlp", "lyophilization"):  # every parameter an explorer shows has words
        assert all(k.label != k.name for k in explorer_spec(biotwin.load_model(name)).knobs), name


def test_model_py_contract_errors(monod_folder, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(monod_folder, copy)
    # a parameter in parameters.yaml that the model does not declare
    text = (copy / "parameters.yaml").read_text()
    (copy / "parameters.yaml").write_text(text + "kLa: {value: 10, unit: 1/h, source: test}\n")
    with pytest.raises(ModelDefinitionError, match="parameter 'kLa'.*must be a scalar Var m.kLa"):
        biotwin.load_model(copy).build({"t_end": 20})
    # a unit that disagrees with model.py
    (copy / "parameters.yaml").write_text(text.replace("unit: 1/h", "unit: g/L"))
    with pytest.raises(ModelDefinitionError, match="parameter 'mu_max' has unit 'g/L'.*'1/h' in model.py"):
        biotwin.load_model(copy).build({"t_end": 20})
    # model.py without TIME_UNIT
    (copy / "parameters.yaml").write_text(text)
    source = (copy / "model.py").read_text()
    (copy / "model.py").write_text(source.replace('TIME_UNIT = "h"', 'TIME = "h"'))
    with pytest.raises(ModelDefinitionError, match="must define TIME_UNIT"):
        biotwin.load_model(copy)
    (copy / "model.py").write_text(source + "\nraise RuntimeError('boom')\n")
    with pytest.raises(ModelDefinitionError, match="failed to import: RuntimeError: boom"):
        biotwin.load_model(copy)


def test_non_square_model_is_reported(monod_folder, tmp_path):
    copy = tmp_path / "no_init"
    shutil.copytree(monod_folder, copy)
    source = (copy / "model.py").read_text()
    (copy / "model.py").write_text(source.replace("    m.V_init = pyo.Constraint(expr=m.V[t0] == m.V0)\n", ""))
    with pytest.raises(ModelDefinitionError, match="not square"):
        biotwin.load_model(copy).simulate(nfe=10)


def test_shipped_models_load_and_have_cards():
    names = biotwin.available_models()
    assert names, "at least one model ships with the package"
    for name in names:
        model = biotwin.load_model(name)
        assert (model.folder / "README.md").is_file(), f"{name} needs a model card"
        for p in model.parameter_set:
            assert p.source


def test_shipped_name_wins_over_an_unrelated_folder(tmp_path, monkeypatch):
    (tmp_path / "mab_fedbatch").mkdir()  # e.g. notebooks/mab_fedbatch next to a notebook
    monkeypatch.chdir(tmp_path)
    assert biotwin.load_model("mab_fedbatch").folder.name == "mab_fedbatch"
    assert (biotwin.load_model("mab_fedbatch").folder / "model.py").is_file()
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(ModelDefinitionError, match="not a model folder"):
        biotwin.load_model("not_a_model")


def test_default_values_are_cached_per_file_version(tmp_path):
    import os

    from biotwin.core.errors import ModelDefinitionError
    from biotwin.core.parameters import default_values

    path = tmp_path / "parameters.yaml"
    path.write_text('k: {value: 0.5, unit: 1/h, bounds: [0.1, 1.0], source: "test"}\n')
    first = default_values(path)
    assert first == {"k": 0.5}
    first["k"] = 99.0  # callers get a copy
    assert default_values(path) == {"k": 0.5}
    path.write_text('k: {value: 0.7, unit: 1/h, bounds: [0.1, 1.0], source: "test"}\n')
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new version of the file
    assert default_values(path) == {"k": 0.7}
    with pytest.raises(ModelDefinitionError, match="file not found"):
        default_values(tmp_path / "missing.yaml")
