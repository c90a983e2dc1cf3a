"""Ipopt through cyipopt (Pyomo's PyNumero interface): options, solve, errors.

The default options live in :data:`DEFAULT_IPOPT_OPTIONS` and nowhere else.
They were chosen from measurements (``benchmarks/engine.py``; DESIGN.md, "Solver
path"): with Ipopt's default MUMPS scaling a 640-element collocation problem did
not finish in 5 minutes, with ``mumps_permuting_scaling=0`` and
``mumps_scaling=0`` it solves in about 2 s.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
from pyomo.opt import TerminationCondition

from biotwin.core._config import configure_pyomo_config_dir
from biotwin.core.errors import SolverError, SolverSetupError

#: Ipopt options used by every biotwin solve unless overridden.
DEFAULT_IPOPT_OPTIONS: dict[str, object] = {
    # MUMPS: the default scaling/permutation makes large collocation systems
    # crawl (measured: >300 s vs ~2 s at 640 elements); see benchmarks/engine.py.
    "mumps_permuting_scaling": 0,
    "mumps_scaling": 0,
    # Collocation systems from a forward-simulation start converge in tens of
    # iterations; 3000 leaves room for estimation problems from poor starts.
    "max_iter": 3000,
    # every solve ends: an iteration cap alone is no time limit (a growth rate 100x its default ran past ten
    # minutes within 3000 iterations). The longest solves here take tens of seconds (feed optimization
    # 21.5 s, HEK293 calibration 34 s); simulations use a 60 s limit (engine.simulation.SIMULATION_OPTIONS).
    "max_wall_time": 600.0,
    "tol": 1e-8,
    "print_level": 0,
    "sb": "yes",  # no Ipopt banner
}

_OK = {TerminationCondition.optimal, TerminationCondition.locallyOptimal, TerminationCondition.feasible}


@dataclass
class SolveStats:
    """What one Ipopt solve did.

    Attributes
    ----------
    termination_condition : str
    iterations : int
    wall_time_s : float
        Wall time of the whole solve call including the NLP interface set-up [s].
    objective : float or None
    options : dict
        The Ipopt options actually used.
    """

    termination_condition: str
    iterations: int
    wall_time_s: float
    objective: float | None = None
    options: dict = field(default_factory=dict)
    message: str = ""
    nlp: object = field(default=None, repr=False)


def solver_options(overrides: dict | None = None) -> dict:
    """Default Ipopt options updated with ``overrides`` (a ``None`` value removes a key)."""
    options = dict(DEFAULT_IPOPT_OPTIONS)
    for key, value in (overrides or {}).items():
        if value is None:
            options.pop(key, None)
        else:
            options[key] = value
    return options


def pynumero_library_status() -> tuple[bool, str]:
    """Whether PyNumero's ASL library loads, and where it was looked for.

    Returns
    -------
    (bool, str)
        ``(True, path)`` when it loads, else ``(False, reason)``.
    """
    folder = configure_pyomo_config_dir()
    from pyomo.common.fileutils import find_library

    path = find_library("pynumero_ASL")
    if path is None:
        return False, f"libpynumero_ASL not found (looked in {folder / 'lib'}); run `biotwin setup-solver`"
    try:
        from pyomo.contrib.pynumero.asl import AmplInterface

        if not AmplInterface.available():
            return False, f"{path} exists but does not load"
    except Exception as exc:  # pragma: no cover - depends on the machine  # noqa: BLE001
        return False, f"{path}: {exc}"
    return True, path


def _check_available():
    try:
        import cyipopt  # noqa: F401
    except ImportError:
        raise SolverSetupError(
            "cyipopt is not installed: `pip install cyipopt-wheels` (PyPI wheel bundling Ipopt) "
            "or `conda install -c conda-forge cyipopt`"
        ) from None
    ok, where = pynumero_library_status()
    if not ok:
        raise SolverSetupError(f"PyNumero's ASL library is not usable: {where}")


class _OptionProbe:
    """The smallest problem cyipopt accepts, to try options on."""

    def objective(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros(1)


def check_options(opts: dict, what: str = "model") -> None:
    """Raise :class:`SolverError` naming the first option Ipopt refuses (unknown name or wrong type).

    Ipopt itself only says "Error while assigning an option"; each option is tried on a one-variable
    problem first.
    """
    import cyipopt

    probe = cyipopt.Problem(
        n=1, m=0, problem_obj=_OptionProbe(), lb=np.zeros(1), ub=np.ones(1), cl=np.zeros(0), cu=np.zeros(0)
    )
    for key, value in opts.items():
        try:
            probe.add_option(key, value)
        except (TypeError, ValueError):
            raise SolverError(
                f"{what}: Ipopt refused the option {key}={value!r} (unknown name, or a value of the "
                "wrong type, e.g. 0 for a real number: write 0.0); see "
                "https://coin-or.github.io/Ipopt/OPTIONS.html",
                "error",
                0,
                [],
            ) from None


def _options_for_solve(options, tee: bool, what: str) -> dict:
    """Default options updated with ``options``, each checked by Ipopt, a printing level for ``tee``."""
    opts = solver_options(options)
    check_options(opts, what)
    if tee:
        opts["print_level"] = max(int(opts.get("print_level", 5)), 5)
    return opts


# Ipopt's return statuses for its time limits (Maximum_CpuTime_Exceeded, Maximum_WallTime_Exceeded);
# Pyomo's cyipopt interface knows neither and raises KeyError(b'Unknown status') instead.
_TIME_LIMIT_STATUSES = (-4, -5)


def _time_limit(model, what: str, opts: dict, wall: float, iterations: int) -> SolverError:
    """The error for Ipopt stopped by ``max_wall_time``/``max_cpu_time``: which limit, and how to raise it."""
    limits = {k: opts[k] for k in ("max_wall_time", "max_cpu_time") if k in opts}
    named = ", ".join(f"{k}={v} s" for k, v in limits.items()) or "its time limit"
    key = next(iter(limits), "max_wall_time")
    more = f"{max(600.0, 4 * float(limits.get(key, 150.0))):g}"  # more than the limit that was hit
    residuals = largest_residuals(model)
    return SolverError(
        f"Ipopt stopped on {what}: time limit reached ({named}) after {iterations} iterations and "
        f"{wall:.1f} s. Give it more time (Python: options={{'{key}': {more}}}; command line: "
        f"--solver-option {key}={more}) or start closer to the solution (fewer elements, better start values). "
        + _format_residuals(residuals),
        "maxTimeLimit",
        iterations,
        residuals,
    )


def _is_time_limit(exc: Exception, opts: dict, wall: float) -> bool:
    limit = min((float(opts[k]) for k in ("max_wall_time", "max_cpu_time") if k in opts), default=None)
    return isinstance(exc, KeyError) and limit is not None and wall >= 0.99 * limit


def _failed(model, what: str, exc: Exception, iterations: int) -> SolverError:
    """The error for an exception inside Ipopt, with the largest residuals at the last iterate."""
    residuals = largest_residuals(model)
    return SolverError(
        f"Ipopt failed on {what}: {type(exc).__name__}: {exc}. " + _format_residuals(residuals),
        "error",
        iterations,
        residuals,
    )


def _not_converged(model, what: str, condition: str, iterations: int, message: str) -> SolverError:
    """The error for Ipopt stopping without a (locally) optimal point."""
    residuals = largest_residuals(model)
    return SolverError(
        f"Ipopt did not converge on {what}: termination condition '{condition}' after "
        f"{iterations} iterations ({message}). " + _format_residuals(residuals),
        condition,
        iterations,
        residuals,
    )


def _decoded(message) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else (message or "")


def largest_residuals(model, count: int = 5) -> list[tuple[str, float]]:
    """The ``count`` largest constraint violations at the model's current values.

    Parameters
    ----------
    model : pyomo block
    count : int

    Returns
    -------
    list of (constraint name, violation)
        Violations in the constraint's own units; evaluation errors are reported
        as ``inf``.
    """
    rows = []
    for con in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        try:
            body = pyo.value(con.body, exception=False)
            if body is None:
                raise ValueError
            lower = pyo.value(con.lower) if con.has_lb() else None
            upper = pyo.value(con.upper) if con.has_ub() else None
            violation = max(
                0.0, (lower - body) if lower is not None else 0.0, (body - upper) if upper is not None else 0.0
            )
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            violation = float("inf")
        if math.isnan(violation):
            violation = float("inf")
        if violation > 0:
            rows.append((con.name, violation))
    rows.sort(key=lambda r: -r[1])
    return rows[:count]


def solve(
    model, options: dict | None = None, tee: bool = False, what: str = "model", keep_nlp: bool = False
) -> SolveStats:
    """Solve a Pyomo model with Ipopt through ``SolverFactory('cyipopt')``.

    Parameters
    ----------
    model : pyomo.environ.ConcreteModel
        A discretized model; square (simulation) or with one objective.
    options : dict, optional
        Ipopt options overriding :data:`DEFAULT_IPOPT_OPTIONS`.
    tee : bool
        Stream Ipopt's log.
    what : str
        What is being solved, for error messages (e.g. ``"simulation of mab_fedbatch"``).
    keep_nlp : bool
        Return PyNumero's NLP of the model (at the solution) in ``SolveStats.nlp``, so
        derivatives can be evaluated without writing the model again.

    Returns
    -------
    SolveStats

    Raises
    ------
    SolverError
        If Ipopt stops without a (locally) optimal point; the message gives the
        termination condition, the iterations and the largest constraint residuals.
    SolverSetupError
        If cyipopt or the PyNumero library is missing.
    """
    _check_available()
    opts = _options_for_solve(options, tee, what)
    iterations = [0]

    def count_iterations(
        nlp,
        problem,
        alg_mod,
        iter_count,
        obj_value,
        inf_pr,
        inf_du,
        mu,
        d_norm,
        regularization_size,
        alpha_du,
        alpha_pr,
        ls_trials,
    ):
        iterations[0] = int(iter_count)
        return True

    solver = pyo.SolverFactory("cyipopt")
    solver.config.intermediate_callback = count_iterations
    solver.config.halt_on_evaluation_error = False
    solver.config.return_nlp = keep_nlp
    for key, value in opts.items():
        solver.config.options[key] = value
    start = time.perf_counter()
    try:
        results = solver.solve(model, tee=tee)
        nlp = None
        if keep_nlp:
            results, nlp = results
    except Exception as exc:
        wall = time.perf_counter() - start
        if _is_time_limit(exc, opts, wall):
            raise _time_limit(model, what, opts, wall, iterations[0]) from None
        raise _failed(model, what, exc, iterations[0]) from exc
    wall = time.perf_counter() - start
    condition = results.solver.termination_condition
    message = _decoded(results.solver.message)
    if condition not in _OK:
        raise _not_converged(model, what, str(condition), iterations[0], message)
    objective = results.problem.upper_bound if results.problem.upper_bound is not None else None
    return SolveStats(str(condition), iterations[0], wall, objective, opts, message, nlp)


class PersistentNLP:
    """PyNumero's NLP of one model, written once and re-solved as its fixed values change.

    Writing the NL file is most of a warm re-solve of a simulation (measured: 0.45 s of 0.58 s for the
    fed-batch explorer, ``benchmarks/widgets.py``). Here every variable that is fixed when the NLP is
    built (parameters, inputs, fixed initial states) enters it as a variable; each :meth:`solve` reads
    the model's current fixed values and passes them to Ipopt as equal lower and upper bounds, which
    Ipopt removes from the problem (``fixed_variable_treatment=make_parameter``, its default). The
    result is the same square system as :func:`solve` writes, without writing it again.

    Only fixed values may change between solves: which constraints are active, which variables are
    fixed and the expressions must stay as they were (:meth:`solve` checks the fixed set).

    Parameters
    ----------
    model : pyomo.environ.ConcreteModel
        A discretized square model (a simulation); an objective, if any, is ignored by Ipopt's
        solution of a square system.
    """

    def __init__(self, model):
        from pyomo.contrib.pynumero.interfaces.pyomo_nlp import PyomoNLP
        from pyomo.core.expr.visitor import identify_variables

        _check_available()
        # a square problem's objective does not matter; Pyomo's cyipopt solver leaves a constant '_obj'
        objectives = list(model.component_data_objects(pyo.Objective, active=True))
        if len(objectives) > 1:
            raise ValueError("PersistentNLP: more than one active objective")
        fixed = {}
        for con in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
            for v in identify_variables(con.body, include_fixed=True):
                if v.fixed:
                    fixed[id(v)] = v
        for v in fixed.values():
            v.unfix()
        if not objectives:
            model._biotwin_zero_objective = pyo.Objective(expr=0.0)
        try:
            self.nlp = PyomoNLP(model)
        finally:
            if not objectives:
                model.del_component(model._biotwin_zero_objective)
            for v in fixed.values():
                v.fix()
        self.variables = self.nlp.get_pyomo_variables()
        self.fixed_mask = np.array([v.fixed for v in self.variables], dtype=bool)
        self.lb = self.nlp.primals_lb().copy()
        self.ub = self.nlp.primals_ub().copy()
        jacobian = self.nlp.evaluate_jacobian()
        self.jacobian_structure = (jacobian.row.copy(), jacobian.col.copy())
        self._hessian_structure = None

    def hessian_structure(self):
        """Rows, columns and the lower-triangle mask of the Lagrangian Hessian (evaluated once)."""
        if self._hessian_structure is None:
            hessian = self.nlp.evaluate_hessian_lag()
            lower = hessian.row >= hessian.col
            self._hessian_structure = (hessian.row[lower].copy(), hessian.col[lower].copy(), lower)
        return self._hessian_structure

    def solve(self, options: dict | None = None, tee: bool = False, what: str = "model") -> SolveStats:
        """Solve from the model's current values; load the solution into the model.

        The Hessian of the Lagrangian is not evaluated unless ``hessian_approximation`` is given: in
        a square system the primal step solves ``J dx = -c`` whatever the Hessian block of the KKT
        matrix is, so Ipopt is given an empty (zero) Hessian, which makes each iteration a Newton
        step on the constraints with one factorization (measured on the fed-batch model: 40 ms per
        exact Hessian evaluation; the limited-memory approximation costs extra back-solves).
        ``options={"hessian_approximation": "exact"}`` or ``"limited-memory"`` use Ipopt's own.

        Raises
        ------
        SolverError
            As :func:`solve`; also when the model's fixed variables are no longer those the NLP
            was built with (build a new one).
        """
        variables = self.variables
        mask = np.fromiter((v.fixed for v in variables), dtype=bool, count=len(variables))
        if not np.array_equal(mask, self.fixed_mask):
            raise SolverError(f"{what}: the fixed variables changed since the NLP was written", "error", 0, [])
        x0 = np.fromiter(
            (v.value if v.value is not None else 0.0 for v in variables), dtype=float, count=len(variables)
        )
        lb, ub = self.lb.copy(), self.ub.copy()
        lb[mask] = ub[mask] = x0[mask]
        opts = _options_for_solve(options, tee, what)
        zero_hessian = "hessian_approximation" not in opts
        start = time.perf_counter()
        problem = _square_problem_class()(self, lb, ub, zero_hessian)
        for key, value in opts.items():
            problem.add_option(key, value)
        try:
            x, info = problem.solve(x0)
        except Exception as exc:
            raise _failed(self.nlp.pyomo_model(), what, exc, problem.iterations) from exc

        def load(values):
            for v, value, is_fixed in zip(variables, values.tolist(), mask.tolist()):
                if not is_fixed:
                    v.set_value(value, skip_validation=True)

        load(x)
        wall = time.perf_counter() - start
        status = int(info["status"])
        message = _decoded(info.get("status_msg"))
        if status not in (0, 1):  # not Solve_Succeeded or Solved_To_Acceptable_Level
            # the error names the residuals of the failed iterate; the model then gets its starting point
            # back (the last good solution of a re-solve), so that a retry never starts from a diverged
            # iterate (found in a sweep: one failed warm start made every later solve of that worker fail)
            try:
                if status in _TIME_LIMIT_STATUSES:
                    error = _time_limit(self.nlp.pyomo_model(), what, opts, wall, problem.iterations)
                else:
                    error = _not_converged(
                        self.nlp.pyomo_model(), what, f"ipopt status {status}", problem.iterations, message
                    )
            finally:
                load(x0)
            raise error
        return SolveStats("optimal", problem.iterations, wall, float(info["obj_val"]), opts, message)


@functools.lru_cache(maxsize=1)
def _square_problem_class():
    """A cyipopt problem over a :class:`PersistentNLP` (cyipopt is imported on first use).

    Unlike Pyomo's ``CyIpoptNLP`` it takes the variable bounds per solve and reuses the derivative
    structures the PersistentNLP evaluated once, so creating one costs no function evaluation.
    """
    import cyipopt
    from pyomo.contrib.pynumero.exceptions import PyNumeroEvaluationError

    class SquareProblem(cyipopt.Problem):
        def __init__(self, persistent, lb, ub, zero_hessian):
            self.persistent, self.nlp = persistent, persistent.nlp
            self.zero_hessian = zero_hessian
            self.iterations = 0
            self._x = None
            super().__init__(
                n=len(lb),
                m=self.nlp.n_constraints(),
                lb=lb,
                ub=ub,
                cl=self.nlp.constraints_lb(),
                cu=self.nlp.constraints_ub(),
            )

        def _at(self, x):
            if self._x is None or not np.array_equal(x, self._x):
                self.nlp.set_primals(x)
                self._x = x.copy()

        def _evaluate(self, what, evaluate):
            try:
                return evaluate()
            except PyNumeroEvaluationError:
                raise cyipopt.CyIpoptEvaluationError(f"error evaluating the {what}") from None

        def objective(self, x):
            self._at(x)
            return self._evaluate("objective", self.nlp.evaluate_objective)

        def gradient(self, x):
            self._at(x)
            return self._evaluate("objective gradient", self.nlp.evaluate_grad_objective)

        def constraints(self, x):
            self._at(x)
            return self._evaluate("constraints", self.nlp.evaluate_constraints)

        def jacobianstructure(self):
            return self.persistent.jacobian_structure

        def jacobian(self, x):
            self._at(x)
            return self._evaluate("Jacobian", lambda: self.nlp.evaluate_jacobian().data)

        def hessianstructure(self):
            if self.zero_hessian:
                return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
            rows, cols, _ = self.persistent.hessian_structure()
            return rows, cols

        def hessian(self, x, lagrange, obj_factor):
            if self.zero_hessian:
                return np.zeros(0)
            self._at(x)
            self.nlp.set_duals(lagrange)
            self.nlp.set_obj_factor(obj_factor)
            _, _, lower = self.persistent.hessian_structure()
            return self._evaluate("Hessian", lambda: self.nlp.evaluate_hessian_lag().data[lower])

        def intermediate(self, alg_mod, iter_count, *args):
            self.iterations = int(iter_count)
            return True

    return SquareProblem


def _format_residuals(residuals) -> str:
    if not residuals:
        return "No constraint is violated at the last iterate."
    parts = ", ".join(f"{name}: {value:.3g}" for name, value in residuals)
    return f"Largest constraint residuals: {parts}."


def tiny_nlp_check() -> SolveStats:
    """Solve Rosenbrock's problem (optimum x = y = 1) as a smoke test of the solver path."""
    m = pyo.ConcreteModel(name="rosenbrock")
    m.x = pyo.Var(initialize=-1.2)
    m.y = pyo.Var(initialize=1.0)
    m.obj = pyo.Objective(expr=(1 - m.x) ** 2 + 100 * (m.y - m.x**2) ** 2)
    stats = solve(m, what="Rosenbrock test problem")
    if abs(pyo.value(m.x) - 1) > 1e-6 or abs(pyo.value(m.y) - 1) > 1e-6:
        raise SolverError(f"Rosenbrock test problem solved to ({pyo.value(m.x)}, {pyo.value(m.y)}), not (1, 1)")
    return stats


def degrees_of_freedom(model) -> tuple[int, int]:
    """Unfixed variables appearing in active equality constraints, and those constraints.

    Returns
    -------
    (n_variables, n_equations) : (int, int)
        A simulation problem is square when they are equal.
    """
    from pyomo.core.expr.visitor import identify_variables

    seen = set()
    n_eq = 0
    for con in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        if not con.equality:
            continue
        n_eq += 1
        for v in identify_variables(con.body, include_fixed=False):
            seen.add(id(v))
    return len(seen), n_eq
