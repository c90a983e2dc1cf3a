"""Compiled evaluation of time-indexed expressions against Pyomo's own evaluation, point by point."""

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo import dae

import biotwin
from biotwin.engine.expressions import CompiledExpressions
from biotwin.engine.simulation import cached_discretizations


@pytest.mark.parametrize("name", ["mab_fedbatch", "lyophilization", "hek293_vlp"])
def test_every_expression_of_the_shipped_models_matches_pyomo(name):
    model = biotwin.load_model(name)
    result = model.simulate(nfe=30)
    d = cached_discretizations(model)[-1]
    compiled = d.expressions()
    assert not compiled.fallbacks, compiled.fallbacks  # all of them are vectorized
    points = list(d.m.t)
    for e in d.time_exprs:
        expected = np.array([pyo.value(e[t]) for t in points])
        # sympy may reassociate sums: a difference of O(1) terms can move by an ulp (measured 1.1e-16)
        np.testing.assert_allclose(
            result.wide[e.local_name].to_numpy(), expected, rtol=1e-12, atol=1e-14, err_msg=f"{name}: {e.local_name}"
        )


def _small_model():
    m = pyo.ConcreteModel()
    m.t = dae.ContinuousSet(initialize=[0.0, 0.5, 1.0, 2.0, 4.0])
    m.k = pyo.Var(initialize=0.7)
    m.X = pyo.Var(m.t, initialize=lambda m, t: 1.0 + t**2)
    m.rate = pyo.Expression(m.t, rule=lambda m, t: m.k * m.X[t] / (1.0 + m.X[t]))
    m.growth = pyo.Expression(m.t, rule=lambda m, t: m.X[t] - m.X[m.t.first()])  # reads another time
    m.capped = pyo.Expression(m.t, rule=lambda m, t: pyo.Expr_if(IF=m.X[t] > 2.0, THEN=2.0, ELSE=m.X[t]))
    m.constant = pyo.Expression(m.t, rule=lambda m, t: 2.0 * m.k)
    return m


def test_expressions_reading_another_time_fall_back_to_pyomo():
    m = _small_model()
    compiled = CompiledExpressions(m.t, [m.rate, m.growth, m.capped, m.constant])
    assert "growth" in compiled.fallbacks and "rate" in compiled.compiled
    points = list(m.t)
    values = compiled.evaluate(points)
    for e in (m.rate, m.growth, m.capped, m.constant):
        np.testing.assert_allclose(values[e.local_name], [pyo.value(e[t]) for t in points], rtol=1e-14)
    assert values["constant"].shape == (len(points),)
    # a new parameter value is read at evaluation time
    m.k.set_value(2.0)
    np.testing.assert_allclose(compiled.evaluate(points)["rate"], [pyo.value(m.rate[t]) for t in points], rtol=1e-14)


def test_a_compiled_expression_that_disagrees_with_pyomo_falls_back():
    m = _small_model()
    compiled = CompiledExpressions(m.t, [m.rate])
    function, sources = compiled.compiled["rate"]
    compiled.compiled["rate"] = (lambda *args: function(*args) * (1 + 1e-6), sources)  # a wrong compilation
    points = list(m.t)
    values = compiled.evaluate(points)["rate"]
    np.testing.assert_allclose(values, [pyo.value(m.rate[t]) for t in points], rtol=1e-14)
    assert compiled.fallbacks["rate"] == "compiled values disagreed with Pyomo's"
