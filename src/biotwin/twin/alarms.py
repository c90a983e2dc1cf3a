"""Deviation alarms on normalized innovations: a chi-square test per update and a CUSUM over updates.

A well-specified filter's normalized innovation squared ``NIS = v' S^-1 v`` of ``m`` measured values is
chi-square distributed with ``m`` degrees of freedom (Bar-Shalom, Li & Kirubarajan, *Estimation with
Applications to Tracking and Navigation*, 2001, sect. 5.4). Two rules, each with its threshold stated as
a false-alarm rate of a well-specified model:

* **chi-square**: one update with ``NIS`` above the ``1 - false_alarm_rate`` quantile of chi2(m)
  (a sudden upset: a missed feed, a probe failure);
* **CUSUM** (Page 1954, *Biometrika* 41:100) on the standardized statistic ``z = (NIS - m) / sqrt(2 m)``:
  ``s_k = max(0, s_{k-1} + z_k - k)``, alarm when ``s_k > h`` (a slow drift that no single update shows).
  ``h`` is found from the stated in-control average run length (updates between false alarms,
  ``cusum_run_length``) by the Markov-chain method of Brook & Evans (1972, *Biometrika* 59:539) for the
  exact distribution of ``z`` with one value per update (chi2(1), the most skewed: more values per update
  make false alarms rarer). Defaults: 2e-5 per update and 50 000 updates, about one false alarm per
  25 000 updates in all; the CHO fed-batch twin's 20 noise-only batches of 337 updates expect 0.3.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats


@functools.lru_cache(maxsize=64)
def cusum_run_length(k: float, h: float, m: int = 1, cells: int = 800) -> float:
    """In-control average run length [updates] of the CUSUM ``s = max(0, s + z - k) > h`` on
    ``z = (X - m)/sqrt(2 m)``, ``X ~ chi2(m)``.

    Brook & Evans (1972): ``cells`` states of width ``w = 2h/(2 cells - 1)``, state ``j`` at ``j w``
    standing for ``((j - 1/2) w, (j + 1/2) w]`` (state 0 for ``[0, w/2]``, the reflection at zero), the
    alarm beyond ``h = (cells - 1/2) w``; the mean run length from state 0 is the first entry of
    ``(I - R)^-1 1``.
    """
    width = 2.0 * h / (2 * cells - 1)
    states = np.arange(cells) * width
    dist = stats.chi2(m)
    scale = np.sqrt(2.0 * m)

    def below(target, s):  # P(s + z - k <= target)
        return dist.cdf(m + scale * (target - s + k))

    upper = below((np.arange(cells)[None, :] + 0.5) * width, states[:, None])
    lower = np.concatenate([np.zeros((cells, 1)), upper[:, :-1]], axis=1)
    R = upper - lower  # state 0 takes everything at or below w/2, the reflection at zero included
    arl = np.linalg.solve(np.eye(cells) - R, np.ones(cells))
    return float(arl[0])


@functools.lru_cache(maxsize=64)
def cusum_threshold(k: float, run_length: float) -> float:
    """The decision interval ``h`` whose in-control average run length is ``run_length`` [updates]
    (one value per update; :func:`cusum_run_length`). Raises ``ValueError`` when no ``h`` up to 60 gives it
    (an allowance near 0 accumulates noise too fast for a long run length)."""

    def gap(h):
        return np.log(cusum_run_length(k, h)) - np.log(run_length)

    if not gap(60.0) > 0:
        raise ValueError(
            f"no CUSUM threshold up to 60 gives an in-control run length of {run_length:g} updates with allowance "
            f"cusum_k={k:g}: raise cusum_k (0.5 is usual) or give cusum_h"
        )
    if not gap(0.5) < 0:
        raise ValueError(
            f"an in-control run length of {run_length:g} updates is shorter than the CUSUM's with allowance "
            f"cusum_k={k:g} and h 0.5 ({cusum_run_length(k, 0.5):.3g}): lower cusum_k or ask for a longer run length"
        )
    return float(optimize.brentq(gap, 0.5, 60.0, xtol=1e-4))


#: ``h`` of the default CUSUM (allowance 0.5, 50 000 updates): :func:`cusum_threshold` takes about a second,
#: so it is kept here (``tests/unit/test_alarms.py`` checks it against the Markov chain).
KNOWN_THRESHOLDS = {(0.5, 50_000.0): 16.635}


@dataclass
class AlarmRule:
    """Thresholds of the deviation alarms.

    Parameters
    ----------
    false_alarm_rate : float
        Probability that one update of a well-specified model raises the chi-square alarm [-]
        (default 2e-5).
    cusum_k : float
        Allowance of the CUSUM on the standardized NIS [-] (default 0.5: tuned to a drift of one
        standard deviation).
    cusum_h : float, optional
        Decision interval [-]; given, it overrides ``cusum_run_length`` (whose value it then implies).
    cusum_run_length : float
        Average number of updates of a well-specified model between two CUSUM alarms [-] (default 50 000);
        sets ``cusum_h``.
    """

    false_alarm_rate: float = 2e-5
    cusum_k: float = 0.5
    cusum_h: float | None = None
    cusum_run_length: float = 50_000.0
    _cusum: float = field(default=0.0, repr=False)
    _limits: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not 0 < self.false_alarm_rate < 0.5:
            raise ValueError(f"false_alarm_rate must be in (0, 0.5), got {self.false_alarm_rate!r}")
        if self.cusum_k < 0:
            raise ValueError(f"cusum_k must be >= 0, got {self.cusum_k!r}")
        if self.cusum_h is None:
            if not 10 <= self.cusum_run_length <= 1e9:
                raise ValueError(f"cusum_run_length must be between 10 and 1e9 updates, got {self.cusum_run_length!r}")
            key = (float(self.cusum_k), float(self.cusum_run_length))
            self.cusum_h = KNOWN_THRESHOLDS.get(key) or cusum_threshold(*key)
        elif not self.cusum_h > 0:
            raise ValueError(f"cusum_h must be > 0, got {self.cusum_h!r}")
        else:
            self.cusum_run_length = cusum_run_length(float(self.cusum_k), float(self.cusum_h))

    def threshold(self, m: int) -> float:
        """The chi-square threshold for ``m`` measured values."""
        if m not in self._limits:
            self._limits[m] = float(stats.chi2.ppf(1.0 - self.false_alarm_rate, m))
        return self._limits[m]

    def check(self, time: float, nis: float, m: int, contributions: dict) -> list[dict]:
        """Alarms raised by one update's ``nis`` over ``m`` values; ``contributions``: ``{variable: z^2}``."""
        if m == 0 or not np.isfinite(nis):
            return []
        drivers = [k for k, _ in sorted(contributions.items(), key=lambda kv: -kv[1])][:3]
        alarms = []
        limit = self.threshold(m)
        if nis > limit:
            alarms.append(
                {
                    "update_time": time,
                    "kind": "chi-square",
                    "variables": drivers,
                    "statistic": float(nis),
                    "threshold": limit,
                    "message": f"NIS {nis:.1f} above {limit:.1f} (chi-square, {m} values, false-alarm rate "
                    f"{self.false_alarm_rate:g} per update): {', '.join(drivers)} far from the model",
                }
            )
        z = (nis - m) / np.sqrt(2.0 * m)
        self._cusum = max(0.0, self._cusum + z - self.cusum_k)
        if self._cusum > self.cusum_h:
            alarms.append(
                {
                    "update_time": time,
                    "kind": "cusum",
                    "variables": drivers,
                    "statistic": float(self._cusum),
                    "threshold": self.cusum_h,
                    "message": f"CUSUM {self._cusum:.1f} above {self.cusum_h:.3g} (in-control run length "
                    f"{self.cusum_run_length:.3g} updates): innovations drift ({', '.join(drivers)})",
                }
            )
            self._cusum = 0.0  # restart after an alarm
        return alarms
