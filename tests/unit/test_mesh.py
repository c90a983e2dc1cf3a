"""Mesh refinement (biotwin.engine.mesh) on functions whose answer is known: Pyomo's own Radau points, a
polynomial the elements represent exactly, and a kink that only halving towards it resolves."""

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo import dae

from biotwin.engine.mesh import interpolation_errors, radau_points, refine_grid


@pytest.mark.parametrize("ncp", [1, 2, 3, 5])
def test_radau_points_are_pyomos(ncp):
    m = pyo.ConcreteModel()
    m.t = dae.ContinuousSet(bounds=(0, 1))
    m.x = pyo.Var(m.t)
    m.dx = dae.DerivativeVar(m.x, wrt=m.t)
    m.c = pyo.Constraint(m.t, rule=lambda m, t: m.dx[t] == 1)
    pyo.TransformationFactory("dae.collocation").apply_to(m, nfe=1, ncp=ncp, scheme="LAGRANGE-RADAU")
    # pyomo.dae rounds the points it adds to a ContinuousSet to 6 decimals (1/3 -> 0.333333)
    assert radau_points(ncp) == pytest.approx(sorted(m.t)[1:], abs=1e-6)


def test_a_polynomial_of_the_element_degree_needs_no_refinement():
    def cubic(t):
        t = np.asarray(t, dtype=float)
        return np.column_stack([1 + t - 0.3 * t**2 + 0.05 * t**3, 2.0 + 0 * t])

    grid = [0.0, 1.0, 2.5, 4.0]
    errors, _ = interpolation_errors(cubic, grid, 3)
    assert errors.max() < 1e-13
    refined, report = refine_grid(cubic, grid, 3, 1e-8)
    assert refined == grid and report.met and report.elements_after == 3


def test_a_kink_is_approached_by_halving_and_the_report_names_it():
    # substrate used at a constant rate until it runs out at t = 0.37: S = max(1 - t/0.37, 0)
    def substrate(t):
        t = np.asarray(t, dtype=float)
        return np.column_stack([np.maximum(1 - t / 0.37, 0.0), np.ones_like(t)])

    grid = np.linspace(0, 1, 5).tolist()
    errors, worst = interpolation_errors(substrate, grid, 3)
    assert np.nonzero(errors > 1e-6)[0].tolist() == [1]  # only the element holding the kink
    assert worst[1] == 0
    refined, report = refine_grid(substrate, grid, 3, 1e-3, state_names=["S", "one"])
    print(f"kink at 0.37: {report.elements_before} -> {report.elements_after} elements, error {report.max_error:.1e}")
    assert report.met and report.max_error <= 1e-3 and report.worst_state == "S"
    assert set(grid) <= set(refined)  # every boundary kept
    h = np.diff(refined)
    k = int(np.searchsorted(refined, 0.37)) - 1
    assert h[k] < 0.25 / 2**5  # the kink's element was halved at least five times
    assert h.max() == pytest.approx(0.25)  # elements away from it were left alone
    # a grid not allowed to grow enough says so instead of pretending
    _, capped = refine_grid(substrate, grid, 3, 1e-9, max_growth=2)
    assert not capped.met and capped.elements_after <= 8


@pytest.mark.parametrize("tol", [0.0, -1e-3, float("nan"), "1e-3"])
def test_a_tolerance_that_is_no_positive_number_is_refused(tol):
    with pytest.raises(ValueError, match="mesh tolerance"):
        refine_grid(lambda t: np.zeros((len(t), 1)), [0.0, 1.0], 3, tol)


def test_model_simulate_defaults_to_the_engines_tolerance():
    import inspect

    from biotwin.core.model import Model
    from biotwin.engine.mesh import MESH_TOL

    assert inspect.signature(Model.simulate).parameters["mesh_tol"].default == MESH_TOL
