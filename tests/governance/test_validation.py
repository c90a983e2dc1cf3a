"""Validation protocols and reports on the Monod test model with synthetic runs of known truth."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import biotwin
from biotwin.governance import ProtocolError, Registry, read_protocol, validate, write_report
from biotwin.governance.validation import report_html
from support import TEST_MODELS

TRUE = {"mu_max": 0.5, "Ks": 0.2, "Yxs": 0.5}
SIGMA = {"X": 0.05, "S": 0.1}
RUNS = {"run1": (0.1, 10.0, 8.0, 0.02), "run2": (0.2, 8.0, 6.0, 0.03), "run3": (0.05, 12.0, 10.0, 0.01)}


@pytest.fixture(scope="module")
def model():
    return biotwin.load_model(TEST_MODELS / "monod_switch")


def _batch(model, folder, name, params, x0=0.15, s0=9.0, ts=7.0, f=0.025, seed=5, rng=None):
    """A batch (CSV + recipe) of the Monod process, made with ``params``, measured with SIGMA noise."""
    rng = rng if rng is not None else np.random.default_rng(seed)
    times = np.arange(1.0, 20.01, 1.0)
    recipe = {"t_end": 20, "parameters": {"X0": x0, "S0": s0}, "inputs": {"F": [[0, 0], [ts, 0], [ts, f], [20, f]]}}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    truth = model.simulate(recipe, params=params, times=times, nfe=60).wide.set_index("time").loc[times]
    frame = pd.DataFrame({"time": times})
    for v, sd in SIGMA.items():
        frame[v] = truth[v].to_numpy() + rng.normal(0, sd, times.size)
        frame[f"{v}_sigma"] = sd
    frame.to_csv(folder / f"{name}.csv", index=False)
    return folder / f"{name}.csv"


@pytest.fixture(scope="module")
def runs(model, tmp_path_factory):
    """Three synthetic runs (CSV + recipe) of the Monod model at the true parameters, noise of known sd."""
    folder = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(11)
    for name, (x0, s0, ts, f) in RUNS.items():
        _batch(model, folder, name, TRUE, x0=x0, s0=s0, ts=ts, f=f, rng=rng)
    return folder


def protocol(runs, **changes):
    base = {
        "intended_use": "Plan the feed start of the Monod test process (test of the validation machinery).",
        "tier": 2,
        # the runs are made by the model, but the tier logic is tested here as if they were measured
        # batches (test_synthetic_data_support_tier_1_only checks what 'synthetic' does)
        "data_kind": "real",
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


@pytest.fixture(scope="module")
def validated(model, runs, tmp_path_factory):
    """One validation of the good protocol, recorded in a registry, with its report and JSON record."""
    folder = tmp_path_factory.mktemp("validated")
    registry = Registry(folder / "registry.sqlite")
    record = validate(model, protocol(runs), registry=registry, user="tester")
    written = write_report(record, folder / "report.html", folder / "record.json")
    return record, registry, folder, written


def test_a_valid_model_passes_and_the_report_holds_its_evidence(model, validated):
    """Data made by the model itself with the stated noise: the held-out run lies in its bands.

    Independent check of the prediction band: 95 % coverage of the held-out points by (prediction +-
    1.96 sd) must be near 0.95 for both variables (40 points; a band too narrow or too wide fails)."""
    record, registry, folder, written = validated
    tmp_path = folder
    print(
        "\n" + "\n".join(f"{c['label']}: {c['value']:.4g} {'pass' if c['passed'] else 'FAIL'}" for c in record.criteria)
    )
    assert record.passed and record.supported_tier == 2
    preds = record.predictions
    inside = ((preds["data"] >= preds["lo95"]) & (preds["data"] <= preds["hi95"])).mean()
    assert 0.85 <= inside <= 1.0
    assert (preds["param_sd"] > 0).all() and (preds["sd"] > preds["param_sd"]).all()
    page = (tmp_path / "report.html").read_text()
    assert '<table id="criteria">' in page and "plotly" in page and page.count("class='pass'") == 4
    data = json.loads((tmp_path / "record.json").read_text())
    assert data["supported_tier"] == 2 and len(data["provenance"]["files"]) == 6  # 3 CSV + 3 recipes
    assert all(len(h) == 64 for h in written.values())
    # the validation is on record, and it is what lets a reviewer approve tier 2 (not 3)
    assert registry.events(kind="validation")[0]["payload"]["supported_tier"] == 2
    with pytest.raises(biotwin.governance.RegistryError, match="supports tier 3"):
        registry.approve(model, 3, "wishful", user="reviewer")


def test_a_new_batch_like_the_validated_ones_shows_no_drift_and_a_slower_one_requires_requalification(
    model, validated, tmp_path
):
    """Drift against the validation record (nothing re-calibrated): a batch of the same process (true
    parameters, another recipe and noise) passes the chi-square test at 1 % false alarms; a batch whose cells
    grow 30 % slower (mu_max 0.35 instead of 0.5 1/h) is flagged, names the variables that drove it, and turns
    an approved model to 'requalification required'."""
    from biotwin.governance import drift

    record, registry, folder, _ = validated
    registry.approve(model, 2, "held-out run within its bands", user="reviewer")
    assert registry.status(model)["state"] == "approved"
    same = drift(model, folder / "record.json", _batch(model, tmp_path, "same", TRUE), registry=registry)
    print(f"\nsame process: chi2 {same['chi2']:.1f} (limit {same['chi2_limit']:.1f}, p {same['p_value']:.2f})")
    assert not same["flagged"] and same["dof"] == 40 and same["p_value"] > 0.01
    assert registry.status(model)["state"] == "approved"
    slow = drift(model, record, _batch(model, tmp_path, "slow", {**TRUE, "mu_max": 0.35}), registry=registry)
    print(f"slower growth: chi2 {slow['chi2']:.1f}, RMS {slow['rmse_sd']:.2f} sd; {slow['reason']}")
    assert slow["flagged"] and slow["chi2"] > slow["chi2_limit"] and "driven by" in slow["reason"]
    assert slow["variables"]["X"]["bias_sd"] > 0  # the validated model over-predicts the slower growth
    status = registry.status(model)
    assert status["state"] == "requalification required" and "slow.csv drifted" in status["reason"]
    assert [e["payload"]["flagged"] for e in registry.events(kind="drift")] == [False, True]
    assert registry.verify() == []


def test_drift_refuses_a_record_of_another_model_version(model, validated, tmp_path):
    from biotwin.governance import DriftError, drift

    record, *_ = validated
    changed = json.loads(json.dumps(record.to_dict(), default=str))
    changed["model_hash"] = "0" * 64
    (tmp_path / "old.json").write_text(json.dumps(changed))
    with pytest.raises(DriftError, match="changed since this validation"):
        drift(model, tmp_path / "old.json", tmp_path / "none.csv")
    with pytest.raises(DriftError, match="no such file"):
        drift(model, tmp_path / "missing.json", tmp_path / "none.csv")


@pytest.mark.unit
def test_synthetic_data_support_tier_1_only():
    from biotwin.governance.validation import supported_tier

    passing = [{"tier": 2, "passed": True}, {"tier": 3, "passed": True}]
    assert supported_tier(passing, 3, "real") == (3, "")
    tier, note = supported_tier(passing, 3, "synthetic")
    assert tier == 1 and "synthetic data" in note and "up to tier 3" in note
    assert supported_tier([{"tier": 2, "passed": True}, {"tier": 3, "passed": False}], 3, "real") == (2, "")
    assert supported_tier([{"tier": 2, "passed": False}], 2, "real") == (1, "")


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
        {"metric": "stress_solved", "threshold": 1.0, "on": "stress", "tier": 3},
    ]
    # the stress range reaches an inoculum of 20 g/L, beyond X0's bounds in parameters.yaml: that point is
    # refused, so the model is not shown to hold over the whole range
    stress = {"grid": {"X0": [0.05, 20.0], "S0": [2.0, 40.0]}}
    record = validate(model, protocol(runs, tier=3, criteria=criteria, stress=stress))
    assert [c["passed"] for c in record.criteria] == [True, False, False]
    assert record.criteria[1]["threshold"] == pytest.approx(1e-3)  # mg/L in the variable's g/L
    assert record.criteria[2]["value"] == pytest.approx(0.5)  # 2 of 4 stress points (X0 = 20 g/L) refused
    failed = [r for r in record.stress if r["error"] is not None]
    assert len(failed) == 2 and all(r["X0"] == 20.0 and "X0" in r["error"] for r in failed)
    assert not record.passed and record.supported_tier == 2
    assert "<table id='stress'>" in report_html(record)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"validation": None}, "'validation' is required"),
        ({"data_kind": None}, "'data_kind' is required"),
        ({"data_kind": "simulated"}, "not in domain"),
        ({"requalification": {"false_alarm_rate": 1.5}}, "strictly between 0 and 1"),
        ({"tier": 7}, "not in domain"),
        ({"residual_model": "arma"}, "residual_model.*not in domain"),
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
        ({"criteria": [{"metric": "stress_solved", "threshold": 1.0, "on": "stress"}]}, "no stress block"),
        ({"criteria": [{"metric": "stress_solved", "threshold": 1.0}]}, "write on: stress"),
        ({"stress": {"grid": {"shelf": [1, 2]}}}, "stress: grid 'shelf' is neither a recipe knob"),
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
    slow = _batch(model, tmp_path, "slow", {**TRUE, "mu_max": 0.35})
    record = str(tmp_path / "r.json")
    assert main(["drift", folder, "--record", record, "--batch", str(slow), "--registry", reg]) == 1
    assert main(["status", folder, "--registry", reg]) == 1  # requalification required
    assert main(["retire", folder, "--reason", "superseded", "--registry", reg]) == 0
    assert main(["retire", folder, "--reason", "again", "--registry", reg]) == 2  # refused, named
    assert main(["audit", "log", "--registry", reg]) == 0
    kinds = [e["kind"] for e in Registry(reg).events()]
    assert kinds == ["validation", "validation", "approval", "drift", "retirement"]


def test_the_drift_test_holds_its_false_alarm_rate(model, validated, tmp_path):
    """The chi-square statistic is what it says: over 30 batches of the validated process (true parameters,
    recipes drawn at random, fresh noise) its mean is near its 40 degrees of freedom (sd of the mean of 30
    chi2(40) draws: 1.6), its distribution passes a Kolmogorov-Smirnov test against chi2(40), and at most 2
    batches are flagged at a 1 % false-alarm rate (P(>= 3 of 30) = 0.003 if the test is honest)."""
    from biotwin.governance import drift

    record, *_ = validated
    rng = np.random.default_rng(2026)
    results = []
    for k in range(30):
        x0, s0, ts, f = (float(v) for v in rng.uniform([0.05, 8.0, 5.0, 0.01], [0.2, 12.0, 10.0, 0.03]))
        batch = _batch(model, tmp_path, f"b{k}", TRUE, x0=x0, s0=s0, ts=ts, f=f, seed=100 + k)
        results.append(drift(model, record, batch))
    chi2 = np.array([r["chi2"] for r in results])
    flagged = sum(r["flagged"] for r in results)
    print(*[r["reason"] for r in results if r["flagged"]], sep="\n")
    print(f"\nmean chi2 {chi2.mean():.2f} (dof 40), sd {chi2.std(ddof=1):.2f} (chi2(40): 8.9), flagged {flagged}/30")
    assert abs(chi2.mean() - 40) < 3 * np.sqrt(80 / 30)
    assert flagged <= 2
    assert stats.kstest(chi2, stats.chi2(40).cdf).pvalue > 0.01  # the whole distribution, not only its mean
