"""Finite-element mesh refinement from a forward integration, before the collocation solve.

A collocation solution is a polynomial of degree ``ncp`` on each finite element. Where the true
trajectory has a sharp turn inside an element -- a nutrient running out, the ice of a vial gone --
the polynomial cannot follow it: it undershoots, and the error can stay in the states for the rest
of the run (a CHO culture starved at high density: glucose -0.31 mM and final titer 1.135 g/L on 77
elements, against 1.169 g/L from the adaptive integrator). This module reads the forward integration
the engine computes anyway to start Ipopt (:mod:`biotwin.engine.forward`), measures on each element
how far the element's collocation polynomial through the integrated states is from the integrated
states between the collocation points, and halves the elements where that is above a tolerance,
until none is. The collocation solve then runs once, on the refined grid.

The interpolation error of the true trajectory is a lower bound on what the collocation polynomial
can achieve on that element, so an element that fails it is certainly too long; the solved result's
agreement with the integrator is what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

#: Default tolerance of the mesh refinement: the largest interpolation error allowed on an element, as a share
#: of each state's largest magnitude over the run [dimensionless].
MESH_TOL = 1e-4
#: The refinement stops at this many times the elements it started from (and says the tolerance is not met).
MAX_GROWTH = 4
#: No element is halved more than this many times (2**-MAX_LEVEL of the shortest starting element): a trajectory
#: that runs into a singularity (a vessel drained to zero volume) is not chased into it.
MAX_LEVEL = 8


def radau_points(ncp: int) -> np.ndarray:
    """The ``ncp`` Radau IIA collocation points on the unit element (0, 1], the last at 1 [dimensionless].

    Roots of ``P_ncp(2s - 1) - P_(ncp-1)(2s - 1)`` (``P`` Legendre polynomials; Hairer & Wanner,
    Solving ODEs II, sec. IV.5): what ``pyomo.dae``'s ``LAGRANGE-RADAU`` scheme uses.
    """
    if ncp < 1:
        raise ValueError(f"ncp must be a positive integer, got {ncp!r}")
    coeffs = np.zeros(ncp + 1)
    coeffs[ncp], coeffs[ncp - 1] = 1.0, -1.0
    roots = np.sort(legendre.legroots(coeffs).real)
    return (roots + 1.0) / 2.0


def _check_points(nodes: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive interpolation nodes (the element start and the collocation points)."""
    return 0.5 * (nodes[:-1] + nodes[1:])


def _lagrange_matrix(nodes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``L[i, j]``: the j-th Lagrange basis polynomial of ``nodes`` at ``at[i]``."""
    L = np.ones((at.size, nodes.size))
    for j, nj in enumerate(nodes):
        for k, nk in enumerate(nodes):
            if k != j:
                L[:, j] *= (at - nk) / (nj - nk)
    return L


def interpolation_errors(states_at, grid, ncp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the largest error of the degree-``ncp`` polynomial through the states at the element
    start and its Radau points, between those points, as a share of each state's scale.

    Parameters
    ----------
    states_at : callable
        ``states_at(times) -> array (len(times), n_x)`` [state units], e.g. a
        :class:`~biotwin.engine.forward.DenseTrajectory`.
    grid : sequence of float
        Element boundaries [time unit], increasing.
    ncp : int
        Collocation points per element.

    Returns
    -------
    errors : numpy.ndarray
        ``(n_elements,)`` largest scaled error [dimensionless].
    worst_state : numpy.ndarray
        ``(n_elements,)`` index of the state where it occurs.
    """
    g = np.asarray(grid, dtype=float)
    return _element_errors(states_at, g[:-1], g[1:], ncp, _state_scale(states_at, g))


def _state_scale(states_at, grid) -> np.ndarray:
    """Each state's largest magnitude on the grid's boundaries and midpoints [state units] (at least 1e-12)."""
    g = np.asarray(grid, dtype=float)
    x = states_at(np.concatenate([g, 0.5 * (g[:-1] + g[1:])]))
    return np.maximum(np.max(np.abs(x), axis=0), 1e-12)


def _element_errors(states_at, starts, ends, ncp, scale) -> tuple[np.ndarray, np.ndarray]:
    nodes = np.concatenate([[0.0], radau_points(ncp)])
    checks = _check_points(nodes)
    L = _lagrange_matrix(nodes, checks)
    h = (ends - starts)[:, None]
    n_el = starts.size
    x_nodes = states_at((starts[:, None] + nodes[None, :] * h).ravel()).reshape(n_el, nodes.size, -1)
    x_chk = states_at((starts[:, None] + checks[None, :] * h).ravel()).reshape(n_el, checks.size, -1)
    err = np.abs(np.einsum("cn,enx->ecx", L, x_nodes) - x_chk) / scale
    per_state = err.max(axis=1)  # (n_el, n_x)
    return per_state.max(axis=1), per_state.argmax(axis=1)


def _derivative_at_start(nodes: np.ndarray) -> np.ndarray:
    """``w[j]``: the derivative at 0 of the j-th Lagrange basis polynomial of ``nodes`` (nodes[0] = 0)."""
    n = nodes.size
    w = np.zeros(n)
    for j in range(n):
        others = [k for k in range(n) if k != j]
        denom = np.prod([nodes[j] - nodes[k] for k in others])
        # d/ds prod_k (s - n_k) at s = 0: for each factor left out, the product of the others at 0
        w[j] = sum(np.prod([-nodes[k] for k in others if k != left]) for left in others) / denom
    return w


def collocation_defects(x, dx, grid, ncp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per element of a solved collocation grid, how far the element's polynomial is from the equations
    at its start, where Radau collocation does not enforce them: ``h |p'(a) - f(x(a))|`` as a share of each
    state's scale [dimensionless].

    Within an element that holds a sharp turn of the trajectory the polynomial bends away from the slope
    the equations give at its start, so the defect flags the elements a re-used grid no longer resolves,
    without integrating again (:meth:`Simulation.run` re-refines then). ``f(x(a))`` is the derivative variable
    at the element start: the model's balances hold there (at the first time too).

    Parameters
    ----------
    x, dx : numpy.ndarray
        States and their time derivatives at every point of the discretized time set, ``(n_points, n_x)``,
        points in time order (element starts and ``ncp`` Radau points per element).
    grid : sequence of float
        Element boundaries [time unit].
    ncp : int

    Returns
    -------
    defects : numpy.ndarray
        ``(n_elements,)`` largest scaled defect [dimensionless].
    worst_state : numpy.ndarray
        ``(n_elements,)`` index of the state where it occurs.
    """
    g = np.asarray(grid, dtype=float)
    n_el = g.size - 1
    x, dx = np.asarray(x, dtype=float), np.asarray(dx, dtype=float)
    if x.shape[0] != n_el * ncp + 1:
        raise ValueError(f"expected {n_el * ncp + 1} points for {n_el} elements of {ncp}, got {x.shape[0]}")
    w = _derivative_at_start(np.concatenate([[0.0], radau_points(ncp)]))
    idx = np.arange(n_el)[:, None] * ncp + np.arange(ncp + 1)[None, :]  # (n_el, ncp + 1) point indices
    h = np.diff(g)[:, None]
    slope = np.einsum("j,ejx->ex", w, x[idx]) / h  # p'(a) per element
    scale = np.maximum(np.max(np.abs(x), axis=0), 1e-12)
    d = h * np.abs(slope - dx[idx[:, 0]]) / scale
    return d.max(axis=1), d.argmax(axis=1)


@dataclass
class MeshReport:
    """What the refinement did: the tolerance, elements before and after, the largest interpolation error
    left, the state and time where it is, and whether the tolerance was met."""

    tolerance: float
    elements_before: int
    elements_after: int
    max_error: float
    worst_state: str
    worst_time: float
    met: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def refine_grid(states_at, grid, ncp: int, tol: float = MESH_TOL, state_names=None, max_growth: int = MAX_GROWTH):
    """Halve every element whose interpolation error is above ``tol``, until none is (or the grid has grown
    ``max_growth`` times, or an element is ``2**-MAX_LEVEL`` of the shortest starting element).

    Parameters
    ----------
    states_at : callable
        The forward integration, ``states_at(times) -> (len(times), n_x)``.
    grid : sequence of float
        Element boundaries to start from [time unit]; all are kept.
    ncp : int
        Collocation points per element.
    tol : float
        Largest interpolation error allowed, as a share of each state's largest magnitude [dimensionless].
    state_names : sequence of str, optional
        For the report.

    Returns
    -------
    grid : list of float
        The refined boundaries.
    report : MeshReport
    """
    if not (isinstance(tol, float | int) and not isinstance(tol, bool) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"mesh tolerance must be a positive number, got {tol!r}")
    grid = np.asarray(grid, dtype=float)
    start = grid.size - 1
    limit = max_growth * start
    shortest = np.min(np.diff(grid)) / 2**MAX_LEVEL
    scale = _state_scale(states_at, grid)
    while True:
        errors, worst = _element_errors(states_at, grid[:-1], grid[1:], ncp, scale)
        bad = np.nonzero((errors > tol) & (np.diff(grid) >= 2 * shortest))[0]
        if not bad.size or grid.size - 1 + bad.size > limit:
            break
        grid = np.sort(np.concatenate([grid, 0.5 * (grid[bad] + grid[bad + 1])]))
    k = int(np.argmax(errors))
    names = list(state_names) if state_names is not None else []
    report = MeshReport(
        tolerance=float(tol),
        elements_before=int(start),
        elements_after=int(grid.size - 1),
        max_error=float(errors[k]),
        worst_state=names[worst[k]] if worst[k] < len(names) else str(int(worst[k])),
        worst_time=float(0.5 * (grid[k] + grid[k + 1])),
        met=bool(errors[k] <= tol),
    )
    return grid.tolist(), report


__all__ = [
    "MAX_GROWTH",
    "MAX_LEVEL",
    "MESH_TOL",
    "MeshReport",
    "collocation_defects",
    "interpolation_errors",
    "radau_points",
    "refine_grid",
]
