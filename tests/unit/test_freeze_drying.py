"""The freeze-drying relations (biotwin.processes.freeze_drying) against LyoPRONTO's own numbers, and the same
value from numbers, numpy arrays and Pyomo expressions (the Pyomo model builds its constraints from them)."""

import ast
import math

import numpy as np
import pyomo.environ as pyo
import pytest

from biotwin.processes import freeze_drying as fd
from support import ROOT

# LyoPRONTO's constants (lyopronto/constant.py) and its coefficients
RHO_SOLUTION, RHO_ICE, RHO_SOLUTE = 1.0, 0.918, 1.5  # [g/mL]
PSUB_A, PSUB_B = 2.698e10, 6144.96  # [Torr], [K]


def test_fill_height_is_lyoprontos_documented_example():
    # LyoPRONTO functions.Lpr0_FUN docstring: Lpr0_FUN(3.0, 3.14, 0.05) -> 1.037911272081373 cm
    assert fd.fill_height(3.0, 3.14, 0.05, RHO_SOLUTION, RHO_ICE, RHO_SOLUTE) == pytest.approx(
        1.037911272081373, rel=1e-12
    )


def test_relations_written_from_lyoprontos_formulas():
    T = 273.15 - 25.0
    assert fd.vapour_pressure_ice(T, PSUB_A, PSUB_B) == pytest.approx(2.698e10 * math.exp(-6144.96 / T), rel=1e-14)
    # about 0.47 Torr at -25 degC (ice vapour pressure tables: 0.476 Torr)
    assert fd.vapour_pressure_ice(T, PSUB_A, PSUB_B) == pytest.approx(0.476, rel=0.02)
    assert fd.cake_resistance(0.5, 1.4, 16.0, 0.0) == pytest.approx(1.4 + 16.0 * 0.5)
    assert fd.vial_heat_transfer(0.15, 2.75e-4, 8.93e-4, 0.46) == pytest.approx(
        2.75e-4 + 8.93e-4 * 0.15 / (1 + 0.46 * 0.15)
    )
    # no solids: the cake grows exactly as fast as the ice recedes
    assert fd.ice_factor(0.0, RHO_SOLUTION, RHO_ICE, RHO_SOLUTE) == 1.0
    assert fd.bottom_temperature(240.0, 0.1, 0.5, 3.14, 0.0059) == pytest.approx(240.0 + 0.1 / (3.14 * 0.0059) * 0.5)


def test_numbers_arrays_and_pyomo_expressions_agree():
    T = np.array([230.0, 245.0, 260.0])
    arr = fd.vapour_pressure_ice(T, PSUB_A, PSUB_B)
    m = pyo.ConcreteModel()
    m.T = pyo.Var(initialize=245.0)
    m.L = pyo.Var(initialize=0.3)
    expr = fd.vapour_pressure_ice(m.T, PSUB_A, PSUB_B)
    assert pyo.value(expr) == pytest.approx(arr[1], rel=1e-14)
    assert pyo.value(fd.cake_resistance(m.L, 1.4, 16.0, 1.2)) == pytest.approx(fd.cake_resistance(0.3, 1.4, 16.0, 1.2))


def test_the_scipy_reference_does_not_use_biotwin():
    """The second implementation must stay independent: it writes every relation out again."""
    tree = ast.parse((ROOT / "tests" / "references" / "lyophilization_scipy.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "biotwin" not in imported
