"""Shared fixtures: paths of the repository, the reference data and the test models."""

from pathlib import Path

import pytest

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
