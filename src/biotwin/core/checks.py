"""Plausibility checks shared by every recipe reader: ranges a real process can run, and the switch
that lets a user run outside them on purpose.

A value outside its physical domain (a negative fill volume, a zero thermal conductivity) is always
an error. A value inside the physical domain but outside what real equipment runs (a shelf at
+293 degC, 20000 mTorr, a 336-day culture) is usually a unit mistake: it is an error too, unless the
user says it is intended, with ``allow_unusual: true`` in the recipe, ``--allow-unusual`` on the
command line, or :func:`allow_unusual` in Python.

Parameter values outside their ``parameters.yaml`` bounds are treated the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

from biotwin.core.errors import ScenarioError

_ALLOW = contextvars.ContextVar("biotwin_allow_unusual", default=False)

#: Plausible ranges of recipe quantities: ``quantity -> (low, high, unit, what real equipment runs)``.
RANGES: dict[str, tuple[float, float, str, str]] = {
    "shelf_temperature": (-80.0, 150.0, "degC", "freeze-dryer shelves run between -80 and +150 degC"),
    "chamber_pressure": (10.0, 2000.0, "mTorr", "freeze-dryer chambers run between 10 and 2000 mTorr"),
    "culture_duration": (0.0, 60.0 * 24.0, "h", "a cell culture lasts at most 60 days"),
    "lyophilization_duration": (0.0, 1000.0, "h", "a freeze-drying cycle lasts at most 1000 h"),
}


class UnusualValueError(ScenarioError):
    """A recipe value or parameter is physically possible but outside what real processes run."""


def unusual_allowed() -> bool:
    """True inside :func:`allow_unusual` (or while reading a recipe that says ``allow_unusual: true``)."""
    return _ALLOW.get()


@contextlib.contextmanager
def allow_unusual(allow: bool = True):
    """Let values outside the plausible ranges and parameter bounds through, inside the ``with`` block.

    Examples
    --------
    >>> with biotwin.core.checks.allow_unusual():          # doctest: +SKIP
    ...     model.simulate("my_recipe", params={"mu_max": 0.2})
    """
    token = _ALLOW.set(bool(allow) or _ALLOW.get())
    try:
        yield
    finally:
        _ALLOW.reset(token)


def unusual(message: str) -> None:
    """Raise :class:`UnusualValueError` with ``message`` and the way to allow it, unless allowed."""
    if not _ALLOW.get():
        raise UnusualValueError(
            f"{message} -- if this is intended, say so: 'allow_unusual: true' in the recipe, "
            "--allow-unusual on the command line, or biotwin.core.checks.allow_unusual() in Python"
        )


def in_range(values, quantity: str, where: str, scale: float = 1.0, unit_given: str | None = None) -> None:
    """Check that every value of ``quantity`` lies in its plausible range (see :data:`RANGES`).

    Parameters
    ----------
    values : float or iterable of float
        In the range's unit after multiplying by ``scale``.
    quantity : str
        A key of :data:`RANGES`.
    where : str
        File and key, for the message.
    scale : float
        Factor from the given unit to the range's unit.
    unit_given : str, optional
        The unit the values were written in (for the message; default the range's unit).
    """
    lo, hi, unit, why = RANGES[quantity]
    vals = [values] if isinstance(values, numbers.Real) else list(values)
    for v in vals:
        x = float(v) * scale
        if not (lo <= x <= hi):
            shown = f"{float(v):g} {unit_given}" if unit_given and unit_given != unit else f"{x:g} {unit}"
            unusual(
                f"{where}: {shown} is outside the plausible range [{lo:g}, {hi:g}] {unit} ({why}); is the unit right?"
            )
            return


def is_number(x) -> bool:
    """True for a finite real number (numpy's included); False for a bool, NaN, infinity, text or None."""
    return not isinstance(x, bool) and isinstance(x, numbers.Real) and math.isfinite(x)


def sign_problem(x: float, *, positive: bool = False, non_negative: bool = False) -> str | None:
    """``"must be positive"`` or ``"must not be negative"`` when ``x`` breaks the sign asked for, else None."""
    if positive and not x > 0:
        return "must be positive"
    if non_negative and x < 0:
        return "must not be negative"
    return None


def number(x, where: str, *, positive: bool = False, non_negative: bool = False) -> float:
    """A finite real number, optionally positive or non-negative; else a :class:`ScenarioError` naming ``where``."""
    if not is_number(x):
        raise ScenarioError(f"{where}: expected a finite number, got {x!r}")
    problem = sign_problem(x, positive=positive, non_negative=non_negative)
    if problem:
        raise ScenarioError(f"{where}: {problem}, got {x}")
    return float(x)
