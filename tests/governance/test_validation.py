"""Validation protocols and reports on the Monod test model with synthetic runs of known truth."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import biotwin
from biotwin.governance import ProtocolError, Registry, read_protocol, validate, write_report
from support import TEST_MODELS

TRUE = {"mu_max": 0.5, "Ks": 0.2, "Yxs": 0.5}
SIGMA = {"X": 0.05, "S": 0.1}
RUNS = {"run1": (0.1, 10.0, 8.0, 0.02), "run2": (0.2, 8.0, 6.0, 0.03), "run3": (0.05, 12.0, 10.0, 0.01)}


@pytest.fixture(scope="module")
def model():
    return biotwin.load_model(TEST_MODELS / "monod_switch")


@pytest.fixture(scope="module")
def runs(model, tmp_path_factory):
    """Three synthetic runs (CSV + recipe) of the Monod model at the true parameters, noise of known sd."""
    folder = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(11)
    times = np.arange(1.0, 20.01, 1.0)
    for name, (x0, s0, ts, f) in RUNS.items():
        recipe = {"t_end": 20, "parameters": {"X0": x0, "S0": s0}, "inputs": {"F": [[0, 0], [ts, 0], [ts, f], [20, f]]}}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
        truth = model.simulate(recipe, params=TRUE, times=times, nfe=60).wide.set_index("time").loc[times]
        frame = pd.DataFrame({"time": times})
        for v, sd in SIGMA.items():
            frame[v] = truth[v].to_numpy() + rng.normal(0, sd, times.size)
            frame[f"{v}_sigma"] = sd
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def protocol(runs, **changes):
    base = {
        "intended_use": "Plan the feed start of the Monod test process (test of the validation machinery).",
        "tier": 2,
        "estimate": ["mu_max", "Ks", "Yxs"],
        "calibration": [str(runs / "run1.csv"), str(runs / "run2.csv")],
        "validation": [str(runs / "run3.csv")],
        "nfe": 40,
        "criteria": [
            {"metric": "rmse_sd", "variable": "X", "threshold": 2.0, "on": "validation"},
            {"metric": "coverage95", "variable": "S", "threshold": 0.8, "on": "validation"},
            {
                "metric": "max_abs_error",
                "variable": "X",
                "threshold": {"value": 0.3, "unit": "g/L"},
                "on": "validation",
            },
            {"metric": "condition_number", "threshold": 1.0e4, "on": "calibration"},
        ],
    }
    base.update(changes)
    return base


def test_a_valid_model_passes_and_the_report_holds_its_evidence(model, runs, tmp_path):
    """Data made by the model itself with the stated noise: the held-out run lies in its bands.

    Independent check of the prediction band: 95 % coverage of the held-out points by (prediction +-
    1.96 sd) must be near 0.95 for both variables (40 points; a band too narrow or too wide fails)."""
    registry = Registry(tmp_path / "registry.sqlite")
    record = validate(model, protocol(runs), registry=registry, user="tester")
    print(
        "\n" + "\n".join(f"{c['label']}: {c['value']:.4g} {'pass' if c['passed'] else 'FAIL'}" for c in record.criteria)
    )
    assert record.passed and record.supported_tier == 2
    preds = record.predictions
    inside = ((preds["data"] >= preds["lo95"]) & (preds["data"] <= preds["hi95"])).mean()
    assert 0.85 <= inside <= 1.0
    assert (preds["param_sd"] > 0).all() and (preds["sd"] > preds["param_sd"]).all()
    written = write_report(record, tmp_path / "report.html", tmp_path / "record.json")
    page = (tmp_path / "report.html").read_text()
    assert '<table id="criteria">' in page and "plotly" in page and page.count("class='pass'") == 4
    data = json.loads((tmp_path / "record.json").read_text())
    assert data["supported_tier"] == 2 and len(data["provenance"]["files"]) == 6  # 3 CSV + 3 recipes
    assert all(len(h) == 64 for h in written.values())
    # the validation is on record, and it is what lets a reviewer approve tier 2 (not 3)
    assert registry.events(kind="validation")[0]["payload"]["supported_tier"] == 2
    registry.approve(model, 2, "held-out run within its bands", user="reviewer")
    assert registry.status(model)["state"] == "approved"
    with pytest.raises(biotwin.governance.RegistryError, match="supports tier 3"):
        registry.approve(model, 3, "wishful", user="reviewer")


def test_a_failing_criterion_lowers_the_supported_tier(model, runs):
    """A threshold the model cannot meet (max error below the noise) fails, and the evidence supports tier 1
    only: the claimed tier 3 criteria are not all met."""
    criteria = [
        {"metric": "rmse_sd", "variable": "X", "threshold": 2.0, "on": "validation", "tier": 2},
        {
            "metric": "max_abs_error",
            "variable": "X",
            "threshold": {"value": 1.0, "unit": "mg/L"},
            "on": "validation",
            "tier": 3,
        },
    ]
    record = validate(model, protocol(runs, tier=3, criteria=criteria))
    assert [c["passed"] for c in record.criteria] == [True, False]
    assert record.criteria[1]["threshold"] == pytest.approx(1e-3)  # mg/L in the variable's g/L
    assert not record.passed and record.supported_tier == 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"validation": None}, "'validation' is required"),
        ({"tier": 7}, "not in domain"),
        ({"speed": 1}, "key 'speed' not defined"),
        ({"estimate": ["mu_maxx"]}, r"unknown parameters \['mu_maxx'\]"),
        ({"model": "mab_fedbatch"}, "is for model 'mab_fedbatch'"),
        ({"criteria": [{"metric": "rmse_sd", "variable": "titer", "threshold": 1}]}, "'titer' is not measured"),
        ({"criteria": [{"metric": "max_abs_error", "variable": "X", "threshold": 0.3}]}, "is in a unit"),
        (
            {"criteria": [{"metric": "max_abs_error", "variable": "X", "threshold": {"value": 1, "unit": "K"}}]},
            "cannot be expressed",
        ),
        (
            {"criteria": [{"metric": "rmse_sd", "variable": "X", "threshold": {"value": 1, "unit": "g/L"}}]},
            "dimensionless",
        ),
        ({"criteria": [{"metric": "r2", "variable": "X", "threshold": 1}]}, "not in domain"),
        ({"criteria": [{"metric": "condition_number", "threshold": 1e4}]}, "write on: calibration"),
        ({"criteria": []}, "no acceptance criteria"),
    ],
)
def test_bad_protocols_are_refused_by_name(model, runs, change, message):
    with pytest.raises(ProtocolError, match=message):
        read_protocol(protocol(runs, **change), model)


def test_a_validation_run_also_used_for_calibration_is_refused(model, runs, tmp_path):
    path = tmp_path / "validation.yaml"
    path.write_text(yaml.safe_dump(protocol(runs, validation=[str(runs / "run1.csv")])))
    with pytest.raises(ProtocolError, match="run1.csv is both a calibration and a validation run"):
        read_protocol(path, model)


def test_cli_validate_approve_status_and_audit(model, runs, tmp_path):
    """The commands a QA reviewer runs, end to end on one registry file; a failing protocol exits 1."""
    from biotwin.tools.cli import main

    reg = str(tmp_path / "registry.sqlite")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(protocol(runs)))
    strict = [
        {"metric": "max_abs_error", "variable": "X", "threshold": {"value": 1.0, "unit": "mg/L"}, "on": "validation"}
    ]
    bad.write_text(yaml.safe_dump(protocol(runs, criteria=strict)))
    folder = str(TEST_MODELS / "monod_switch")
    assert (
        main(["validate", folder, "--protocol", str(bad), "--out", str(tmp_path / "bad.html"), "--registry", reg]) == 1
    )
    assert (
        main(["approve", folder, "--tier", "2", "--reason", "r", "--registry", reg]) == 2
    )  # refused: no passing validation
    assert (
        main(["validate", folder, "--protocol", str(good), "--out", str(tmp_path / "r.html"), "--registry", reg]) == 0
    )
    assert (tmp_path / "r.json").is_file() and (tmp_path / "r.html").is_file()
    # an existing report is not replaced without --overwrite
    assert (
        main(["validate", folder, "--protocol", str(good), "--out", str(tmp_path / "r.html"), "--registry", reg]) == 2
    )
    assert (
        main(["approve", folder, "--tier", "2", "--reason", "held-out run in band", "--registry", reg, "--user", "qa"])
        == 0
    )
    assert main(["status", folder, "--registry", reg]) == 0
    assert main(["audit", "verify", "--registry", reg]) == 0
    assert main(["audit", "log", "--registry", reg]) == 0
    kinds = [e["kind"] for e in Registry(reg).events()]
    assert kinds == ["validation", "validation", "approval"]
