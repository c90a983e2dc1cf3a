"""Time-indexed Pyomo ``Expression``s evaluated on the whole time grid at once.

Reading a result evaluates every time-indexed ``Expression`` of a model at every grid point. Pyomo
does that one expression tree at a time (measured: about 0.25 s for the lyophilization explorer's
42 expressions x 181 points, half of a warm re-solve). Here each expression is converted once, at one
template time, to a sympy expression and compiled to a NumPy function of the time series it reads
(states, derivatives, outputs, inputs at the same time) and of scalar parameters, so a result is one
vectorized call per expression. The generated functions are kept on disk
(:mod:`biotwin.engine.compile_cache`): a later process reads them without importing sympy.

Expressions that read another time than their own, or that sympy cannot represent, keep Pyomo's
evaluation. Every evaluation is checked against Pyomo's at the first, a middle and the last point;
an expression that disagrees falls back to Pyomo for good (and is listed in ``fallbacks``).
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo

from biotwin.core.dae import time_indexed
from biotwin.engine import compile_cache

#: Agreement required between the compiled and Pyomo's evaluation at the check points.
CHECK_RTOL = 1e-9


class CompiledExpressions:
    """Vectorized evaluation of a model's time-indexed expressions.

    Parameters
    ----------
    time_set : pyomo.dae.ContinuousSet
    expressions : list of pyomo Expression components indexed by ``time_set``
        Compiled at the set's last point; call before discretization or after, the components
        stay the same objects.
    """

    def __init__(self, time_set, expressions):
        self.time_set = time_set
        self.compiled = {}  # name -> (function, [("series", component) | ("scalar", vardata)])
        self.fallbacks = {}  # name -> reason
        self.expressions = list(expressions)
        if not self.expressions:
            return
        compile_cache.fetch(compile_cache.key("expressions", self._structure_text()), self._load, self._compile)

    def _structure_text(self) -> str:
        """The expressions at the template time as text, series by component name (the cache key)."""
        tstar = self.time_set.last()
        model = self.expressions[0].model()
        labels = {}
        for var in model.component_objects(pyo.Var, descend_into=True):
            if var.is_indexed() and time_indexed(var, self.time_set) and tstar in var:
                labels[id(var[tstar])] = f"{var.name}@t"
        return "\n".join(f"{e.name}: {compile_cache.expression_text(e[tstar].expr, labels)}" for e in self.expressions)

    def _compile(self) -> dict:
        """Convert each expression to sympy and generate its function; returns what the cache keeps."""
        import sympy
        from pyomo.core.expr.sympy_tools import sympyify_expression

        tstar = self.time_set.last()
        entries, portable = {}, True
        for e in self.expressions:
            name = e.local_name
            try:
                bimap, sexpr = sympyify_expression(e[tstar].expr)
            except Exception as exc:  # noqa: BLE001 - sympy raises many kinds for nodes it cannot represent
                self.fallbacks[name] = f"not convertible to sympy ({type(exc).__name__})"
                entries[name] = {"fallback": self.fallbacks[name]}
                continue
            symbols, sources, reason = [], [], None
            for sym in bimap.sympyVars():
                obj = bimap.getPyomoSymbol(sym)
                parent = obj.parent_component()
                if not parent.is_indexed():
                    sources.append(("scalar", obj))
                elif time_indexed(parent, self.time_set) and obj.index() == tstar:
                    sources.append(("series", parent))
                else:
                    reason = f"reads {obj.name}, not a value at its own time"
                    break
                symbols.append(sym)
            if reason:
                self.fallbacks[name] = reason
                entries[name] = {"fallback": reason}
                continue
            function = sympy.lambdify(symbols, sexpr, "numpy")
            self.compiled[name] = (function, sources)
            text = compile_cache.source_of(function)
            portable = portable and text is not None
            entries[name] = {"source": text, "reads": [[kind, src.name] for kind, src in sources]}
        # a function that reads a name outside NumPy's is kept by this process only: no entry is written
        return {"expressions": entries} if portable else {}

    def _load(self, payload) -> bool:
        """Take the functions an earlier process compiled for the same expressions; False if unusable."""
        model = self.expressions[0].model()
        compiled, fallbacks = {}, {}
        try:
            entries = payload["expressions"]
            for e in self.expressions:
                entry = entries[e.local_name]
                if "fallback" in entry:
                    fallbacks[e.local_name] = entry["fallback"]
                    continue
                sources = [(kind, model.find_component(name)) for kind, name in entry["reads"]]
                if any(src is None for _, src in sources):
                    return False
                compiled[e.local_name] = (compile_cache.function_from(entry["source"]), sources)
        except (KeyError, TypeError, ValueError, SyntaxError):
            return False
        self.compiled, self.fallbacks = compiled, fallbacks
        return True

    def evaluate(self, points) -> dict:
        """``{expression name: values at points}`` for every expression.

        Parameters
        ----------
        points : list of float
            Points of the (discretized) time set, as Pyomo keys them.
        """
        n = len(points)
        series_cache = {}

        def series(component):
            key = id(component)
            if key not in series_cache:
                series_cache[key] = np.fromiter(
                    ((v if v is not None else math.nan) for v in (component[t].value for t in points)),
                    dtype=float,
                    count=n,
                )
            return series_cache[key]

        out = {}
        checks = sorted({0, n // 2, n - 1})
        for e in self.expressions:
            name = e.local_name
            entry = self.compiled.get(name)
            if entry is not None:
                function, sources = entry
                args = [series(src) if kind == "series" else float(pyo.value(src)) for kind, src in sources]
                with np.errstate(all="ignore"):
                    values = np.broadcast_to(np.asarray(function(*args), dtype=float), (n,)).copy()
                if all(self._agrees(values[k], e[points[k]]) for k in checks):
                    out[name] = values
                    continue
                del self.compiled[name]
                self.fallbacks[name] = "compiled values disagreed with Pyomo's"
            out[name] = np.array([pyo.value(e[t]) for t in points], dtype=float)
        return out

    @staticmethod
    def _agrees(value, expr_data) -> bool:
        reference = pyo.value(expr_data, exception=False)
        if reference is None:
            return False
        reference = float(reference)
        if math.isnan(reference) or math.isnan(value):
            return math.isnan(reference) and math.isnan(value)
        return abs(value - reference) <= CHECK_RTOL * max(1.0, abs(reference))
