"""The model-folder contract (README, "The model-folder contract") is all a user needs, and a
malformed folder is refused with the file and the fix."""

import math
import shutil

import pytest

import biotwin
from biotwin.core.errors import ModelDefinitionError
from biotwin.tools import cli

DECAY_MODEL = """import pyomo.environ as pyo

from biotwin.core.dae import derivative, time_set

TIME_UNIT = "h"


def build(settings=None):
    u = pyo.units
    m = pyo.ConcreteModel()
    m.t = time_set(settings, 10.0)
    m.k = pyo.Var(units=1 / u.h)
    m.X0 = pyo.Var(units=u.g / u.L)
    m.X = pyo.Var(m.t, initialize=1.0, units=u.g / u.L)
    m.dX = derivative(m.X, m.t, TIME_UNIT)
    m.decay = pyo.Constraint(m.t, rule=lambda m, t: m.dX[t] == -m.k * m.X[t])
    m.init = pyo.Constraint(expr=m.X[0] == m.X0)
    return m
"""
PARAMETERS = """k: {value: 0.2, unit: 1/h, bounds: [0.001, 10], source: a guess}
X0: {value: 1.0, unit: g/L, bounds: [0.01, 100], source: inoculum}
"""


@pytest.fixture
def decay(tmp_path):
    folder = tmp_path / "decay"
    folder.mkdir()
    (folder / "model.py").write_text(DECAY_MODEL)
    (folder / "parameters.yaml").write_text(PARAMETERS)
    return folder


def test_contract_only_folder_calibrates_through_the_cli(decay, tmp_path, capsys):
    # X = 2 exp(-0.35 t): the analytic solution, measured without noise at 7 times
    rows = ["time,X,X_sigma"] + [f"{t},{2.0 * math.exp(-0.35 * t):.8f},0.02" for t in (0, 1, 2, 4, 6, 8, 10)]
    data = tmp_path / "decay.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "fit.json"
    status = cli.main(
        ["calibrate", str(decay), "--data", str(data), "--estimate", "k,X0", "--scenario", "default", "--out", str(out)]
    )
    assert status == 0, capsys.readouterr().err
    fit = biotwin.CalibrationResult.load(out)
    assert fit.parameters["k"]["value"] == pytest.approx(0.35, rel=1e-4)
    assert fit.parameters["X0"]["value"] == pytest.approx(2.0, rel=1e-4)
    assert fit.parameters["k"]["identifiable"] and fit.parameters["k"]["std_error"] > 0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: (f / "model.py").write_text(DECAY_MODEL.replace('TIME_UNIT = "h"\n', "")), "must define TIME_UNIT"),
        (
            lambda f: (f / "parameters.yaml").write_text(PARAMETERS.replace("unit: 1/h", "unit: g/L")),
            "parameter 'k' has unit 'g/L' in parameters.yaml but '1/h' in model.py",
        ),
        (
            lambda f: (f / "model.py").write_text(DECAY_MODEL + "\n\ndef summary(result, target):\n    return {}\n"),
            r"biotwin calls it as summary\(result\)",
        ),
        (
            lambda f: (f / "model.py").write_text(DECAY_MODEL + "\n\ndef optimize():\n    return None\n"),
            r"biotwin calls it as optimize\(model, scenario\)",
        ),
        (lambda f: (f / "model.py").write_text(DECAY_MODEL + "\nEXPLORER = ['k']\n"), "EXPLORER .* must be a dict"),
        (
            lambda f: (f / "model.py").write_text(DECAY_MODEL + "\nSIGNED_STATES = 'X'\n"),
            "must be a list of state names",
        ),
    ],
)
def test_malformed_folder_names_the_file_and_the_fix(decay, change, message):
    change(decay)
    with pytest.raises(ModelDefinitionError, match=message) as err:
        biotwin.load_model(decay).build({"t_end": 5.0})
    assert str(decay) in str(err.value)


def test_unknown_hook_name_is_refused(decay):
    with pytest.raises(ModelDefinitionError, match="unknown hook 'sumary'"):
        biotwin.load_model(decay).hook("sumary")


def test_copied_shipped_model_keeps_its_hooks(tmp_path):
    copy = tmp_path / "lyo"
    shutil.copytree(biotwin.load_model("lyophilization").folder, copy)
    model = biotwin.load_model(copy)
    assert model.hook("summary") is not None and model.hook("EXPLORER")["knobs"]
