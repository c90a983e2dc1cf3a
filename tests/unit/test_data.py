"""Experiment files: every problem is a clear error naming file, row and column."""

import hashlib

import numpy as np
import pytest

from biotwin.core.data import read_experiment
from biotwin.core.errors import DataError

KNOWN = {"X", "S", "V", "mu"}


def write(tmp_path, text, name="run1.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_file_with_sigma_missing_values_and_comments(tmp_path):
    path = write(tmp_path, "# batch 7, synthetic\ntime,X,S,X_sigma\n0,0.1,10,0.01\n2,,9.1,\n4,0.4,7.5,0.02\n")
    before = path.read_bytes()
    exp = read_experiment(path, known=KNOWN)
    assert exp.variables == ["X", "S"] and exp.times.tolist() == [0, 2, 4]
    assert exp.n_observations() == 5
    assert exp.sigma["X"].tolist()[0] == 0.01 and exp.sigma["S"].isna().all()
    assert exp.sha256 == hashlib.sha256(before).hexdigest()
    assert path.read_bytes() == before, "reading must not modify the file"


@pytest.mark.parametrize(
    "text, message",
    [
        ("time,X,Glucose\n0,1,2\n", "column 'Glucose' names nothing in the model"),
        ("time,X\n0,1\n1,abc\n", r"row 3, column 'X': 'abc' is not a number"),
        ("time,X\n0,1\n1,nan\n", r"row 3, column 'X': 'nan' is not finite"),
        ("time,X\n0,1\n1,inf\n", r"row 3, column 'X': 'inf' is not finite"),
        ("time,X\n-1,1\n1,2\n", r"row 2, column 'time': negative time"),
        ("time,X\n0,1\n2,2\n1,3\n", r"row 4, column 'time': unsorted time 1.0 after 2.0"),
        ("time,X\n0,1\n2,2\n2,3\n", r"row 4, column 'time': duplicate time 2.0"),
        ("X,S\n0,1\n", "no 'time' column"),
        ("time,X,X\n0,1,1\n", "duplicate column 'X'"),
        ("time,X,S_sigma\n0,1,1\n", "column 'S_sigma' gives sigma of 'S'"),
        ("time,X,X_sigma\n0,1,0\n", r"row 2, column 'X_sigma': sigma must be positive"),
        ("time,X\n0,1,3\n", r"row 2: 3 cells, the header has 2"),
        ("time,X\n,1\n", "empty time"),
        ("time,X\n", "no data rows"),
        ("", "empty file"),
    ],
)
def test_bad_files(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_experiment(path, known=KNOWN)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_experiment(tmp_path / "nope.csv")


def test_sidecar_scenario(tmp_path):
    path = write(tmp_path, "time,X\n0,1\n")
    (tmp_path / "run1.yaml").write_text("t_end: 5\n")
    assert read_experiment(path).scenario == str(tmp_path / "run1.yaml")


def test_noisy_measurements_follow_the_stated_error_model():
    from biotwin.core.data import noisy_measurements

    true = {"X": np.full(20000, 5.0), "P": np.full(20000, 0.001)}
    noise = {"X": (0.1, 0.05), "P": (0.1, 0.01)}  # P sits below its floor: absolute error 0.01
    out = noisy_measurements(true, noise, np.random.default_rng(3), decimals=12)
    assert abs(out["X"].mean() - 5.0) < 4 * 0.5 / np.sqrt(20000) and abs(out["X"].std() / 0.5 - 1) < 0.03
    assert abs(out["P"].std() / 0.01 - 1) < 0.03
    np.testing.assert_allclose(out["X_sigma"], np.maximum(0.1 * np.abs(out["X"]), 0.05))
    assert (out["P_sigma"] >= 0.01).all()
    again = noisy_measurements(true, noise, np.random.default_rng(3), decimals=12)
    assert np.array_equal(again["X"], out["X"])  # a seed reproduces the data set
