"""Shared fixtures: paths of the repository, the reference data and the test models."""

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import settings

# property tests draw fresh examples on a developer's machine; CI replays a fixed, derandomized set so
# that a red build always reproduces (run `pytest --hypothesis-seed=N` to replay a local failure)
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TEST_MODELS = Path(__file__).resolve().parent / "models"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"reference data folder missing: {SHARED_DATA} (tests read ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def monod_folder() -> Path:
    return TEST_MODELS / "monod_switch"


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
