"""Deviation alarms on normalized innovations: a chi-square test per update and a CUSUM over updates.

A well-specified filter's normalized innovation squared ``NIS = v' S^-1 v`` of ``m`` measured values is
chi-square distributed with ``m`` degrees of freedom (Bar-Shalom, Li & Kirubarajan, *Estimation with
Applications to Tracking and Navigation*, 2001, sect. 5.4). Two rules:

* **chi-square**: one update with ``NIS`` above the ``1 - false_alarm_rate`` quantile of chi2(m)
  (a sudden upset: a missed feed, a probe failure);
* **CUSUM** (Page 1954, *Biometrika* 41:100) on the standardized statistic ``(NIS - m) / sqrt(2 m)``:
  ``s_k = max(0, s_{k-1} + z_k - k)``, alarm when ``s_k > h`` (a slow drift that no single update shows).
  With ``k = 0.5`` and ``h = 8``, noise alone (z of mean 0, standard deviation 1, right-skewed)
  runs on average several hundred updates between false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats


@dataclass
class AlarmRule:
    """Thresholds of the deviation alarms.

    Parameters
    ----------
    false_alarm_rate : float
        Probability that one update of a well-specified model raises the chi-square alarm [-].
    cusum_k, cusum_h : float
        Allowance and decision interval of the CUSUM on the standardized NIS [-].
    """

    false_alarm_rate: float = 1e-3
    cusum_k: float = 0.5
    cusum_h: float = 8.0
    _cusum: float = field(default=0.0, repr=False)

    def __post_init__(self):
        if not 0 < self.false_alarm_rate < 0.5:
            raise ValueError(f"false_alarm_rate must be in (0, 0.5), got {self.false_alarm_rate!r}")
        if self.cusum_k < 0 or self.cusum_h <= 0:
            raise ValueError("cusum_k must be >= 0 and cusum_h > 0")

    def threshold(self, m: int) -> float:
        """The chi-square threshold for ``m`` measured values."""
        return float(stats.chi2.ppf(1.0 - self.false_alarm_rate, m))

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
                    "message": f"CUSUM {self._cusum:.1f} above {self.cusum_h:g}: innovations drift "
                    f"({', '.join(drivers)})",
                }
            )
            self._cusum = 0.0  # restart after an alarm
        return alarms
