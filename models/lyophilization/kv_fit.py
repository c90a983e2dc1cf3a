"""The vial heat-transfer coefficient from a measured primary-drying time (LyoPRONTO's "unknown Kv" tool).

With the product resistance known (``R0, A1, A2``), the drying time of a recipe falls monotonically as
the vial heat-transfer coefficient rises, so one measured end of primary drying (from the Pirani /
capacitance-manometer convergence or the product thermocouples) fixes a constant ``Kv``: here written
``KC`` with ``KP = KD = 0`` (LyoPRONTO's form for this tool; the pressure dependence needs runs at two or
more pressures). Each trial ``Kv`` is a simulation of the recipe; the root is bracketed by widening
steps from the recipe's own ``Kv`` (inside ``kv_range``) and found by Brent's method
(``scipy.optimize.brentq``).

    Kv(P) = KC + KP P / (1 + KD P)          [cal/s/K/cm^2]   Pikal et al. 1984, J Pharm Sci 73:1224
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from biotwin.core.errors import ScenarioError
from biotwin.processes.freeze_drying import vial_heat_transfer


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
    for key in ("shelf_temperature_C", "chamber_pressure_mTorr"):
        points = raw[key]
        if points[-1][0] < horizon:
            raw[key] = [*points, [horizon, points[-1][1]]]
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
    pressure = raw["chamber_pressure_mTorr"][0][1] * 1e-3  # [torr]
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
