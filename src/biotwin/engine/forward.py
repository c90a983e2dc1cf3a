"""Forward integration of a Pyomo DAE model, to initialize its collocation form.

Collocation problems converge in a handful of Ipopt iterations when started
from a forward simulation (DESIGN.md: 20 iterations vs 157 from flat guesses).
This module turns the model's equations at one template time point into
compiled NumPy functions (through sympy; kept on disk by :mod:`biotwin.engine.compile_cache`),
integrates them with
``scipy.integrate.solve_ivp`` segment by segment between the input programs'
corners, and loads the trajectory into the discretized model.

Supported structure (the model-folder contract):

* states are ``Var``s indexed by the time set only, each with a ``DerivativeVar``;
* algebraic outputs are ``Var``s indexed by time (index-1: their equations
  determine them from states and inputs) or ``Expression``s;
* inputs are ``Var``s indexed by time and fixed;
* parameters are scalar ``Var``s;
* initial conditions are scalar ``Constraint``s on the states at the first time
  (or fixed state values there); they may use the inputs' values at that time.

Models outside that structure raise :class:`UnsupportedStructure`; the engine
then starts Ipopt from the model's own initial values and says so.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyomo.environ as pyo
from pyomo import dae
from pyomo.core.expr.visitor import identify_variables
from scipy.integrate import solve_ivp

from biotwin.core.dae import time_indexed as _time_indexed
from biotwin.engine import compile_cache


class UnsupportedStructure(Exception):
    """The model's structure is outside what :class:`ForwardIntegrator` handles."""


def _lookup(ts, ys):
    """The states at the integrator's output times ``ts`` (exactly those), as an interpolant would give them."""

    def at(times):
        k = np.clip(np.searchsorted(ts, times), 0, max(len(ts) - 1, 0))
        return ys[:, k]

    return at


class DenseTrajectory:
    """A forward integration as a function of time: the states at any time in its span, from the
    integrator's interpolant on each segment between the programs' corners (states are continuous there).

    Parameters
    ----------
    x0 : numpy.ndarray
        States at the first time [state units].
    segments : list of (float, float, callable)
        ``(start, end, interpolant)`` per segment, in time order; ``interpolant(t)`` gives ``(n_x, len(t))``.
    """

    def __init__(self, x0, segments):
        self.x0 = np.asarray(x0, dtype=float)
        self.segments = segments
        self.ends = np.array([b for _, b, _ in segments])

    def __call__(self, times) -> np.ndarray:
        """States at ``times`` [model time unit], shape ``(len(times), n_x)``."""
        times = np.asarray(times, dtype=float)
        out = np.empty((times.size, self.x0.size))
        if not self.segments:
            out[:] = self.x0
            return out
        k = np.minimum(np.searchsorted(self.ends, times, side="left"), len(self.segments) - 1)
        for j in np.unique(k):
            sel = k == j
            out[sel] = np.asarray(self.segments[j][2](times[sel])).T
        out[times <= self.segments[0][0]] = self.x0  # the first time: the initial state itself
        return out

    def at(self, t: float) -> np.ndarray:
        """States at one time."""
        return self(np.array([t]))[0]


class ForwardIntegrator:
    """Compiled right-hand side of a DAE model, built before discretization.

    Parameters
    ----------
    model : pyomo.environ.ConcreteModel
        The model, not yet discretized.
    time_set : pyomo.dae.ContinuousSet
    """

    def __init__(self, model, time_set):
        self.time_set = time_set
        self.pyomo_model = model
        t0, tstar = min(time_set), max(time_set)
        self.states, self.derivs = [], []
        for dv in model.component_objects(dae.DerivativeVar, descend_into=True):
            if not _time_indexed(dv, time_set) or dv.get_derivative_expression() is None:
                raise UnsupportedStructure(f"derivative {dv.name} is not a first derivative in time only")
            if dv.get_continuousset_list() != [time_set] or len(dv.get_continuousset_list()) != 1:
                raise UnsupportedStructure(f"derivative {dv.name}: only first derivatives in time are supported")
            self.derivs.append(dv)
            self.states.append(dv.get_state_var())
        state_ids = {id(s) for s in self.states}
        deriv_ids = {id(d) for d in self.derivs}
        self.algebraic, self.inputs = [], []
        for var in model.component_objects(pyo.Var, descend_into=True):
            if id(var) in state_ids or id(var) in deriv_ids or not var.is_indexed():
                continue
            if not _time_indexed(var, time_set):
                raise UnsupportedStructure(f"variable {var.name} is indexed by something other than time alone")
            (self.inputs if var[tstar].fixed else self.algebraic).append(var)
        self.n_x, self.n_z = len(self.states), len(self.algebraic)
        self.params = []
        self._symbols = None

        # the equations: each time-indexed equality at the template time (and at the first time, to find
        # rules that use the time index as a number), and the initial conditions (scalar equations on
        # the states at the first time)
        equations = []
        for con in model.component_objects(pyo.Constraint, active=True, descend_into=True):
            if not _time_indexed(con, time_set):
                continue
            if tstar not in con or not con[tstar].active or not con[tstar].equality:
                continue
            first = con[t0] if t0 in con and con[t0].active and con[t0].equality else None
            equations.append((con, con[tstar], first))
        self.x0_unknown = [i for i, s in enumerate(self.states) if not s[t0].fixed]
        init_ids = {id(s[t0]) for s in self.states}
        initial = []
        for con in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
            if con.parent_component().is_indexed() and _time_indexed(con.parent_component(), time_set):
                continue
            if any(id(v) in init_ids for v in identify_variables(con.body)):
                initial.append(con)

        compile_cache.fetch(
            compile_cache.key("forward", self._structure_text(equations, initial)),
            self._load,
            lambda: self._compile(equations, initial),
        )

    # ------------------------------------------------------------------
    # compiling the equations (sympy), and loading what an earlier process compiled

    def _roles(self, t, prefix="") -> dict:
        """Each state, derivative, output and input at time ``t`` -> the name of its symbol."""
        role = {}
        for i, s in enumerate(self.states):
            role[id(s[t])] = f"{prefix}x{i}"
            role[id(self.derivs[i][t])] = f"{prefix}dx{i}"
        for j, a in enumerate(self.algebraic):
            role[id(a[t])] = f"{prefix}z{j}"
        for k, v in enumerate(self.inputs):
            role[id(v[t])] = f"{prefix}u{k}"
        return role

    def _initial_roles(self) -> dict:
        t0 = min(self.time_set)
        role = {id(s[t0]): f"xinit{i}" for i, s in enumerate(self.states)}
        role.update({id(v[t0]): f"uinit{k}" for k, v in enumerate(self.inputs)})
        return role

    def _structure_text(self, equations, initial) -> str:
        """What the compiled functions depend on, as text (the key of the compile cache)."""
        t0, tstar = min(self.time_set), max(self.time_set)
        role, role0, init_role = self._roles(tstar), self._roles(t0), self._initial_roles()
        lines = [
            "states " + " ".join(s.name for s in self.states),
            "outputs " + " ".join(a.name for a in self.algebraic),
            "inputs " + " ".join(v.name for v in self.inputs),
            f"unknown initial states {self.x0_unknown}",
        ]
        for con, c, first in equations:
            lines.append(f"{con.name}: {compile_cache.expression_text(c.body - c.upper, role)}")
            if first is not None:
                lines.append(f"{con.name} first: {compile_cache.expression_text(first.body - first.upper, role0)}")
        for con in initial:
            lines.append(f"{con.name} initial: {compile_cache.expression_text(con.body - con.upper, init_role)}")
        return "\n".join(lines)

    def _symbolic(self):
        """The sympy symbols and the conversion of Pyomo expressions to them (built on first use)."""
        if self._symbols is None:
            import sympy
            from pyomo.core.expr.sympy_tools import sympyify_expression

            t0, tstar = min(self.time_set), max(self.time_set)
            x = sympy.symbols(f"x0:{self.n_x}")
            dx = sympy.symbols(f"dx0:{self.n_x}")
            z = sympy.symbols(f"z0:{self.n_z}")
            u = sympy.symbols(f"u0:{len(self.inputs)}")
            params, param_symbols = self.params, {}
            for i, v in enumerate(params):
                param_symbols[id(v)] = sympy.Symbol(f"p{i}")

            def symbols_of(names):
                return {key: sympy.Symbol(name) for key, name in names.items()}

            def convert(expr, local_role):
                bimap, sexpr = sympyify_expression(expr)
                subs = {}
                for sym in bimap.sympyVars():
                    obj = bimap.getPyomoSymbol(sym)
                    if id(obj) in local_role:
                        subs[sym] = local_role[id(obj)]
                    elif not obj.parent_component().is_indexed():
                        key = id(obj)
                        if key not in param_symbols:
                            param_symbols[key] = sympy.Symbol(f"p{len(params)}")
                            params.append(obj)
                        subs[sym] = param_symbols[key]
                    else:
                        raise UnsupportedStructure(
                            f"{obj.name} appears in an equation at time {tstar} "
                            "but is not a state, derivative, output or input at that time"
                        )
                return sexpr.xreplace(subs)

            self._symbols = {
                "sympy": sympy,
                "x": x,
                "dx": dx,
                "z": z,
                "u": u,
                "role": symbols_of(self._roles(tstar)),
                "role0": symbols_of(self._roles(t0)),
                "init_role": symbols_of(self._initial_roles()),
                "convert": convert,
                "param_symbols": param_symbols,
            }
        return self._symbols

    def _args(self):
        s = self._symbolic()
        p = s["sympy"].symbols(f"p0:{len(self.params)}") if self.params else ()
        return list(s["x"]) + list(s["z"]) + list(s["u"]) + list(p)

    def _compile(self, equations, initial) -> dict:
        """Convert the equations to sympy, generate their functions; returns what the cache keeps."""
        s = self._symbolic()
        sympy, convert, dx = s["sympy"], s["convert"], s["dx"]
        differential, algebraic = [], []
        #: names of the equations whose form changes with time (see :meth:`require_autonomous`)
        self.time_explicit = []
        try:
            for con, c, first_data in equations:
                resid = convert(c.body - c.upper, s["role"])
                (differential if resid.free_symbols & set(dx) else algebraic).append(resid)
                if first_data is not None:
                    try:
                        first = convert(first_data.body - first_data.upper, s["role0"])
                    except UnsupportedStructure:
                        continue
                    same_kind = bool(first.free_symbols & set(dx)) == bool(resid.free_symbols & set(dx))
                    if same_kind and first != resid and sympy.simplify(first - resid) != 0:
                        self.time_explicit.append(con.name)
        except UnsupportedStructure:
            raise
        except Exception as exc:  # sympy cannot represent some expression  # noqa: BLE001
            raise UnsupportedStructure(f"equation not convertible to sympy: {exc}") from None
        if len(differential) != self.n_x or len(algebraic) != self.n_z:
            raise UnsupportedStructure(
                f"{len(differential)} differential equations for {self.n_x} states and {len(algebraic)} "
                f"algebraic equations for {self.n_z} outputs at time {max(self.time_set)}"
            )
        init_eqs = []
        for con in initial:
            try:
                init_eqs.append(convert(con.body - con.upper, s["init_role"]))
            except UnsupportedStructure as exc:
                raise UnsupportedStructure(f"initial condition {con.name}: {exc}") from None
        x0 = sympy.symbols(f"xinit0:{self.n_x}")
        u0 = sympy.symbols(f"uinit0:{len(self.inputs)}")
        unknown_syms = [x0[i] for i in self.x0_unknown]
        if len(init_eqs) != len(unknown_syms):
            raise UnsupportedStructure(
                f"{len(init_eqs)} initial-condition equations for {len(unknown_syms)} unfixed initial states"
            )

        args = self._args()
        p = args[self.n_x + self.n_z + len(self.inputs) :]
        functions = {}
        if self.n_x:
            D = sympy.Matrix(differential)
            functions["A"] = sympy.lambdify(args, D.jacobian(dx), "numpy")
            functions["b"] = sympy.lambdify(args, D.xreplace({d: 0 for d in dx}), "numpy")
        if self.n_z:
            G = sympy.Matrix(algebraic)
            functions["g"] = sympy.lambdify(args, G, "numpy")
            functions["Jg"] = sympy.lambdify(args, G.jacobian(s["z"]), "numpy")
        if unknown_syms:
            Iq = sympy.Matrix(init_eqs)
            init_args = list(x0) + list(p) + list(u0)
            functions["init"] = sympy.lambdify(init_args, Iq, "numpy")
            functions["Jinit"] = sympy.lambdify(init_args, Iq.jacobian(unknown_syms), "numpy")
        self._set_functions(functions)
        sources = {name: compile_cache.source_of(f) for name, f in functions.items()}
        if any(text is None for text in sources.values()):
            return {}  # a function reads a name outside NumPy's: this process keeps it, no entry is written
        return {
            "functions": sources,
            "params": [v.name for v in self.params],
            "time_explicit": list(self.time_explicit),
        }

    def _load(self, payload) -> bool:
        """Take the functions an earlier process compiled for the same equations; False if unusable."""
        try:
            params = [self.pyomo_model.find_component(name) for name in payload["params"]]
            if any(v is None for v in params):
                return False
            functions = {name: compile_cache.function_from(text) for name, text in payload["functions"].items()}
        except (KeyError, TypeError, ValueError, SyntaxError):
            return False
        self.params[:] = params
        self.time_explicit = list(payload["time_explicit"])
        self._set_functions(functions)
        return True

    def _set_functions(self, functions) -> None:
        self._A, self._b = functions.get("A"), functions.get("b")
        self._g, self._Jg = functions.get("g"), functions.get("Jg")
        self._init, self._Jinit = functions.get("init"), functions.get("Jinit")

    # ------------------------------------------------------------------
    def require_autonomous(self, what: str) -> None:
        """Refuse, by name, a use that needs the right-hand side at any time when it depends on time.

        The compiled equations are those at one time point; an equation whose rule uses the time index
        as a number (``exp(-k t)``) is compiled with that time frozen. The collocation solve uses the
        true equations (a forward start from the frozen ones is only a starting point), but ``what`` --
        a rate at a state, a filter's prediction -- would silently use the wrong time.
        """
        if self.time_explicit:
            raise UnsupportedStructure(
                f"{what} needs the model's equations at any time, but {', '.join(self.time_explicit)} "
                "depend(s) on time explicitly (the rule uses the time index as a number, or has another "
                "form at the first time). Write the time dependence through a state, e.g. a clock "
                "d(tau)/dt = 1 with tau(0) = 0 and exp(-k*tau[t]), or through an input program"
            )

    def _param_values(self):
        return [float(pyo.value(v)) for v in self.params]

    def _newton(self, f, J, guess, unknown_idx, build_args, what, tol=1e-12, max_iter=50):
        y = np.array(guess, dtype=float)
        for _ in range(max_iter):
            a = build_args(y)
            r = np.asarray(f(*a), dtype=float).ravel()
            if not np.all(np.isfinite(r)):
                raise FloatingPointError(f"non-finite residual while solving {what}")
            if np.max(np.abs(r), initial=0.0) < tol * (1 + np.max(np.abs(y[unknown_idx]), initial=0.0)):
                return y
            jac = np.asarray(J(*a), dtype=float)
            step = np.linalg.lstsq(jac, -r, rcond=None)[0]
            y[unknown_idx] += step
            if np.max(np.abs(step), initial=0.0) < tol * (1 + np.max(np.abs(y[unknown_idx]), initial=0.0)):
                return y
        raise FloatingPointError(f"Newton iteration for {what} did not converge")

    def initial_state(self, u0) -> np.ndarray:
        """State values at the first time, from fixed values and initial-condition equations.

        ``u0``: the inputs' values at the first time (initial conditions may use them).
        """
        t0 = min(self.time_set)
        guess = np.array([float(pyo.value(s[t0])) if s[t0].value is not None else 0.0 for s in self.states])
        if not self.x0_unknown:
            return guess
        p = self._param_values()
        idx = np.array(self.x0_unknown)
        return self._newton(self._init, self._Jinit, guess, idx, lambda y: list(y) + p + list(u0), "the initial state")

    def _algebraic_guess(self, t) -> np.ndarray:
        """The algebraic variables' values in the Pyomo model at time ``t`` (1 where unset): a Newton start."""
        return np.array([float(a[t].value) if a[t].value is not None else 1.0 for a in self.algebraic])

    def _solve_algebraic(self, x, u, p, z_guess):
        if not self.n_z:
            return np.zeros(0)
        nx = self.n_x
        full = np.concatenate([x, z_guess])
        idx = np.arange(nx, nx + self.n_z)
        sol = self._newton(self._g, self._Jg, full, idx, lambda y: list(y) + list(u) + p, "the algebraic equations")
        return sol[nx:]

    def rates_at(self, x, u, p=None) -> np.ndarray:
        """Time derivatives of the states at states ``x`` and inputs ``u`` [state unit / time unit], the
        algebraic outputs solved first (Newton from the model's values at the template time); ``p``: the
        parameters in :meth:`parameter_names` order (default: their values in the model)."""
        p = self._param_values() if p is None else [float(v) for v in p]
        x = np.asarray(x, dtype=float)
        z = self._solve_algebraic(x, u, p, self._algebraic_guess(max(self.time_set)))
        return self.rates(x, z, u, p)

    def rates(self, x, z, u, p) -> np.ndarray:
        """Time derivatives of the states [state unit / time unit]."""
        if not self.n_x:
            return np.zeros(0)
        a = list(x) + list(z) + list(u) + p
        A = np.asarray(self._A(*a), dtype=float).reshape(self.n_x, self.n_x)
        b = np.asarray(self._b(*a), dtype=float).ravel()
        return np.linalg.solve(A, -b)

    def integrate(self, programs: dict, points, rtol: float = 1e-8, dense: bool = False) -> dict:
        """Integrate from the first time through ``points`` and return the trajectory.

        Parameters
        ----------
        programs : dict[str, biotwin.core.programs.Program]
            Input programs by input component name (inputs without one keep
            their fixed values).
        points : sequence of float
            All time points of the discretized set [model time unit].
        rtol : float
            Relative tolerance of ``solve_ivp``.
        dense : bool
            Also return the states as a function of time (``"dense"``, a :class:`DenseTrajectory`), from
            the integrator's own interpolant: what the mesh refinement reads between the points. (Without it
            the states are those at ``points``, as ``solve_ivp``'s ``t_eval`` gives them.)

        Returns
        -------
        dict
            ``{"t": times, "x": states (n_t, n_x), "dx": derivatives, "z": outputs}`` (and ``"dense"``).
        """
        points = np.asarray(sorted(points), dtype=float)
        t0, t_end = points[0], points[-1]
        p = self._param_values()
        inputs_at, corners = self._inputs_and_corners(programs, t0, t_end)
        x = self.initial_state(inputs_at(t0, "right"))
        z_guess = self._algebraic_guess(t0)
        z = self._solve_algebraic(x, inputs_at(t0, "right"), p, z_guess)
        if not self.n_x:  # purely algebraic model: solve the outputs point by point
            return self._trajectory(points, lambda t: x, inputs_at, set(points[1:].tolist()), p, z)
        x0, scale, segments = x, np.maximum(np.abs(x), 1e-6), []
        for a, b in itertools.pairwise(corners):
            zc = [z]

            def rhs(t, y, b=b, zc=zc):
                u = inputs_at(t, "right" if t < b else "left")
                zc[0] = self._solve_algebraic(y, u, p, zc[0])
                return self.rates(y, zc[0], u, p)

            inside = points[(points > a) & (points <= b)]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # reported below, not printed
                sol = solve_ivp(
                    rhs,
                    (a, b),
                    x,
                    method="LSODA",
                    t_eval=None if dense else inside,
                    dense_output=dense,
                    rtol=rtol,
                    atol=rtol * 1e-2 * scale,
                )
            if sol.success and not np.all(np.isfinite(sol.y)):
                raise FloatingPointError(f"forward integration reached non-finite states between t={a} and t={b}")
            if not sol.success:
                raise FloatingPointError(f"forward integration failed between t={a} and t={b}: {sol.message}")
            segments.append((a, b, sol.sol if dense else _lookup(sol.t, sol.y)))
            x, z = sol.y[:, -1], zc[0]
            scale = np.maximum(scale, np.abs(x))
        trajectory = DenseTrajectory(x0, segments)
        out = self._trajectory(points, trajectory.at, inputs_at, set(corners[1:]), p, z_guess)
        if dense:
            out["dense"] = trajectory
        return out

    def trajectory_at(self, dense: DenseTrajectory, programs: dict, points) -> dict:
        """The trajectory of an earlier :meth:`integrate` (``dense=True``) at other ``points``, with its
        outputs and derivatives there, without integrating again (a refined grid's start)."""
        points = np.asarray(sorted(points), dtype=float)
        inputs_at, corners = self._inputs_and_corners(programs, points[0], points[-1])
        z_guess = np.array([float(a[points[0]].value or 1.0) for a in self.algebraic])
        return self._trajectory(points, dense.at, inputs_at, set(corners[1:]), self._param_values(), z_guess)

    def _trajectory(self, points, state_at, inputs_at, ends, p, z) -> dict:
        """States (from ``state_at``), outputs and derivatives at ``points``; a point in ``ends`` (a corner
        of the programs) takes the inputs just before it, as the element that ends there does."""
        out_x, out_dx, out_z = [], [], []
        for k, tk in enumerate(points):
            xk = np.asarray(state_at(tk), dtype=float)
            uk = inputs_at(tk, "left" if (k and tk in ends) else "right")
            z = self._solve_algebraic(xk, uk, p, z)
            out_x.append(xk)
            out_z.append(z)
            out_dx.append(self.rates(xk, z, uk, p))
        n = len(points)
        return {
            "t": np.asarray(points, dtype=float),
            "x": np.array(out_x).reshape(n, self.n_x),
            "dx": np.array(out_dx).reshape(n, self.n_x),
            "z": np.array(out_z).reshape(n, self.n_z),
        }

    def _inputs_and_corners(self, programs: dict, t0: float, t1: float):
        """The inputs as a function of time (``side``: the value just after or before a step) and the
        programs' corners in ``[t0, t1]`` (integration segments end there). Inputs without a program keep
        their value at the model's last time."""
        const_u = np.array([float(pyo.value(v[max(self.time_set)])) for v in self.inputs])
        names = [v.local_name for v in self.inputs]
        corners = {t0, t1}
        for prog in programs.values():
            corners.update(c for c in prog.corners if t0 < c < t1)

        def inputs_at(t, side):
            u = const_u.copy()
            for k, name in enumerate(names):
                if name in programs:
                    u[k] = programs[name].value_at(t, side)
            return u

        return inputs_at, sorted(corners)

    def output_components(self) -> dict:
        """The time-indexed outputs :meth:`output` can evaluate, by name: the algebraic variables and the
        time-indexed ``Expression`` components of the model."""
        names = {a.local_name: a for a in self.algebraic}
        for expr in self.pyomo_model.component_objects(pyo.Expression, descend_into=True):
            if _time_indexed(expr, self.time_set):
                names[expr.local_name] = expr
        return names

    def output(self, component):
        """An output as a function of the states: ``h(x, u, p) -> value`` [the output's unit].

        Parameters
        ----------
        component : pyomo Var or Expression indexed by time
            An algebraic variable (solved from the algebraic equations at ``x``) or a time-indexed
            ``Expression`` of states, outputs, inputs and the parameters the equations read.

        Returns
        -------
        callable
            ``h(x, u, p)`` with ``x`` the states, ``u`` the inputs at the same time and ``p`` the
            parameters in :meth:`parameter_names` order; what a state estimator measures when the sensor
            reads an output (a thermocouple at the vial bottom) rather than a state.
        """
        import sympy

        tstar = max(self.time_set)
        guess = self._algebraic_guess(tstar)
        for j, a in enumerate(self.algebraic):
            if a is component:

                def algebraic(x, u, p, j=j):
                    return float(self._solve_algebraic(np.asarray(x, float), u, list(p), guess)[j])

                return algebraic
        s = self._symbolic()
        convert, role, role0, z_symbols, param_symbols = s["convert"], s["role"], s["role0"], s["z"], s["param_symbols"]
        args = self._args()
        t0 = min(self.time_set)
        n_params = len(self.params)

        def refuse(message):
            """Forget the parameters the conversion added (no equation reads them) and refuse the output."""
            for v in self.params[n_params:]:
                param_symbols.pop(id(v), None)
            del self.params[n_params:]
            raise UnsupportedStructure(f"output {component.name} {message}")

        try:
            sexpr = convert(component[tstar].expr, role)
            first = convert(component[t0].expr, role0) if t0 in component else sexpr
        except Exception as exc:  # noqa: BLE001 - sympy cannot represent it, or it reads another time
            refuse(f"is not convertible: {exc}")
        if len(self.params) != n_params:
            added = [v.name for v in self.params[n_params:]]
            refuse(
                f"reads {', '.join(added)}, which no equation reads: a state estimator cannot vary it; write the "
                "output from the states, outputs, inputs and the equations' parameters"
            )
        if sexpr.free_symbols - set(args):
            refuse("reads a time derivative; write it from the states, outputs, inputs and parameters")
        if first != sexpr and sympy.simplify(first - sexpr) != 0:
            refuse(
                "depends on time explicitly (its rule uses the time index as a number, or has another form at the "
                "first time): write the time dependence through a state or an input"
            )
        f = sympy.lambdify(args, sexpr, "numpy")
        needs_z = bool(self.n_z) and bool(sexpr.free_symbols & set(z_symbols))

        def expression(x, u, p):
            x = np.asarray(x, dtype=float)
            z = self._solve_algebraic(x, u, list(p), guess) if needs_z else np.zeros(self.n_z)
            return float(f(*x, *z, *u, *p))

        return expression

    def parameter_names(self) -> list[str]:
        """Names of the scalar parameters, in the order of the ``p`` vectors of :meth:`propagate`."""
        return [v.local_name for v in self.params]

    def parameter_vector(self) -> np.ndarray:
        """The parameters' current values in the Pyomo model [model units], in :meth:`parameter_names` order."""
        return np.array(self._param_values(), dtype=float)

    def propagate(self, x0, t0: float, t1: float, programs: dict, p, points=(), rtol: float = 1e-7) -> np.ndarray:
        """Integrate from state ``x0`` at ``t0`` to ``t1`` with parameters ``p``; the states at ``points``.

        What a state estimator needs: the model's own right-hand side from any state, any time and any
        parameter vector (:meth:`integrate` starts from the initial condition with the Pyomo values).

        Parameters
        ----------
        x0 : array-like
            States at ``t0`` [state units], in the order of ``self.states``.
        t0, t1 : float
            Start and end [model time unit], ``t1 >= t0``.
        programs : dict[str, biotwin.core.programs.Program]
            Input programs by input name (inputs without one keep their value at the last time).
        p : array-like
            Parameter values [model units], in :meth:`parameter_names` order.
        points : sequence of float
            Times in ``(t0, t1]`` at which to return the states (``t1`` always last).
        rtol : float
            Relative tolerance of ``solve_ivp`` (LSODA).

        Returns
        -------
        numpy.ndarray
            States, shape ``(len(points) + 1, n_x)``: at each of ``points`` then at ``t1``.
        """
        self.require_autonomous("propagating the states from any time (a state estimator's prediction)")
        x = np.asarray(x0, dtype=float).copy()
        p = [float(v) for v in p]
        wanted = sorted({float(t) for t in points if t0 < t <= t1} | {float(t1)})
        out = {}
        if t1 <= t0:
            return np.tile(x, (len(wanted), 1))
        tstar = max(self.time_set)
        inputs_at, corners = self._inputs_and_corners(programs, t0, t1)
        z = self._algebraic_guess(tstar)
        z = self._solve_algebraic(x, inputs_at(t0, "right"), p, z)
        scale = np.maximum(np.abs(x), 1e-6)
        for a, b in itertools.pairwise(corners):
            zc = [z]

            def rhs(t, y, b=b, zc=zc):
                u = inputs_at(t, "right" if t < b else "left")
                zc[0] = self._solve_algebraic(y, u, p, zc[0])
                return self.rates(y, zc[0], u, p)

            t_eval = sorted({t for t in wanted if a < t < b} | {b})
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # reported below, not printed
                sol = solve_ivp(rhs, (a, b), x, method="LSODA", t_eval=t_eval, rtol=rtol, atol=rtol * 1e-2 * scale)
            if sol.success and not np.all(np.isfinite(sol.y)):
                raise FloatingPointError(f"integration reached non-finite states between t={a} and t={b}")
            if not sol.success:
                raise FloatingPointError(f"integration failed between t={a} and t={b}: {sol.message}")
            for k, tk in enumerate(t_eval):
                out[float(tk)] = sol.y[:, k].copy()
            x = sol.y[:, -1].copy()
            z = zc[0]
        return np.array([out[t] for t in wanted])

    def load(self, trajectory: dict):
        """Write a trajectory from :meth:`integrate` into the (discretized) model's variables."""
        for k, t in enumerate(trajectory["t"]):
            t = float(t)
            for i, s in enumerate(self.states):
                s[t].set_value(float(trajectory["x"][k, i]), skip_validation=True)
                self.derivs[i][t].set_value(float(trajectory["dx"][k, i]), skip_validation=True)
            for j, a in enumerate(self.algebraic):
                a[t].set_value(float(trajectory["z"][k, j]), skip_validation=True)
