"""Drift: does a new batch still look like the batches the model was validated on?

:func:`drift` predicts a new batch from its own recipe with the validated estimates and their
covariance (from the validation's JSON record, so nothing is re-calibrated), and tests its residuals
``e = prediction - data`` against what the validation said to expect:

* **chi-square test** with the full covariance of the residuals,
  ``S = J C J' + diag(measurement sd^2)`` (``J`` the sensitivities of the predictions to the estimates,
  ``C`` their covariance): ``chi2 = e' S^-1 e`` has ``n`` degrees of freedom when the model still
  describes the process, so the batch is flagged when ``chi2`` exceeds the ``1 - false_alarm_rate``
  quantile (the protocol's ``requalification.false_alarm_rate``, default 0.01);
* **size of the misfit**: the batch is also flagged when the root mean square of the normalized
  residuals ``e / sd`` exceeds ``requalification.max_rmse_sd`` (default 3).

Each variable's RMS normalized residual and mean bias name what drove a flag. With a registry, the
check is recorded as a ``drift`` event, and a flagged batch after an approval turns the model's status
to *requalification required* (:meth:`biotwin.governance.Registry.status`).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from biotwin.core.errors import BiotwinError


class DriftError(BiotwinError):
    """A drift check that cannot be run as asked (a record of another model or version, a bad batch)."""


def _load_record(record) -> tuple[dict, str]:
    from biotwin.governance.validation import ValidationRecord

    if isinstance(record, ValidationRecord):
        data = json.loads(json.dumps(record.to_dict(), default=str))
        return data, hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    path = Path(record)
    if not path.is_file():
        raise DriftError(f"validation record {path}: no such file (biotwin validate writes it beside the report)")
    text = path.read_bytes()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DriftError(f"validation record {path}: not JSON ({exc})") from None
    missing = [k for k in ("model", "model_hash", "estimates", "provenance") if k not in data]
    if missing or "covariance" not in data.get("provenance", {}):
        raise DriftError(
            f"validation record {path}: not a biotwin validation record with a covariance (missing "
            f"{missing or ['provenance.covariance']}); run biotwin validate again"
        )
    return data, hashlib.sha256(text).hexdigest()


def drift(model, record, batch, registry=None, user=None, progress=None) -> dict:
    """Test a new batch against the validated model.

    Parameters
    ----------
    model : biotwin.Model, str or path
        The model, at the version the record validated (its folder's content hash must match).
    record : path or biotwin.governance.ValidationRecord
        The validation's JSON record (``biotwin validate ... --out report.html`` writes ``report.json``).
    batch : path
        The new batch's data CSV (the calibration format), its recipe YAML beside it.
    registry : biotwin.governance.Registry, optional
        Where the check is recorded (a ``drift`` event).
    user : str, optional
    progress : callable, optional
        Called with a line of text at each step.

    Returns
    -------
    dict
        ``flagged`` (bool), ``reason``, ``chi2``, ``dof``, ``chi2_limit``, ``p_value``, ``rmse_sd``,
        ``max_rmse_sd``, ``false_alarm_rate``, ``variables`` (per variable: ``n``, ``rmse_sd``,
        ``bias_sd``), ``batch``, ``batch_sha256``, ``record_sha256``, ``predictions`` (a DataFrame).
    """
    from biotwin.core.data import read_experiment
    from biotwin.core.model import Model, folder_sha256, load_model
    from biotwin.governance.validation import _prediction

    say = progress or (lambda text: None)
    model = model if isinstance(model, Model) else load_model(model)
    data, record_sha = _load_record(record)
    if data["model"] != model.name:
        raise DriftError(f"the validation record is for model {data['model']!r}, not {model.name!r}")
    current = folder_sha256(model.folder)
    if data["model_hash"] != current:
        raise DriftError(
            f"model {model.name} changed since this validation (content hash {data['model_hash'][:12]} then, "
            f"{current[:12]} now): a drift check needs the validated version; validate the current one first"
        )
    prov = data["provenance"]
    labels = list(prov["covariance"]["labels"])
    cov = np.array(prov["covariance"]["matrix"], dtype=float)
    estimates = {k: float(v["value"]) for k, v in data["estimates"].items()}
    limits = prov.get("requalification", {})
    max_rmse_sd = float(limits.get("max_rmse_sd", 3.0))
    alpha = float(limits.get("false_alarm_rate", 0.01))
    batch = Path(batch)
    if not batch.is_file():
        raise DriftError(f"batch {batch}: no such file")
    exp = read_experiment(batch)
    say(f"predicting batch {exp.name} with the validated estimates of {', '.join(labels)}")
    preds = _prediction(model, exp, estimates, cov, labels, int(prov.get("nfe", 40)), prov.get("fallback_sd", {}))
    if preds.empty:
        raise DriftError(f"batch {batch}: no measured value to compare (every data cell is empty)")
    err = (preds["prediction"] - preds["data"]).to_numpy(dtype=float)
    jac, meas = preds.attrs["jacobian"], preds.attrs["measurement_sd"]
    if np.any(meas <= 0):
        raise DriftError(
            f"batch {batch}: some points have no measurement sd and the validation none to lend; "
            "give <variable>_sigma columns"
        )
    n = err.size
    if np.all(np.isfinite(cov)):
        s_mat = jac @ cov @ jac.T + np.diag(meas**2)
        chi2 = float(err @ np.linalg.solve(s_mat, err))
        how = "full covariance J C J' + diag(measurement sd^2)"
    else:  # a direction the calibration could not inform: it explains nothing, test the diagonal
        z = err / preds["sd"].to_numpy(dtype=float)
        chi2 = float(np.sum(np.where(np.isfinite(z), z, 0.0) ** 2))
        how = "diagonal (the covariance has an uninformed direction)"
    limit = float(stats.chi2.ppf(1.0 - alpha, n))
    p_value = float(stats.chi2.sf(chi2, n))
    z = err / preds["sd"].to_numpy(dtype=float)
    rmse_sd = float(math.sqrt(np.mean(z**2)))
    per_var = {}
    for v, rows in preds.assign(z=z).groupby("variable", sort=False):
        per_var[v] = {
            "n": len(rows),
            "rmse_sd": float(np.sqrt(np.mean(rows["z"] ** 2))),
            "bias_sd": float(np.mean(rows["z"])),
        }
    reasons = []
    if chi2 > limit:
        reasons.append(f"chi2 {chi2:.4g} > {limit:.4g} ({n} points, false-alarm rate {alpha:g}; p = {p_value:.2g})")
    if rmse_sd > max_rmse_sd:
        reasons.append(f"RMS normalized residual {rmse_sd:.3g} > {max_rmse_sd:g}")
    if reasons:
        worst = sorted(per_var, key=lambda v: -per_var[v]["rmse_sd"])
        drivers = ", ".join(
            f"{v} (RMS {per_var[v]['rmse_sd']:.3g} sd, bias {per_var[v]['bias_sd']:+.3g} sd)" for v in worst[:3]
        )
        reason = "; ".join(reasons) + f"; driven by {drivers}"
    else:
        reason = f"chi2 {chi2:.4g} <= {limit:.4g} and RMS normalized residual {rmse_sd:.3g} <= {max_rmse_sd:g}"
    out = {
        "flagged": bool(reasons),
        "reason": reason,
        "chi2": chi2,
        "dof": n,
        "chi2_limit": limit,
        "p_value": p_value,
        "test": how,
        "rmse_sd": rmse_sd,
        "max_rmse_sd": max_rmse_sd,
        "false_alarm_rate": alpha,
        "variables": per_var,
        "batch": str(batch.resolve()),
        "batch_sha256": hashlib.sha256(batch.read_bytes()).hexdigest(),
        "record_sha256": record_sha,
        "predictions": preds,
    }
    if registry is not None:
        payload = {k: v for k, v in out.items() if k != "predictions"}
        event = registry.record("drift", model, payload, user)
        out["event"] = event["seq"]
    say(f"batch {exp.name}: {'DRIFT' if reasons else 'no drift'} - {reason}")
    return out


__all__ = ["DriftError", "drift"]
