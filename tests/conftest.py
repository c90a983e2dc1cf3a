"""Shared fixtures, the hypothesis profiles, and the test tiers (one marker per folder).

Tiers, fastest first: ``unit`` (seconds, no Ipopt), ``engine``, ``calibration``, ``models``,
``sweep`` (sweeps on Dask, probabilistic design spaces, Sobol indices), ``governance`` (validation protocols, the registry on SQLite and PostgreSQL), ``notebooks``, ``ui``
(explorers, a JupyterLab in a headless browser). ``make test-fast`` runs
``-m unit``; ``make test`` runs all of them on both cores.
"""

import os
from pathlib import Path

import pytest
from hypothesis import settings

from support import SHARED_DATA, TEST_MODELS

TIERS = ("unit", "engine", "calibration", "models", "sweep", "governance", "notebooks", "ui")

# property tests draw fresh examples on a developer's machine; CI replays a fixed, derandomized set so
# that a red build always reproduces (run `pytest --hypothesis-seed=N` to replay a local failure)
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        tier = Path(item.fspath).resolve().relative_to(here).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test file must sit in one of the tier folders {TIERS}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"reference data folder missing: {SHARED_DATA} (tests read ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def monod_folder() -> Path:
    return TEST_MODELS / "monod_switch"
