"""Piecewise-linear input programs (feed rates, shelf temperature, pressure, ...).

A program is a list of ``[time, value]`` points with non-decreasing times. Two
points at the same time make a step. Between points the value is linear.

At a step time the value used by the collocation equations is the *left*
limit: with Radau collocation the equations at an element's right end belong to
that element, so the old value holds up to and including the step time, and the
new value from the next collocation point on. At the first time the right limit
is used (there is no left).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from biotwin.core import checks
from biotwin.core.errors import ScenarioError


@dataclass(frozen=True)
class Program:
    """A validated piecewise-linear program.

    Attributes
    ----------
    name : str
        The input it drives.
    times : numpy.ndarray
        Point times [model time unit], non-decreasing.
    values : numpy.ndarray
        Point values [the input's model unit].
    """

    name: str
    times: np.ndarray
    values: np.ndarray

    @classmethod
    def from_points(cls, name: str, points, where: str = "scenario", scale: float = 1.0) -> Program:
        """Validate ``[[t, v], ...]`` points; ``scale`` converts values to model units."""
        label = f"{where}: input '{name}'"
        if not isinstance(points, (list, tuple)) or len(points) == 0:
            raise ScenarioError(f"{label}: expected a non-empty list of [time, value] points")
        times, values = [], []
        for i, point in enumerate(points):
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise ScenarioError(f"{label}, point {i}: expected [time, value], got {point!r}")
            for x in point:
                if not checks.is_number(x):
                    raise ScenarioError(f"{label}, point {i}: {point!r} has a non-numeric or non-finite entry")
            times.append(float(point[0]))
            values.append(float(point[1]) * scale)
        t = np.asarray(times)
        if t[0] < 0:
            raise ScenarioError(f"{label}, point 0: negative time {t[0]}")
        for i in range(1, len(t)):
            if t[i] < t[i - 1]:
                raise ScenarioError(
                    f"{label}, point {i}: time {t[i]} is before the previous time {t[i - 1]} "
                    "(points must be sorted by time)"
                )
            if i >= 2 and t[i] == t[i - 1] == t[i - 2]:
                raise ScenarioError(f"{label}, point {i}: three points at time {t[i]}; a step needs exactly two")
        return cls(name, t, np.asarray(values))

    @property
    def corners(self) -> list[float]:
        """Times where the program's slope or value changes."""
        return sorted(set(self.times.tolist()))

    def check_covers(self, t_end: float, where: str = "scenario"):
        """Raise if the program does not span ``[0, t_end]``."""
        if self.times[0] > 0:
            raise ScenarioError(f"{where}: input '{self.name}' starts at {self.times[0]}, not at time 0")
        if self.times[-1] < t_end:
            raise ScenarioError(
                f"{where}: input '{self.name}' ends at {self.times[-1]}, before the end of the "
                f"simulation ({t_end}); extend the program or shorten t_end"
            )

    def __call__(self, t, side: str = "left") -> np.ndarray:
        """Value at time(s) ``t``.

        Parameters
        ----------
        t : float or array
        side : {"left", "right"}
            Which limit to take at a step.
        """
        t = np.atleast_1d(np.asarray(t, dtype=float))
        times, values = self.times, self.values
        # j: first point after t (right limit) or at/after t (left limit); at a step the segment
        # ending at the step (left) or starting at it (right) is interpolated
        j = np.searchsorted(times, t, side="left" if side == "left" else "right")
        inside = np.clip(j, 1, len(times) - 1)
        t0, t1 = times[inside - 1], times[inside]
        v0, v1 = values[inside - 1], values[inside]
        with np.errstate(divide="ignore", invalid="ignore"):
            interpolated = np.where(t1 == t0, v1, v0 + (v1 - v0) * (t - t0) / np.where(t1 == t0, 1.0, t1 - t0))
        return np.where(j == 0, values[0], np.where(j >= len(times), values[-1], interpolated)).astype(float)

    @cached_property
    def _points(self) -> tuple[list[float], list[float]]:
        return self.times.tolist(), self.values.tolist()

    def value_at(self, t: float, side: str = "left") -> float:
        """Value at one time ``t`` (as ``self(t, side)[0]``, without numpy: the forward integration's
        right-hand side calls this tens of thousands of times per run)."""
        times, values = self._points
        j = bisect.bisect_left(times, t) if side == "left" else bisect.bisect_right(times, t)
        if j == 0:
            return float(values[0])
        if j >= len(times):
            return float(values[-1])
        t0, t1, v0, v1 = times[j - 1], times[j], values[j - 1], values[j]
        return float(v1) if t1 == t0 else float(v0 + (v1 - v0) * (t - t0) / (t1 - t0))

    def at_collocation_points(self, points, t_start: float) -> np.ndarray:
        """:meth:`at_collocation_point` at many points at once."""
        points = np.asarray(points, dtype=float)
        return np.where(points <= t_start, self(points, side="right"), self(points, side="left"))

    def at_collocation_point(self, t: float, t_start: float) -> float:
        """Value the collocation equations use at ``t``: left limit, right limit at ``t_start``."""
        return float(self.at_collocation_points([t], t_start)[0])
