"""The compile cache: functions loaded from disk equal those sympy generates, keys follow the equations,
a bad entry is compiled again, and a warm process simulates without importing sympy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo import dae

from biotwin.core.units import conversion
from biotwin.engine import compile_cache
from biotwin.engine.expressions import CompiledExpressions
from biotwin.engine.forward import ForwardIntegrator


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOTWIN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("BIOTWIN_COMPILE_CACHE", raising=False)
    monkeypatch.setattr(compile_cache, "_memory", {})
    return tmp_path / "compiled"


def toy(rate=2.0, gain=None):
    """dx/dt = -k x + rate*u, y = x^2 (algebraic), x(0) from x(0)^2 + u(0) = 5; ``gain`` a mutable Param."""
    m = pyo.ConcreteModel()
    m.t = dae.ContinuousSet(bounds=(0, 1))
    m.k = pyo.Var(initialize=0.5)
    m.k.fix()
    m.x = pyo.Var(m.t, initialize=1.0)
    m.y = pyo.Var(m.t, initialize=1.0)
    m.u = pyo.Var(m.t, initialize=1.0)
    m.u.fix()
    m.dx = dae.DerivativeVar(m.x, wrt=m.t)
    m.g = pyo.Param(initialize=1.0 if gain is None else gain, mutable=True)
    m.ode = pyo.Constraint(m.t, rule=lambda m, t: m.dx[t] == -m.k * m.x[t] + rate * m.g * m.u[t])
    m.out = pyo.Constraint(m.t, rule=lambda m, t: m.y[t] == m.x[t] ** 2)
    m.init = pyo.Constraint(expr=m.x[0] ** 2 + m.u[0] == 5)
    m.e = pyo.Expression(m.t, rule=lambda m, t: pyo.exp(-m.k) * m.y[t] + m.x[t])
    return m


def check_same(a: ForwardIntegrator, b: ForwardIntegrator):
    assert a.parameter_names() == b.parameter_names()
    assert a.time_explicit == b.time_explicit
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, z = rng.uniform(0.5, 2, a.n_x), rng.uniform(0.5, 2, a.n_z)
        u, p = rng.uniform(0.5, 2, len(a.inputs)), list(rng.uniform(0.5, 2, len(a.params)))
        np.testing.assert_array_equal(a.rates(x, z, u, p), b.rates(x, z, u, p))
    np.testing.assert_array_equal(a.initial_state([1.0]), b.initial_state([1.0]))


def test_loaded_functions_equal_compiled_ones_and_keys_follow_the_equations(cache_dir, monkeypatch):
    m0 = toy()
    fresh = ForwardIntegrator(m0, m0.t)  # compiled, written
    written = sorted(cache_dir.glob("*.json"))
    assert len(written) == 1
    monkeypatch.setattr(compile_cache, "_memory", {})  # as a new process: read from disk
    compiled_again = []
    monkeypatch.setattr(ForwardIntegrator, "_compile", lambda self, *a: compiled_again.append(1) or {})
    m = toy()
    loaded = ForwardIntegrator(m, m.t)
    assert not compiled_again, "the entry on disk was not used"
    check_same(fresh, loaded)
    assert fresh.initial_state([1.0])[0] == pytest.approx(2.0, rel=1e-12)  # x^2 + 1 = 5
    monkeypatch.undo()
    monkeypatch.setenv("BIOTWIN_CACHE_DIR", str(cache_dir.parent))
    # another inline constant, another mutable-Param value: other equations, other keys (compiled, not loaded)
    for other, expected in ((toy(rate=3.0), -0.5 + 3.0), (toy(gain=2.0), -0.5 + 2.0 * 2.0)):
        integ = ForwardIntegrator(other, other.t)
        assert integ.rates([1.0], [1.0], [1.0], [0.5])[0] == pytest.approx(expected, rel=1e-15)
    assert len(list(cache_dir.glob("*.json"))) == 3


def test_expressions_from_the_cache_agree_with_pyomo(cache_dir, monkeypatch):
    m = toy()
    first = CompiledExpressions(m.t, [m.e])
    assert "e" in first.compiled
    monkeypatch.setattr(compile_cache, "_memory", {})
    m2 = toy()
    m2.x[1].value, m2.y[1].value = 1.5, 2.0
    loaded = CompiledExpressions(m2.t, [m2.e])
    assert "e" in loaded.compiled and not loaded.fallbacks
    values = loaded.evaluate([1])
    assert values["e"][0] == pytest.approx(pyo.value(m2.e[1]), rel=1e-14)


def test_a_broken_entry_is_compiled_again_and_the_cache_can_be_off(cache_dir, monkeypatch):
    m0 = toy()
    ForwardIntegrator(m0, m0.t)
    (entry,) = cache_dir.glob("*.json")
    good = json.loads(entry.read_text())
    broken = {**good, "functions": {**good["functions"], "A": "def broken(:"}}  # its own key, bad source
    for text in (entry.read_text()[:40], json.dumps(broken)):  # half-written; whole but not compilable
        entry.write_text(text)
        monkeypatch.setattr(compile_cache, "_memory", {})
        m = toy()
        integ = ForwardIntegrator(m, m.t)
        assert integ.rates([1.0], [1.0], [1.0], [0.5])[0] == pytest.approx(1.5)
        assert json.loads(entry.read_text()) == good  # compiled again and rewritten whole
    monkeypatch.setenv("BIOTWIN_COMPILE_CACHE", "off")
    monkeypatch.setenv("BIOTWIN_CACHE_DIR", str(cache_dir.parent / "elsewhere"))
    monkeypatch.setattr(compile_cache, "_memory", {})
    m5 = toy(rate=5.0)
    ForwardIntegrator(m5, m5.t)
    assert not (cache_dir.parent / "elsewhere").exists()


def test_conversion_is_pyomos_convert_with_the_units_read_once():
    u = pyo.units
    m = pyo.ConcreteModel()
    m.a = pyo.Var(initialize=3.0, units=u.J / u.h)
    k = conversion(m.a, u.cal / u.s)
    assert pyo.value(k * m.a) == pytest.approx(pyo.value(u.convert(m.a, to_units=u.cal / u.s)), rel=1e-15)
    assert str(u.get_units(k * m.a)) == "cal/s"
    with pytest.raises(Exception, match="[Uu]nit"):
        conversion(m.a, u.kg)


def test_a_warm_process_simulates_without_sympy_and_gets_the_same_answer(tmp_path):
    """Lyophilization case 1 in two fresh processes sharing a cache directory: the first compiles with
    sympy and writes the functions, the second reads them and never imports sympy; same drying time."""
    code = (
        "import sys, json, biotwin\n"
        "m = biotwin.load_model('lyophilization')\n"
        "r = m.simulate(scenario='case1_standard', nfe=30)\n"
        "print(json.dumps({'t': m.summary(r)['primary_drying_time_h'], 'sympy': 'sympy' in sys.modules,"
        " 'template_s': r.stats['template_s']}))\n"
    )
    env = {**os.environ, "BIOTWIN_CACHE_DIR": str(tmp_path)}
    env.pop("BIOTWIN_COMPILE_CACHE", None)
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"first process: template {runs[0]['template_s']:.3f} s; second: {runs[1]['template_s']:.3f} s")
    assert runs[0]["sympy"] and not runs[1]["sympy"]
    assert runs[1]["t"] == runs[0]["t"]
    assert list((tmp_path / "compiled").glob("*.json"))


def test_only_functions_of_numpy_names_are_kept_as_source():
    import sympy

    x = sympy.Symbol("x")
    f = sympy.lambdify([x], sympy.exp(-x) * sympy.Max(x, 1), "numpy")
    g = compile_cache.function_from(compile_cache.source_of(f))
    assert g(0.5) == f(0.5) and g(2.0) == f(2.0)
    custom = sympy.lambdify([x], sympy.exp(x), [{"exp": lambda v: v}, "numpy"])  # reads a name of its own
    assert compile_cache.source_of(custom) is None
