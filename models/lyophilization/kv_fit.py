"""The vial heat-transfer coefficient from a measured primary-drying time (LyoPRONTO's "unknown Kv" tool).

With the product resistance known (``R0, A1, A2``), the drying time of a recipe falls monotonically as
the vial heat-transfer coefficient rises, so one measured end of primary drying (from the Pirani /
capacitance-manometer convergence or the product thermocouples) fixes a constant ``Kv``: here written
``KC`` with ``KP = KD = 0`` (LyoPRONTO's form for this tool; the pressure dependence needs runs at two or
more pressures). Each trial ``Kv`` is a simulation of the recipe; the root is bracketed by widening
steps from the recipe's own ``Kv`` (inside ``kv_range``) and found by Brent's method
(``scipy.optimize.brentq``).

    Kv(P) = KC + KP P / (1 + KD P)          [cal/s/K/cm^2]   Pikal et al. 1984, J Pharm Sci 73:1224

The pressure dependence comes from gravimetric sublimation tests (``fit_kv_gravimetric``): vials of
water or placebo sublimed at several chamber pressures, each weighed before and after, with the shelf
and vial-bottom temperatures recorded. Each vial gives ``Kv = dHs (dm/dt) / (Av (T_shelf - T_bottom))``
(:func:`biotwin.processes.freeze_drying.kv_from_sublimation`); ``KC, KP, KD`` are fitted to those by
least squares with the calibration package's statistics (Gauss-Newton covariance, Student-t intervals,
an infinite interval for a direction the tests do not inform, identifiability), per vial class
(``position``: centre and edge vials) when the file has one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.calibration.statistics import correlation, covariance, identifiability, wald_intervals
from biotwin.core.errors import DataError, ScenarioError
from biotwin.processes.freeze_drying import kv_from_sublimation, vial_heat_transfer


@dataclass
class KvFit:
    """A constant vial heat-transfer coefficient matching a measured drying time.

    Attributes
    ----------
    Kv_cal_per_s_K_cm2 : float
        The fitted constant ``Kv`` (= ``KC``, ``KP = KD = 0``) [cal/s/K/cm^2].
    t_dry_measured_h, t_dry_model_h : float
        The measured end of primary drying and the model's with the fitted ``Kv`` [h].
    sensitivity_h_per_unit : float
        d(drying time)/d(Kv) at the fit [h per cal/s/K/cm^2] (negative): divides a drying-time
        uncertainty into a ``Kv`` uncertainty.
    history : list of (Kv, t_dry)
        Every simulation made.
    """

    Kv_cal_per_s_K_cm2: float
    t_dry_measured_h: float
    t_dry_model_h: float
    sensitivity_h_per_unit: float
    history: list = field(default_factory=list)

    def kv_interval(self, t_dry_sd_h: float) -> tuple[float, float]:
        """Kv range [cal/s/K/cm^2] for a drying time known to +/- 1.96 ``t_dry_sd_h`` [h] (linearized)."""
        half = 1.96 * t_dry_sd_h / abs(self.sensitivity_h_per_unit)
        return self.Kv_cal_per_s_K_cm2 - half, self.Kv_cal_per_s_K_cm2 + half


def fit_kv_from_drying_time(model, scenario, t_dry_h, kv_range=(1e-4, 2e-3), nfe=60, rtol=1e-7, progress=None):
    """Find the constant ``Kv`` with which the recipe's primary drying ends at ``t_dry_h``.

    Parameters
    ----------
    model : biotwin.Model
        The lyophilization model.
    scenario : str or dict
        The recipe that was run (its shelf and pressure programs are lengthened to 3x ``t_dry_h`` if shorter).
    t_dry_h : float
        Measured end of primary drying [h].
    kv_range : (float, float)
        Bracket for ``Kv`` [cal/s/K/cm^2]; the drying times at its ends must straddle ``t_dry_h``.
    nfe : int
        Collocation elements of each simulation.
    rtol : float
        Relative tolerance on ``Kv``.
    progress : callable, optional
        Called with a line of text per simulation.

    Returns
    -------
    KvFit
    """
    from scipy.optimize import brentq

    if not (isinstance(t_dry_h, (int, float)) and math.isfinite(t_dry_h) and t_dry_h > 0):
        raise ScenarioError(f"fit_kv_from_drying_time: t_dry_h must be a positive number of hours, got {t_dry_h!r}")
    lo, hi = (float(v) for v in kv_range)
    if not (0 < lo < hi):
        raise ScenarioError(f"fit_kv_from_drying_time: kv_range must be 0 < low < high [cal/s/K/cm^2], got {kv_range}")
    say = progress or (lambda text: None)
    raw = copy.deepcopy(model.load_scenario(scenario).raw)
    horizon = 3.0 * t_dry_h
    for key in ("shelf_temperature", "chamber_pressure"):
        points = raw[key]["points"]
        if points[-1][0] < horizon:
            raw[key] = {"unit": raw[key]["unit"], "points": [*points, [horizon, points[-1][1]]]}
    history = []

    def drying_time(kv):
        result = model.simulate(scenario=raw, params={"KC": kv, "KP": 0.0, "KD": 0.0}, nfe=nfe)
        t = float(model.module.primary_drying_end(result))
        history.append((kv, t))
        say(f"Kv {kv:.4e} cal/s/K/cm2: primary drying ends at {t:.4f} h")
        return t

    # bracket the root from the recipe's own Kv (at its first chamber pressure), widening by 1.5x: every
    # simulation then starts near the previous one (the range's ends are slow to solve from far away)
    p = model.parameter_values(model.load_scenario(raw).parameters)
    pressure = model.module.recipe_programs(raw)[1][0][1] * 1e-3  # [torr]
    k = min(max(vial_heat_transfer(pressure, p["KC"], p["KP"], p["KD"]), lo), hi)
    a, t_a = k, drying_time(k)
    factor = 1.5 if t_a > t_dry_h else 1 / 1.5
    while True:
        b = min(max(a * factor, lo), hi)
        t_b = drying_time(b)
        if (t_a - t_dry_h) * (t_b - t_dry_h) <= 0:
            break
        if b in (lo, hi):
            raise ScenarioError(
                f"fit_kv_from_drying_time: a measured drying time of {t_dry_h} h lies outside what kv_range gives "
                f"(at Kv {b:g} cal/s/K/cm2 drying ends at {t_b:.3f} h); widen kv_range"
            )
        a, t_a = b, t_b
    lo, hi = min(a, b), max(a, b)
    kv = brentq(lambda k: drying_time(k) - t_dry_h, lo, hi, xtol=1e-12, rtol=rtol)
    t_fit = drying_time(kv)
    step = 1e-3 * kv
    sensitivity = (drying_time(kv + step) - drying_time(kv - step)) / (2 * step)
    return KvFit(kv, float(t_dry_h), t_fit, float(sensitivity), history)


# --------------------------------------------------------------------------------------------------
# Gravimetric tests: KC, KP, KD from sublimation at several chamber pressures
# --------------------------------------------------------------------------------------------------

#: Columns of a gravimetric-test file (one row per vial), each with its unit in the name.
GRAVIMETRIC_COLUMNS = {
    "P_chamber_mTorr": "chamber pressure during the test [mTorr]",
    "T_shelf_C": "mean shelf-surface temperature over the test [degC]",
    "T_bottom_C": "mean vial-bottom (thermocouple) temperature over the test [degC]",
    "mass_loss_g": "ice sublimed, from weighing the vial before and after [g]",
    "duration_h": "length of the test [h]",
}
#: Optional columns: a vial label, its class (e.g. ``centre``/``edge``), its outer area.
GRAVIMETRIC_OPTIONAL = {"vial": "label", "position": "vial class", "Av_cm2": "outer vial area [cm^2]"}

KV_UNITS = {"KC": "cal/s/K/cm^2", "KP": "cal/s/K/cm^2/torr", "KD": "1/torr"}


def _where(source) -> str:
    """How errors name the tests: the file, or "gravimetric tests" for a table."""
    return "gravimetric tests" if isinstance(source, pd.DataFrame) else str(source)


def read_gravimetric_tests(source, Av_cm2=None, dHs=678.0) -> pd.DataFrame:
    """Read gravimetric sublimation tests (CSV path or DataFrame; one row per vial) and each vial's Kv.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        Columns :data:`GRAVIMETRIC_COLUMNS`, optionally :data:`GRAVIMETRIC_OPTIONAL`. ``#`` lines are comments.
    Av_cm2 : float, optional
        Outer vial area [cm^2] for rows without an ``Av_cm2`` column (required when the file has none).
    dHs : float
        Heat of sublimation of ice [cal/g] (678, LyoPRONTO's constant).

    Returns
    -------
    pandas.DataFrame
        A copy of the rows with ``P_torr`` [Torr] and ``Kv`` [cal/s/K/cm^2] added; ``position`` is
        ``"all"`` when the file has no vial classes. The source is never modified.

    Raises
    ------
    DataError
        Naming the file, the row (header = row 1) and the column: a missing or unknown column, a value
        that is not a finite number, a pressure, mass loss or duration that is not positive, a vial
        whose bottom was not colder than the shelf (no heat flowed into it: the test cannot give Kv).
    """
    where = _where(source)
    if isinstance(source, pd.DataFrame):
        raw = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{where}: no such file")
        raw = pd.read_csv(path, comment="#", skipinitialspace=True)
    missing = [c for c in GRAVIMETRIC_COLUMNS if c not in raw.columns]
    unknown = [c for c in raw.columns if c not in GRAVIMETRIC_COLUMNS and c not in GRAVIMETRIC_OPTIONAL]
    if missing or unknown:
        problems = [f"missing column(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown column(s) {', '.join(map(str, unknown))} (the unit goes in the name)"] if unknown else []
        spec = "; ".join(f"{c}: {text}" for c, text in GRAVIMETRIC_COLUMNS.items())
        optional = "; ".join(f"{c}: {text}" for c, text in GRAVIMETRIC_OPTIONAL.items())
        raise DataError(f"{where}: {' and '.join(problems)}; a gravimetric-test file has {spec}; optionally {optional}")
    if len(raw) == 0:
        raise DataError(f"{where}: no rows")
    area = ["Av_cm2"] if "Av_cm2" in raw.columns else []
    out = raw.copy()
    for col in [*GRAVIMETRIC_COLUMNS, *area]:
        values = pd.to_numeric(raw[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: row {k + 2}, column {col}: {raw[col].iloc[k]!r} is not a finite number")
        out[col] = values.astype(float)
    for col in ("P_chamber_mTorr", "mass_loss_g", "duration_h", *area):
        bad = out[col].to_numpy() <= 0
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: row {k + 2}, column {col}: {out[col].iloc[k]:g} must be positive")
    dT = (out["T_shelf_C"] - out["T_bottom_C"]).to_numpy()
    if (dT <= 0).any():
        k = int(np.flatnonzero(dT <= 0)[0])
        raise DataError(
            f"{where}: row {k + 2}: the vial bottom ({out['T_bottom_C'].iloc[k]:g} degC) is not colder than the "
            f"shelf ({out['T_shelf_C'].iloc[k]:g} degC), so no heat flowed into the vial and the row cannot give "
            "Kv; check the thermocouple and shelf columns (T_shelf_C, T_bottom_C)"
        )
    if "Av_cm2" not in out.columns:
        if Av_cm2 is None or not (isinstance(Av_cm2, (int, float)) and math.isfinite(Av_cm2) and Av_cm2 > 0):
            raise DataError(
                f"{where}: no Av_cm2 column; pass Av_cm2= (the vial's outer cross-sectional area [cm^2], "
                f"3.80 for LyoPRONTO's standard vial), got {Av_cm2!r}"
            )
        out["Av_cm2"] = float(Av_cm2)
    out["position"] = out["position"].astype(str) if "position" in out.columns else "all"
    out["P_torr"] = out["P_chamber_mTorr"] * 1e-3
    out["Kv"] = kv_from_sublimation(
        out["mass_loss_g"], out["duration_h"], out["T_shelf_C"], out["T_bottom_C"], out["Av_cm2"], dHs
    )
    return out


@dataclass
class GravimetricKvFit:
    """``KC, KP, KD`` of one vial class fitted to its vials' Kv at several chamber pressures.

    Attributes
    ----------
    position : str
        The vial class (``"all"`` when the tests have none).
    values, se, lower, upper : dict
        Estimates, standard errors and 95 % intervals of ``KC`` [cal/s/K/cm^2], ``KP``
        [cal/s/K/cm^2/Torr] and ``KD`` [1/Torr]. A parameter held at its bound (``KD = 0`` when the tests
        show no curvature) has NaN se and interval; one the tests cannot inform has an infinite interval.
    at_bound : dict
        ``"lower"`` for a parameter held at zero, else None.
    correlation : pandas.DataFrame
    identifiability : dict
        From :func:`biotwin.calibration.statistics.identifiability` (condition number, null directions).
    tests : pandas.DataFrame
        The vials of this class with ``Kv``, the fitted ``Kv_fit`` and ``residual`` [cal/s/K/cm^2].
    s : float
        Residual standard deviation of a vial's Kv [cal/s/K/cm^2].
    """

    position: str
    values: dict
    se: dict
    lower: dict
    upper: dict
    at_bound: dict
    correlation: pd.DataFrame
    identifiability: dict
    tests: pd.DataFrame
    s: float
    cov: np.ndarray = field(repr=False, default=None)

    @property
    def params(self) -> dict:
        """``{"KC": ..., "KP": ..., "KD": ...}`` for ``model.simulate(params=...)``."""
        return dict(self.values)

    def table(self) -> pd.DataFrame:
        """One row per parameter: value, unit, se, 95 % interval, at bound."""
        return pd.DataFrame(
            {
                "value": self.values,
                "unit": KV_UNITS,
                "se": self.se,
                "lower_95": self.lower,
                "upper_95": self.upper,
                "at_bound": self.at_bound,
            }
        )

    def kv(self, P_torr):
        """The fitted ``Kv`` at chamber pressure(s) ``P_torr`` [Torr] [cal/s/K/cm^2]."""
        v = self.values
        return vial_heat_transfer(np.asarray(P_torr, dtype=float), v["KC"], v["KP"], v["KD"])

    def kv_band(self, P_torr, level=0.95):
        """Confidence band of the fitted ``Kv`` curve at ``P_torr`` (delta method; infinite if uninformed)."""
        from scipy import stats

        P = np.asarray(P_torr, dtype=float)
        J = _kv_jacobian(P, self.values["KC"], self.values["KP"], self.values["KD"])
        free = [k for k, name in enumerate(KV_UNITS) if self.at_bound[name] is None]
        C = self.cov[np.ix_(free, free)]
        if not np.isfinite(C).all():
            var = np.full(P.shape, np.inf)
        else:
            var = np.einsum("ij,jk,ik->i", J[:, free], C, J[:, free])
        n, q = len(self.tests), len(free)
        quantile = stats.t.ppf(0.5 + level / 2, max(n - q, 1))
        half = quantile * np.sqrt(np.clip(var, 0, None))
        mid = self.kv(P)
        return mid - half, mid + half


def _kv_jacobian(P, KC, KP, KD):
    """d Kv / d (KC, KP, KD) at pressures ``P`` [Torr]: columns 1, P/(1+KD P), -KP P^2/(1+KD P)^2."""
    P = np.asarray(P, dtype=float)
    denominator = 1 + KD * P
    return np.column_stack([np.ones_like(P), P / denominator, -KP * P**2 / denominator**2])


def fit_kv_gravimetric(tests, Av_cm2=None, dHs=678.0) -> dict[str, GravimetricKvFit]:
    """Fit ``Kv(P) = KC + KP P / (1 + KD P)`` to gravimetric sublimation tests, per vial class.

    Parameters
    ----------
    tests : str, Path or pandas.DataFrame
        A gravimetric-test file or table (see :func:`read_gravimetric_tests`).
    Av_cm2 : float, optional
        Outer vial area [cm^2] when the tests have no ``Av_cm2`` column.
    dHs : float
        Heat of sublimation [cal/g].

    Returns
    -------
    dict of str to GravimetricKvFit
        One fit per vial class (``position``), or ``{"all": fit}``.

    Raises
    ------
    DataError
        A vial class tested at fewer than 3 distinct chamber pressures (three coefficients need three),
        or with no more vials than coefficients (no residual to estimate the scatter from), or any
        problem :func:`read_gravimetric_tests` names.

    Notes
    -----
    Least squares on each vial's ``Kv`` (``scipy.optimize.least_squares``, trust-region reflective,
    ``KC, KP, KD >= 0``); the scatter of a vial's Kv is estimated from the residuals (so intervals use
    Student's t with ``n - p`` degrees of freedom). A coefficient at zero is held there and reported as
    at its bound; the rest get the Gauss-Newton covariance of :mod:`biotwin.calibration.statistics`.
    """
    from scipy.optimize import least_squares

    table = read_gravimetric_tests(tests, Av_cm2=Av_cm2, dHs=dHs)
    where = _where(tests)
    names = list(KV_UNITS)
    fits = {}
    for position, group in table.groupby("position", sort=True):
        pressures = np.unique(group["P_torr"])
        if pressures.size < 3:
            raise DataError(
                f"{where}: vial class {position!r} was tested at {pressures.size} chamber pressure(s) "
                f"({', '.join(f'{p * 1e3:g}' for p in pressures)} mTorr); KC, KP and KD need at least 3 "
                "(Pikal's tests span about 50-500 mTorr)"
            )
        if len(group) <= len(names):
            raise DataError(
                f"{where}: vial class {position!r} has {len(group)} vials; at least {len(names) + 1} are needed "
                "to estimate the scatter of Kv as well as KC, KP and KD"
            )
        P, kv = group["P_torr"].to_numpy(), group["Kv"].to_numpy()
        # start: KD = 0 (the straight line through the lowest and highest pressure), scaled unknowns
        slope = max((kv[P == P.max()].mean() - kv[P == P.min()].mean()) / (P.max() - P.min()), 1e-12)
        x0 = np.array([max(kv[P == P.min()].mean() - slope * P.min(), 1e-8), slope, 0.1])
        scale = np.array([max(x0[0], 1e-6), max(x0[1], 1e-6), 1.0])

        ref = float(np.median(kv))  # residuals relative to a typical Kv: O(1e-2), not O(1e-5)

        def residual(z, P=P, kv=kv, scale=scale, ref=ref):
            KC, KP, KD = z * scale
            return (vial_heat_transfer(P, KC, KP, KD) - kv) / ref

        def jac(z, P=P, scale=scale, ref=ref):
            return _kv_jacobian(P, *(z * scale)) * scale / ref

        sol = least_squares(
            residual, x0 / scale, jac=jac, bounds=(0, np.inf), method="trf", xtol=1e-15, ftol=1e-15, gtol=1e-15
        )
        theta = sol.x * scale
        fitted = vial_heat_transfer(P, *theta)
        res = kv - fitted
        bound = {n: ("lower" if theta[k] <= 1e-9 * scale[k] else None) for k, n in enumerate(names)}
        free = np.array([bound[n] is None for n in names])
        J = _kv_jacobian(P, *theta)
        weights = np.ones_like(P)
        cov, s2, _ = covariance(J, weights, res, free, weighted=False)
        se, lo, hi, _ = wald_intervals(theta, cov, len(P), int(free.sum()), weighted=False)
        rows = group.copy()
        rows["Kv_fit"], rows["residual"] = fitted, res
        corr = correlation(cov)
        fits[position] = GravimetricKvFit(
            position=position,
            values=dict(zip(names, map(float, theta), strict=True)),
            se={n: (float(se[k]) if free[k] else math.nan) for k, n in enumerate(names)},
            lower={n: (float(lo[k]) if free[k] else math.nan) for k, n in enumerate(names)},
            upper={n: (float(hi[k]) if free[k] else math.nan) for k, n in enumerate(names)},
            at_bound=bound,
            correlation=pd.DataFrame(corr, index=names, columns=names),
            identifiability=identifiability(J, weights, theta, names, free),
            tests=rows,
            s=float(math.sqrt(s2)),
            cov=cov,
        )
    return fits


def synthetic_gravimetric_tests(
    KC=2.75e-4,
    KP=8.93e-4,
    KD=0.46,
    pressures_mTorr=(50, 100, 200, 300, 500, 800),
    vials=5,
    T_shelf_C=-10.0,
    kv_sd_rel=0.03,
    duration_h=6.0,
    Av_cm2=3.80,
    dHs=678.0,
    seed=0,
    position="centre",
) -> pd.DataFrame:
    """Gravimetric tests made up from a known ``Kv(P)`` (for tests and training; labelled synthetic).

    Each vial's bottom temperature is set 8-14 K below the shelf (the colder the lower the pressure, as
    in Pikal et al. 1984) and its mass loss follows from the true Kv times a lognormal scatter of
    ``kv_sd_rel`` (vial-to-vial variation and weighing error together).

    Returns
    -------
    pandas.DataFrame
        Columns of :data:`GRAVIMETRIC_COLUMNS` plus ``vial`` and ``position``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for P in pressures_mTorr:
        true_kv = vial_heat_transfer(P * 1e-3, KC, KP, KD)
        for v in range(vials):
            dT = 14.0 - 6.0 * min(P / 800.0, 1.0) + rng.normal(0, 0.3)
            kv = true_kv * math.exp(rng.normal(0, kv_sd_rel))
            mass = kv * Av_cm2 * dT * 3600.0 * duration_h / dHs
            rows.append(
                {
                    "vial": f"{position}-{P:g}-{v + 1}",
                    "position": position,
                    "P_chamber_mTorr": float(P),
                    "T_shelf_C": T_shelf_C,
                    "T_bottom_C": T_shelf_C - dT,
                    "mass_loss_g": mass,
                    "duration_h": duration_h,
                }
            )
    return pd.DataFrame(rows)


def plot_kv_fits(fits: dict, P_max_torr=None):
    """Kv against chamber pressure: each vial (markers), the fitted curve and its 95 % band, per vial class.

    Parameters
    ----------
    fits : dict of str to GravimetricKvFit
        From :func:`fit_kv_gravimetric`.
    P_max_torr : float, optional
        Right end of the curve [Torr] (default: 1.1 x the highest tested pressure).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    fig = go.Figure()
    for k, (position, fit) in enumerate(fits.items()):
        color = colors[k % len(colors)]
        top = P_max_torr or 1.1 * float(fit.tests["P_torr"].max())
        P = np.linspace(0.0, top, 120)
        lo, hi = fit.kv_band(P)
        fig.add_trace(go.Scatter(x=P * 1e3, y=hi * 1e4, line={"width": 0}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(
                x=P * 1e3,
                y=lo * 1e4,
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(120,120,120,0.2)",
                name=f"{position}: 95 % band of the curve",
                hoverinfo="skip",
            )
        )
        v = fit.values
        fig.add_trace(
            go.Scatter(
                x=P * 1e3,
                y=fit.kv(P) * 1e4,
                line={"color": color},
                name=f"{position}: KC {v['KC']:.3g}, KP {v['KP']:.3g}, KD {v['KD']:.3g}",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=fit.tests["P_chamber_mTorr"],
                y=fit.tests["Kv"] * 1e4,
                mode="markers",
                marker={"color": color, "size": 7, "opacity": 0.7},
                name=f"{position}: vials",
            )
        )
    fig.update_layout(
        title="Vial heat-transfer coefficient from gravimetric sublimation tests",
        xaxis_title="chamber pressure [mTorr]",
        yaxis_title="Kv [10^-4 cal/s/K/cm²]",
        yaxis_rangemode="tozero",
        xaxis_rangemode="tozero",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
