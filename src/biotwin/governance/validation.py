"""Validate a model against its protocol: calibrate, predict held-out runs with uncertainty, judge.

:func:`validate` calibrates the protocol's estimates on its calibration runs, predicts every held-out
run from its own recipe with the parameter uncertainty propagated (linearized: ``J C J'`` with ``J``
from forward differences of warm-started re-solves, plus each measurement's own sd; the variable's
calibration RMSE where the file gives none), evaluates each acceptance criterion, and returns a
:class:`ValidationRecord`: every criterion's figure, threshold and verdict, the tier the evidence
supports, and the provenance (SHA-256 of the protocol, of every data and recipe file and of the model
folder; package versions; solver options). :func:`write_report` writes it as JSON and as one
self-contained HTML page (plotly inlined: it opens offline).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.governance.protocol import CALIBRATION_ONLY, Protocol, read_protocol

Z95 = 1.959963984540054
FD_STEP = 1e-4  # relative step of the forward differences of the prediction [-]


@dataclass
class ValidationRecord:
    """The outcome of one validation run (what the JSON record holds)."""

    model: str
    model_hash: str
    intended_use: str
    claimed_tier: int
    supported_tier: int
    passed: bool
    criteria: list
    estimates: dict
    predictions: pd.DataFrame = field(repr=False)
    provenance: dict = field(repr=False)
    time: str = ""
    data_kind: str = "real"
    tier_note: str = ""
    stress: list = field(default_factory=list)  # one dict per stress point: knobs, output, error

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_hash": self.model_hash,
            "time": self.time,
            "intended_use": self.intended_use,
            "claimed_tier": self.claimed_tier,
            "supported_tier": self.supported_tier,
            "tier_note": self.tier_note,
            "data_kind": self.data_kind,
            "passed": self.passed,
            "criteria": self.criteria,
            "estimates": self.estimates,
            "predictions": self.predictions.to_dict(orient="records"),
            "stress": self.stress,
            "provenance": self.provenance,
        }


def _sha(path) -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def _prediction(model, exp, estimates, cov, labels, nfe, fallback_sd) -> pd.DataFrame:
    """Held-out run ``exp`` predicted at the estimates, with the 95 % prediction band at its data times."""
    times = exp.data["time"].to_numpy(dtype=float)
    variables = [c for c in exp.data.columns if c != "time"]
    base = model.simulate(exp.scenario, params={**exp.params, **estimates}, times=times, nfe=nfe)
    at = base.wide.set_index("time")

    def values(result):
        w = result.wide.set_index("time")
        return {v: w.loc[times, v].to_numpy(dtype=float) for v in variables}

    y0 = values(base)
    jac = {v: np.zeros((len(times), len(labels))) for v in variables}
    for j, name in enumerate(labels):
        step = FD_STEP * max(abs(estimates[name]), 1e-12)
        moved = model.simulate(
            exp.scenario, params={**exp.params, **estimates, name: estimates[name] + step}, times=times, nfe=nfe
        )
        yj = values(moved)
        for v in variables:
            jac[v][:, j] = (yj[v] - y0[v]) / step
    rows = []
    meas_sd = {
        v: exp.sigma[v].to_numpy(dtype=float) if v in exp.sigma else np.full(len(times), np.nan) for v in variables
    }
    for v in variables:
        var_param = np.einsum("ij,jk,ik->i", jac[v], cov, jac[v])
        meas = meas_sd[v]
        meas = np.where(np.isfinite(meas), meas, fallback_sd.get(v, 0.0))
        sd = np.sqrt(np.maximum(var_param, 0.0) + meas**2)
        data = exp.data[v].to_numpy(dtype=float)
        for k, t in enumerate(times):
            if not np.isfinite(data[k]):
                continue
            rows.append(
                {
                    "experiment": exp.name,
                    "variable": v,
                    "time": float(t),
                    "data": float(data[k]),
                    "prediction": float(y0[v][k]),
                    "param_sd": float(math.sqrt(max(var_param[k], 0.0))),
                    "sd": float(sd[k]),
                    "lo95": float(y0[v][k] - Z95 * sd[k]),
                    "hi95": float(y0[v][k] + Z95 * sd[k]),
                }
            )
    frame = pd.DataFrame(rows)
    # the sensitivities and measurement sd of each row, for a test with the full covariance (drift)
    keep = [(v, k) for v in variables for k in range(len(times)) if np.isfinite(exp.data[v].to_numpy(dtype=float)[k])]
    frame.attrs["jacobian"] = np.array([jac[v][k] for v, k in keep]).reshape(len(keep), len(labels))
    frame.attrs["measurement_sd"] = np.array(
        [np.where(np.isfinite(meas_sd[v]), meas_sd[v], fallback_sd.get(v, 0.0))[k] for v, k in keep]
    )
    frame.attrs["trajectory"] = {v: (at.index.to_numpy(), at[v].to_numpy()) for v in variables}
    return frame


def _metric(criterion, preds: pd.DataFrame, fit) -> float:
    if criterion.metric == "condition_number":
        return float(fit.identifiability["condition_number"])
    if criterion.metric == "max_abs_correlation":
        c = np.array(fit.correlation["matrix"], dtype=float)
        if c.shape[0] < 2:
            return 0.0
        off = c[~np.eye(c.shape[0], dtype=bool)]
        return float(np.nanmax(np.abs(off)))
    rows = preds[preds["variable"] == criterion.variable]
    if rows.empty:
        return float("nan")
    err = rows["prediction"] - rows["data"]
    if criterion.metric == "rmse_sd":
        return float(np.sqrt(np.mean((err / rows["sd"]) ** 2)))
    if criterion.metric == "bias_sd":
        return float(abs(np.mean(err / rows["sd"])))
    if criterion.metric == "coverage95":
        return float(np.mean((rows["data"] >= rows["lo95"]) & (rows["data"] <= rows["hi95"])))
    if criterion.metric == "max_abs_error":
        return float(np.max(np.abs(err)))
    if criterion.metric == "endpoint_rel_error":
        last = rows.sort_values("time").groupby("experiment").tail(1)
        return float(np.max(np.abs(last["prediction"] - last["data"]) / np.abs(last["data"])))
    raise ValueError(criterion.metric)  # pragma: no cover - read_protocol admits only METRICS


def _stress_points(model, proto: Protocol, estimates: dict, predictions: pd.DataFrame, say) -> list:
    """The protocol's stress grid run at the estimates (a serial sweep): one row per recipe point."""
    import tempfile

    from biotwin.sweep import read_sweep, run_sweep

    output = proto.stress["output"] or f"{predictions['variable'].iloc[0]}:final"
    spec = read_sweep(
        {
            "recipe": proto.stress["recipe"],
            "nfe": proto.nfe,
            "grid": proto.stress["grid"],
            "parameters": estimates,
            "outputs": [output],
        },
        model,
    )
    say(f"stress: {len(spec.points)} recipe points over {', '.join(spec.grid)} at the estimates")
    with tempfile.TemporaryDirectory() as tmp:
        frame = run_sweep(spec, Path(tmp) / "stress", scheduler="serial").frame
    keep = [*spec.grid, f"{output}@all", "error"]
    rows = frame[keep].to_dict(orient="records")
    return [{k: (None if k == "error" and not isinstance(v, str) else v) for k, v in r.items()} for r in rows]


def supported_tier(criteria: list, claimed: int, data_kind: str) -> tuple[int, str]:
    """The decision tier the evidence supports, and a note when it is lower than the criteria alone say.

    The highest tier up to ``claimed`` whose criteria (each a dict with ``tier`` and ``passed``) all
    pass; tier 1 (exploratory) needs none. Synthetic data support tier 1 only: passing criteria on data
    a model made show that the machinery works, not that the model describes a real process.
    """
    supported = 1
    for tier in range(2, claimed + 1):
        if all(c["passed"] for c in criteria if c["tier"] <= tier):
            supported = tier
        else:
            break
    if data_kind == "synthetic" and supported > 1:
        return 1, (
            f"the criteria pass up to tier {supported}, but on synthetic data: they test the machinery, not the "
            "model's agreement with a real process, so the evidence supports tier 1 only"
        )
    return supported, ""


def _calibration_predictions(fit) -> pd.DataFrame:
    rows = [
        {
            "experiment": r["experiment"],
            "variable": r["variable"],
            "time": float(r["time"]),
            "data": float(r["value"]),
            "prediction": float(r["fitted"]),
            "sd": float(r["sigma"]) if r.get("sigma") else float("nan"),
        }
        for r in fit.residuals
    ]
    frame = pd.DataFrame(rows)
    frame["lo95"] = frame["prediction"] - Z95 * frame["sd"]
    frame["hi95"] = frame["prediction"] + Z95 * frame["sd"]
    return frame


def validate(model, protocol, registry=None, user=None, progress=None) -> ValidationRecord:
    """Run a validation protocol on a model.

    Parameters
    ----------
    model : biotwin.Model, str or path
    protocol : path or dict
        See :mod:`biotwin.governance.protocol`.
    registry : biotwin.governance.Registry, optional
        Where the validation is recorded (a ``validation`` event with the record's figures and hash).
    user : str, optional
        Who ran it (default the operating-system user).
    progress : callable, optional
        Called with a line of text at each step.
    """
    from biotwin.calibration import calibrate
    from biotwin.core.data import read_experiment
    from biotwin.core.model import Model, folder_sha256, load_model

    say = progress or (lambda text: None)
    model = model if isinstance(model, Model) else load_model(model)
    proto: Protocol = read_protocol(protocol, model)
    say(f"calibrating {', '.join(proto.estimate)} on {len(proto.calibration)} run(s)")
    fit = calibrate(
        model,
        [str(p) for p in proto.calibration],
        proto.estimate,
        nfe=proto.nfe,
        bands=False,
        residual_model=proto.residual_model,
    )
    estimates = {k: float(v["value"]) for k, v in fit.parameters.items()}
    labels = list(fit.covariance["labels"])
    # a direction the calibration data cannot inform has an infinite variance in the covariance; it stays
    # infinite through J C J', so the held-out band is unbounded and coverage cannot be earned by it
    cov = np.array(fit.covariance["matrix"], dtype=float)
    fallback_sd = {v: float(d["rmse"]) for v, d in fit.diagnostics.get("per_variable", {}).items()}
    held_out = []
    for path in proto.validation:
        exp = read_experiment(path)
        say(f"predicting held-out run {exp.name} with {len(labels)} parameter sensitivities")
        held_out.append(_prediction(model, exp, estimates, cov, labels, proto.nfe, fallback_sd))
    predictions = pd.concat(held_out, ignore_index=True)
    trajectories = {frame["experiment"].iloc[0]: frame.attrs["trajectory"] for frame in held_out if not frame.empty}
    calibration_preds = _calibration_predictions(fit)

    stress = _stress_points(model, proto, estimates, predictions, say) if proto.stress else []
    criteria = []
    for c in proto.criteria:
        if c.on == "stress":
            value = float(np.mean([row["error"] is None for row in stress])) if stress else float("nan")
        else:
            value = _metric(c, predictions if c.on == "validation" else calibration_preds, fit)
        criteria.append(
            {
                "label": c.label,
                "metric": c.metric,
                "variable": c.variable,
                "on": c.on,
                "tier": c.tier,
                "threshold": c.threshold,
                "unit": c.unit,
                "value": value,
                "passed": bool(c.passes(value)),
            }
        )
    supported, tier_note = supported_tier(criteria, proto.tier, proto.data_kind)
    passed = all(c["passed"] for c in criteria)
    files = {}
    for p in [*proto.calibration, *proto.validation]:
        files[str(p)] = _sha(p)
        recipe = Path(p).with_suffix(".yaml")
        if recipe.is_file():
            files[str(recipe)] = _sha(recipe)
    provenance = {
        "protocol": {"path": str(proto.path) if proto.path else None, "sha256": proto.sha256},
        "files": files,
        "calibration": [str(p) for p in proto.calibration],
        "validation": [str(p) for p in proto.validation],
        "versions": fit.provenance.get("versions", {}),
        "solver_options": fit.provenance.get("solver_options", {}),
        "nfe": proto.nfe,
        "residual_model": proto.residual_model,
        "residual_autocorrelation_lag1": fit.diagnostics.get("residual_autocorrelation_lag1"),
        "calibration_chi2": fit.diagnostics.get("chi2"),
        "uncertainty": "linearized: J C J' from forward differences (relative step 1e-4) plus the measurement sd",
        "data_kind": proto.data_kind,
        "covariance": {"labels": labels, "matrix": cov.tolist()},
        "fallback_sd": fallback_sd,
        "requalification": {"max_rmse_sd": proto.max_rmse_sd, "false_alarm_rate": proto.false_alarm_rate},
    }
    record = ValidationRecord(
        model=model.name,
        model_hash=folder_sha256(model.folder),
        intended_use=proto.intended_use,
        claimed_tier=proto.tier,
        supported_tier=supported,
        passed=passed,
        criteria=criteria,
        estimates={
            k: {key: v[key] for key in ("value", "unit", "std_error", "ci95_low", "ci95_high")}
            for k, v in fit.parameters.items()
        },
        predictions=predictions,
        provenance=provenance,
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        data_kind=proto.data_kind,
        tier_note=tier_note,
        stress=stress,
    )
    record.predictions.attrs["trajectories"] = trajectories
    if registry is not None:
        digest = hashlib.sha256(json.dumps(record.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
        registry.record(
            "validation",
            model,
            {
                "passed": passed,
                "claimed_tier": proto.tier,
                "supported_tier": supported,
                "data_kind": proto.data_kind,
                "protocol_sha256": proto.sha256,
                "record_sha256": digest,
                "criteria": [{k: c[k] for k in ("label", "value", "passed")} for c in criteria],
            },
            user,
        )
    say(f"validation: {'passed' if passed else 'FAILED'}; evidence supports tier {supported} (claimed {proto.tier})")
    return record


# -- the report ---------------------------------------------------------------------------------------
def write_report(record: ValidationRecord, html_path=None, json_path=None) -> dict:
    """Write the record as JSON and/or a self-contained HTML page; return the written paths' SHA-256."""
    out = {}
    if json_path is not None:
        text = json.dumps(record.to_dict(), indent=2, default=_json_default)
        _atomic_write(Path(json_path), text)
        out[str(json_path)] = hashlib.sha256(text.encode()).hexdigest()
    if html_path is not None:
        text = report_html(record)
        _atomic_write(Path(html_path), text)
        out[str(html_path)] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def report_html(record: ValidationRecord) -> str:
    """The validation report as one HTML page: intended use, verdict, criteria table, prediction plots."""
    import plotly.graph_objects as go

    esc = html.escape
    rows = "".join(
        f"<tr class='{'pass' if c['passed'] else 'fail'}'><td>{esc(c['label'])}</td><td>{c['tier']}</td>"
        f"<td>{c['value']:.4g}</td><td>{'pass' if c['passed'] else 'FAIL'}</td></tr>"
        for c in record.criteria
    )
    est_rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{v['value']:.5g}</td><td>{esc(str(v['unit']))}</td>"
        f"<td>{_fmt(v['ci95_low'])} - {_fmt(v['ci95_high'])}</td></tr>"
        for k, v in record.estimates.items()
    )
    figures = []
    preds = record.predictions
    trajectories = preds.attrs.get("trajectories", {})
    first = True
    for (exp, var), rows_ in preds.groupby(["experiment", "variable"], sort=False):
        fig = go.Figure()
        t, y = trajectories.get(exp, {}).get(var, (None, None))
        if t is not None:
            fig.add_scatter(x=t, y=y, name="prediction", line={"color": "#1f77b4"})
        fig.add_scatter(
            x=rows_["time"],
            y=rows_["prediction"],
            mode="markers",
            name="95 % prediction band",
            marker={"color": "#1f77b4", "size": 3},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": rows_["hi95"] - rows_["prediction"],
                "arrayminus": rows_["prediction"] - rows_["lo95"],
            },
        )
        fig.add_scatter(
            x=rows_["time"], y=rows_["data"], mode="markers", name="held-out data", marker={"color": "black"}
        )
        fig.update_layout(title=f"{exp}: {var}", template="plotly_white", height=340, margin={"t": 40})
        figures.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False))
        first = False
    verdict = "passed" if record.passed else "FAILED"
    files = "".join(
        f"<li><code>{esc(p)}</code> sha256 <code>{esc(str(h))}</code></li>"
        for p, h in record.provenance["files"].items()
    )
    versions = ", ".join(f"{esc(k)} {esc(str(v))}" for k, v in record.provenance.get("versions", {}).items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>biotwin validation: {esc(record.model)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.pass td:last-child {{ background: #d9f2d9; }} tr.fail td:last-child {{ background: #f8d0d0; font-weight: bold; }}
code {{ font-size: 85%; }}
</style></head><body>
<h1>Validation report: {esc(record.model)}</h1>
<p><b>Intended use.</b> {esc(record.intended_use)}</p>
<p><b>Verdict: {verdict}.</b> Decision tier claimed {record.claimed_tier}; the evidence supports tier
<b id="supported-tier">{record.supported_tier}</b>.{" " + esc(record.tier_note[0].upper() + record.tier_note[1:]) + "." if record.tier_note else ""}</p>
<p><b>Data:</b> {"synthetic (made by a model, not measured)" if record.data_kind == "synthetic" else "measured batches"}.</p>
<h2>Acceptance criteria</h2>
<table id="criteria"><tr><th>criterion</th><th>needed for tier</th><th>figure</th><th>verdict</th></tr>{rows}</table>
<h2>Calibrated parameters (95 % intervals)</h2>
<table><tr><th>parameter</th><th>value</th><th>unit</th><th>95 % interval</th></tr>{est_rows}</table>
{_stress_table(record)}
<h2>Held-out runs: prediction with parameter and measurement uncertainty</h2>
{"".join(figures)}
<h2>Provenance</h2>
<p>Model folder content hash <code>{esc(record.model_hash)}</code>; protocol sha256
<code>{esc(str(record.provenance["protocol"]["sha256"]))}</code>; run {esc(record.time)}.</p>
<ul>{files}</ul>
<p>Versions: {versions}. Uncertainty: {esc(record.provenance["uncertainty"])}.</p>
</body></html>
"""


def _stress_table(record: ValidationRecord) -> str:
    if not record.stress:
        return ""
    esc = html.escape
    cols = [k for k in record.stress[0] if k != "error"]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols) + "<th>solved</th>"
    body = "".join(
        "<tr class='{}'>".format("pass" if r["error"] is None else "fail")
        + "".join(f"<td>{_fmt(r[c]) if isinstance(r[c], float) else esc(str(r[c]))}</td>" for c in cols)
        + f"<td>{'yes' if r['error'] is None else esc('no: ' + r['error'][:200])}</td></tr>"
        for r in record.stress
    )
    return f"<h2>Stress: recipe ranges at the estimates</h2>\n<table id='stress'><tr>{head}</tr>{body}</table>"


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"


__all__ = ["CALIBRATION_ONLY", "ValidationRecord", "report_html", "supported_tier", "validate", "write_report"]
