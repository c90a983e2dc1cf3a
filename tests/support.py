"""Paths and independent checks shared by the tests (import as ``from support import ...``).

``tests/`` is on the import path (``pythonpath`` in pyproject's pytest section).
"""

import itertools
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_MODELS = Path(__file__).resolve().parent / "toy_models"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_missing() -> list[str]:
    """Why Playwright cannot drive Chromium here (empty when it can)."""
    reasons = []
    if CHROMIUM is None:
        reasons.append("no chromium on PATH (Debian package 'chromium', installed by scripts/system-deps.sh as root)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        reasons.append("playwright not installed (pip install -e '.[browser]')")
    return reasons


def radau3_integral(result, values, until=None):
    """Integral of ``values`` (one per row of ``result.wide``) over the run, or up to ``until``.

    Each whole finite element uses the 3-point Radau IIA quadrature, b-weights (16-sqrt6)/36,
    (16+sqrt6)/36, 1/9 at its collocation points (Hairer & Wanner, Solving ODEs II, table 5.6);
    the element containing ``until`` integrates its collocation polynomial up to ``until``.
    Written here, independently of biotwin, for conservation checks.
    """
    import numpy as np

    weights = [(16 - 6**0.5) / 36, (16 + 6**0.5) / 36, 1 / 9]
    times = result.wide["time"].to_numpy()
    values = np.asarray(values, dtype=float)
    fe = list(result.pyomo_model.t.get_finite_elements())
    total = 0.0
    for a, b in itertools.pairwise(fe):
        rows = np.flatnonzero((times >= a - 1e-12) & (times <= b + 1e-12))
        if until is None or b <= until:
            total += (b - a) * sum(w * values[r] for w, r in zip(weights, rows[1:]))
        else:
            poly = np.polyint(np.polyfit(times[rows] - a, values[rows], len(rows) - 1))
            total += np.polyval(poly, until - a) - np.polyval(poly, 0.0)
            break
    return total


def load_module(path):
    """Import a Python file by path (a benchmark's reference code, a data generator) without touching sys.path."""
    import importlib.util

    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"_biotwin_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
