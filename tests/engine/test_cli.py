"""The biotwin command line, run as a user would (a subprocess of the installed entry point)."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from support import ROOT, TEST_MODELS


def biotwin(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "biotwin", *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )


def test_doctor():
    done = biotwin("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    for word in ("Python", "Pyomo", "cyipopt", "Ipopt", "PyNumero ASL    loads", "tiny NLP        solved"):
        assert word in done.stdout


def test_setup_solver_is_idempotent():
    done = biotwin("setup-solver")
    assert done.returncode == 0, done.stderr
    assert "already built" in done.stdout and "loads" in done.stdout


def test_models_lists_shipped_models():
    done = biotwin("models")
    assert done.returncode == 0 and "mab_fedbatch" in done.stdout and "nominal_14d" in done.stdout


def test_simulate_writes_csv_and_summary(tmp_path):
    scenario = TEST_MODELS / "monod_switch" / "scenarios" / "default.yaml"
    out, summary = tmp_path / "run.csv", tmp_path / "summary.json"
    done = biotwin(
        "simulate",
        str(TEST_MODELS / "monod_switch"),
        "--scenario",
        str(scenario),
        "--out",
        str(out),
        "--summary",
        str(summary),
        "--nfe",
        "40",
        "--param",
        "mu_max=0.45",
    )
    assert done.returncode == 0, done.stderr
    assert "[biotwin] solving with Ipopt" in done.stderr, "progress is shown"
    table = pd.read_csv(out)
    assert list(table.columns) == ["time [h]", "X [g/l]", "S [g/l]", "V [l]", "F [l/h]", "mu [1/h]"]
    assert table["time [h]"].iloc[-1] == 20.0
    data = json.loads(summary.read_text())
    assert data["final"]["V"] == pytest.approx(1.24)
    assert data["stats"]["termination"] == "optimal"


def test_simulate_shipped_model_by_name_and_scenario_name(tmp_path):
    done = biotwin(
        "simulate", "mab_fedbatch", "--scenario", "xing2010_batch", "--out", str(tmp_path / "b.csv"), "--nfe", "30"
    )
    assert done.returncode == 0, done.stderr
    assert "Xv [Mcell/ml]" in pd.read_csv(tmp_path / "b.csv").columns


@pytest.mark.parametrize(
    "args, message",
    [
        (["--param", "mu_maxx=1"], "unknown parameter 'mu_maxx'"),
        (["--param", "mu_max"], "expected NAME=VALUE"),
        (["--param", "mu_max=fast"], "is not a number"),
        (["--t-end", "-3"], "t_end must be a positive number"),
    ],
)
def test_simulate_bad_input_exit_code_and_message(tmp_path, args, message):
    done = biotwin("simulate", str(TEST_MODELS / "monod_switch"), "--out", str(tmp_path / "x.csv"), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.csv").exists()


def test_unknown_model(tmp_path):
    done = biotwin("simulate", "no_such_model", "--out", str(tmp_path / "x.csv"))
    assert done.returncode == 2 and "no model named or at 'no_such_model'" in done.stderr


def test_calibrate_cli(tmp_path, shared_data):
    frame = pd.read_csv(shared_data / "estimation_benchmarks" / "cops_gasoil" / "data.csv").rename(
        columns={"t": "time"}
    )
    data = tmp_path / "gasoil.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "fit.json"
    args = (
        "calibrate",
        str(TEST_MODELS / "cops_gasoil"),
        "--data",
        str(data),
        "--scenario",
        "default",
        "--estimate",
        "theta1,theta2,theta3",
        "--nfe",
        "100",
        "--out",
        str(out),
    )
    done = biotwin(*args)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for key in ("objective", "status", "n_observations", "wall_time_s", "parameters"):
        assert key in result
    assert result["objective"] == pytest.approx(5.2366e-3, rel=1e-3)
    assert set(result["parameters"]["theta1"]) >= {"value", "std_error", "ci95_low", "ci95_high"}
    assert "[biotwin] solving the estimation problem" in done.stderr
    before = out.read_bytes()
    again = biotwin(*args)
    assert again.returncode == 2 and "not overwriting" in again.stderr
    assert out.read_bytes() == before


def test_calibrate_cli_bad_estimate(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("time,X\n1,0.2\n2,0.4\n3,0.8\n")
    done = biotwin(
        "calibrate",
        str(TEST_MODELS / "monod_switch"),
        "--data",
        str(data),
        "--scenario",
        "default",
        "--estimate",
        "mu_max,Kss",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert done.returncode == 2 and "cannot estimate 'Kss'" in done.stderr and "Traceback" not in done.stderr
    # without a recipe next to the file or --scenario, the model's default is not assumed
    done = biotwin(
        "calibrate",
        str(TEST_MODELS / "monod_switch"),
        "--data",
        str(data),
        "--estimate",
        "mu_max",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert done.returncode == 2 and "no recipe for this experiment" in done.stderr and "d.yaml" in done.stderr
    assert not (tmp_path / "r.json").exists()
