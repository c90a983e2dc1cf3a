"""The solver path: PyNumero library, cyipopt, options, failures."""

import pyomo.environ as pyo
import pytest

from biotwin.core.errors import SolverError
from biotwin.engine import solver


def test_pynumero_library_loads_from_the_environment():
    ok, where = solver.pynumero_library_status()
    assert ok, where


def test_tiny_nlp():
    stats = solver.tiny_nlp_check()
    assert stats.termination_condition == "optimal"
    assert stats.iterations > 0
    assert stats.options["max_wall_time"] == 600.0  # every solve has a time limit, optimizations included


def test_default_options_recorded_and_overridable():
    assert solver.DEFAULT_IPOPT_OPTIONS["mumps_scaling"] == 0
    assert solver.DEFAULT_IPOPT_OPTIONS["mumps_permuting_scaling"] == 0
    opts = solver.solver_options({"tol": 1e-6, "mumps_scaling": None})
    assert opts["tol"] == 1e-6 and "mumps_scaling" not in opts
    assert solver.DEFAULT_IPOPT_OPTIONS["tol"] == 1e-8, "overrides must not change the defaults"


def test_infeasible_problem_raises_with_residuals():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=1.0)
    m.y = pyo.Var(initialize=1.0)
    m.circle = pyo.Constraint(expr=m.x**2 + m.y**2 == -1)
    m.line = pyo.Constraint(expr=m.x + m.y == 1)
    m.obj = pyo.Objective(expr=m.x)
    with pytest.raises(SolverError) as info:
        solver.solve(m, what="an impossible circle")
    err = info.value
    assert err.termination_condition == "infeasible"
    assert err.iterations > 0
    assert err.residuals and err.residuals[0][0] == "circle"
    assert "an impossible circle" in str(err) and "circle:" in str(err) and "iterations" in str(err)


def test_iteration_limit_is_a_failure():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=-1.2)
    m.y = pyo.Var(initialize=1.0)
    m.obj = pyo.Objective(expr=(1 - m.x) ** 2 + 100 * (m.y - m.x**2) ** 2)
    with pytest.raises(SolverError, match="maxIterations"):
        solver.solve(m, options={"max_iter": 2})


def test_degrees_of_freedom():
    m = pyo.ConcreteModel()
    m.x = pyo.Var()
    m.y = pyo.Var()
    m.p = pyo.Var(initialize=2.0)
    m.p.fix()
    m.c1 = pyo.Constraint(expr=m.x + m.y == m.p)
    assert solver.degrees_of_freedom(m) == (2, 1)
    m.c2 = pyo.Constraint(expr=m.x - m.y == 0)
    assert solver.degrees_of_freedom(m) == (2, 2)
