"""The command line never loses or damages a file: outputs checked before the solve, written atomically.

The commands run in this process (``biotwin.tools.cli.main``) so each test is fast and can patch a failure in.
"""

import errno
import hashlib
import json
import shutil
import time

import pytest

import biotwin
from biotwin.calibration.result import CalibrationResult
from biotwin.core import checks
from biotwin.tools import cli
from support import TEST_MODELS

MONOD = TEST_MODELS / "monod_switch"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(capsys, *args):
    """``biotwin ARGS`` in this process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def leftovers(folder):
    """Temporary files (``.<name>.*.tmp*``) left in ``folder``."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "my.yaml"
    shutil.copy(MONOD / "scenarios" / "default.yaml", path)
    return path


@pytest.fixture
def experiment(tmp_path, recipe):
    """A three-point data file with its recipe ``d.yaml`` next to it."""
    data = tmp_path / "d.csv"
    data.write_text("time,X\n1,0.2\n2,0.4\n3,0.8\n")
    shutil.copy(recipe, tmp_path / "d.yaml")
    return data


def calibrate_args(data, out, *extra):
    return ("calibrate", MONOD, "--data", data, "--estimate", "mu_max", "--nfe", "20", "--out", out, *extra)


# -- refused before the solve ---------------------------------------------------------------------
def test_out_equal_to_scenario_is_refused(capsys, recipe):
    before = sha(recipe)
    status, _, err = run(capsys, "simulate", MONOD, "--scenario", recipe, "--out", recipe, "--overwrite")
    assert status == 2 and "is an input of this command" in err and "solving" not in err
    assert sha(recipe) == before


def test_out_equal_to_summary_is_refused(capsys, tmp_path, recipe):
    out = tmp_path / "run.csv"
    status, _, err = run(
        capsys, "simulate", MONOD, "--scenario", recipe, "--out", out, "--summary", tmp_path / "." / "run.csv"
    )
    assert status == 2 and "--summary" in err and "is also --out" in err
    assert not out.exists()


@pytest.mark.parametrize("out_name", ["d.csv", "d.yaml"])
def test_calibrate_out_equal_to_data_or_its_recipe_is_refused(capsys, tmp_path, experiment, out_name):
    target = tmp_path / out_name
    before = sha(target)
    status, _, err = run(capsys, *calibrate_args(experiment, target, "--overwrite"))
    assert status == 2 and "is an input of this command" in err and "solving" not in err
    assert sha(target) == before


def test_existing_out_needs_overwrite(capsys, tmp_path, recipe):
    out = tmp_path / "run.csv"
    out.write_text("precious\n")
    status, _, err = run(capsys, "simulate", MONOD, "--scenario", recipe, "--out", out, "--nfe", "10")
    assert status == 2 and "exists; not overwriting" in err and "--overwrite" in err and "solving" not in err
    assert out.read_text() == "precious\n"
    status, _, err = run(capsys, "simulate", MONOD, "--scenario", recipe, "--out", out, "--nfe", "10", "--overwrite")
    assert status == 0, err
    assert out.read_text().startswith("time [h],X [g/l]")
    assert leftovers(tmp_path) == []


def test_out_is_a_directory(capsys, tmp_path, recipe):
    (tmp_path / "folder").mkdir()
    status, _, err = run(capsys, "simulate", MONOD, "--scenario", recipe, "--out", tmp_path / "folder", "--overwrite")
    assert status == 2 and "is a folder" in err
    assert (tmp_path / "folder").is_dir()


def test_out_under_missing_folder(capsys, tmp_path, recipe):
    out = tmp_path / "no_such" / "run.csv"
    status, _, err = run(capsys, "simulate", MONOD, "--scenario", recipe, "--out", out)
    assert status == 2 and f"folder {out.parent} does not exist; create it first or choose another --out" in err
    assert not out.parent.exists()


def test_calibrate_out_under_missing_folder_refused_before_fit(capsys, tmp_path, experiment):
    out = tmp_path / "no" / "such" / "fit.json"
    start = time.perf_counter()
    status, _, err = run(capsys, *calibrate_args(experiment, out))
    assert status == 2 and "does not exist; create it first" in err
    assert "solving" not in err and time.perf_counter() - start < 3.0


def test_out_whose_parent_is_a_file(capsys, tmp_path, recipe):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder\n")
    status, _, err = run(capsys, "simulate", MONOD, "--scenario", recipe, "--out", blocker / "run.csv")
    assert status == 2 and "is a file, not a folder" in err and "solving" not in err
    assert blocker.read_text() == "a file, not a folder\n"


# -- solver options and --allow-unusual -----------------------------------------------------------
def test_solver_option_values():
    options = cli._parse_solver_options(["max_iter=30", "max_wall_time=30.0", "tol=1e-6", "mu_strategy=adaptive"])
    assert options == {"max_iter": 30, "max_wall_time": 30.0, "tol": 1e-6, "mu_strategy": "adaptive"}
    assert type(options["max_iter"]) is int and type(options["max_wall_time"]) is float


@pytest.mark.parametrize("item", ["max_iter", "=3", "tol="])
def test_solver_option_malformed(capsys, tmp_path, item):
    out = tmp_path / "run.csv"
    status, _, err = run(capsys, "simulate", MONOD, "--out", out, "--solver-option", item)
    assert status == 2 and f"--solver-option {item!r}: expected KEY=VALUE" in err
    assert not out.exists()


def test_solver_option_reaches_ipopt(capsys, tmp_path, recipe):
    out, summary = tmp_path / "run.csv", tmp_path / "run.json"
    before = sha(recipe)
    status, _, err = run(
        capsys,
        "simulate",
        MONOD,
        "--scenario",
        recipe,
        "--out",
        out,
        "--summary",
        summary,
        "--nfe",
        "10",
        "--solver-option",
        "max_iter=1",
    )
    assert status == 2 and "error: Ipopt did not converge" in err and "after 1 iterations" in err
    assert not out.exists() and not summary.exists() and leftovers(tmp_path) == []
    assert sha(recipe) == before


def test_optimize_without_options_argument_is_a_named_error(capsys, tmp_path):
    status, _, err = run(
        capsys,
        "optimize",
        "lyophilization",
        "--scenario",
        "optimize_case1",
        "--out",
        tmp_path / "o.csv",
        "--solver-option",
        "max_iter=5",
    )
    assert status == 2 and "its optimize() in model.py takes no solver options" in err
    assert not (tmp_path / "o.csv").exists()


def test_allow_unusual_is_on_during_the_run(capsys, tmp_path, monkeypatch):
    seen = []

    def fake_simulate(self, **kwargs):
        seen.append((checks.unusual_allowed(), kwargs["options"]))
        raise biotwin.core.errors.ScenarioError("stop here")

    monkeypatch.setattr(biotwin.core.model.Model, "simulate", fake_simulate)
    out = tmp_path / "run.csv"
    assert run(capsys, "simulate", MONOD, "--out", out, "--allow-unusual", "--solver-option", "tol=1e-9")[0] == 2
    assert run(capsys, "simulate", MONOD, "--out", out)[0] == 2
    assert seen == [(True, {"tol": 1e-9}), (False, None)]
    assert not checks.unusual_allowed()


# -- failures while writing -----------------------------------------------------------------------
def test_write_failure_leaves_no_partial_pair(capsys, tmp_path, recipe, monkeypatch):
    def disk_full(data):
        def write(path):
            path.write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device")

        return write

    monkeypatch.setattr(cli, "_json_writer", disk_full)
    out, summary = tmp_path / "run.csv", tmp_path / "run.json"
    status, _, err = run(
        capsys, "simulate", MONOD, "--scenario", recipe, "--out", out, "--summary", summary, "--nfe", "10"
    )
    assert status == 2 and f"error: cannot write {summary}: No space left on device" in err
    assert not out.exists() and not summary.exists() and leftovers(tmp_path) == []


def test_calibrate_save_failure_after_fit_keeps_the_result(capsys, tmp_path, experiment, monkeypatch):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    out = out_dir / "fit.json"
    save = CalibrationResult.save

    def failing_save(self, path, overwrite=False):
        if path == out:
            raise OSError(errno.ENOENT, "No such file or directory", str(path))
        return save(self, path, overwrite=overwrite)

    monkeypatch.setattr(CalibrationResult, "save", failing_save)
    monkeypatch.chdir(tmp_path)
    status, stdout, err = run(capsys, *calibrate_args(experiment, out))
    assert status == 1
    assert "calibration of 'monod_switch'" in stdout and "mu_max" in stdout, "the estimates are printed"
    kept = list(tmp_path.glob("fit.*.json"))
    assert len(kept) == 1 and f"error: cannot write {out}" in err and str(kept[0]) in err
    assert "mu_max" in json.loads(kept[0].read_text())["parameters"]
    assert not out.exists()


# -- notebooks ------------------------------------------------------------------------------------
def test_notebooks_run_missing_dir(capsys, tmp_path):
    status, _, err = run(capsys, "notebooks", "run", "--dir", tmp_path / "missing")
    assert status == 2 and f"--dir {tmp_path / 'missing'}: no notebooks folder" in err


def test_notebooks_run_missing_only(capsys, tmp_path):
    status, _, err = run(capsys, "notebooks", "run", "--dir", tmp_path, "--only", tmp_path / "nope.ipynb")
    assert status == 2 and f"--only {tmp_path / 'nope.ipynb'}: no notebook" in err


def test_notebooks_run_out_over_its_sources_is_refused(capsys, tmp_path):
    (tmp_path / "a.ipynb").write_text("{}")
    status, _, err = run(capsys, "notebooks", "run", "--dir", tmp_path, "--out", tmp_path)
    assert status == 2 and "would replace" in err
    assert (tmp_path / "a.ipynb").read_text() == "{}"


def test_notebooks_run_with_a_parameter_writes_a_solutions_notebook(capsys, tmp_path):
    """The trainer's solutions notebook of a module: the course notebook run with show_solutions=true."""
    from support import ROOT

    course = ROOT / "notebooks" / "training"
    status, _, err = run(
        capsys,
        "notebooks",
        "run",
        "--dir",
        course,
        "--only",
        course / "01_what_is_a_digital_twin.ipynb",
        "--out",
        tmp_path,
        "-p",
        "show_solutions=true",
    )
    assert status == 0, err
    executed = json.loads((tmp_path / "01_what_is_a_digital_twin.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert printed.count("correct: ") == 3 and "not yet" not in printed
    for bad, message in (("results_path=x", "the runner sets it"), ("show solutions", "expected NAME=VALUE")):
        status, _, err = run(capsys, "notebooks", "run", "--dir", course, "--out", tmp_path / "b", "-p", bad)
        assert status != 0 and message in err
