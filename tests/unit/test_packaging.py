"""pyproject.toml (pip) and environment.yml (conda) list the same dependencies."""

import re
import tomllib

import yaml

from support import ROOT

# PyPI name -> conda-forge name, where they differ
PIP_TO_CONDA = {"cyipopt-wheels": "cyipopt"}
# conda-only packages: what pip users get from Debian (make setup) or from the wheel itself
CONDA_ONLY = {"python", "pip", "ipopt", "ampl-asl", "cmake", "cxx-compiler", "make"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def test_pip_and_conda_list_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        pip_names |= {_name(r) for r in extra}
    pip_names = {PIP_TO_CONDA.get(n, n) for n in pip_names}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    assert pip_names - conda_names == set(), "in pyproject.toml but not environment.yml"
    assert conda_names - pip_names - CONDA_ONLY == set(), "in environment.yml but not pyproject.toml"
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_section and "-e ." in pip_section[0]["pip"], "environment.yml installs biotwin itself"


def test_wheel_ships_the_models():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include.get("models") == "biotwin/models"


def test_models_load_from_an_installed_wheel(tmp_path):
    """A plain (non-editable) install carries the models: load_model finds them inside the package."""
    import subprocess
    import sys

    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheel_dir)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(wheel_dir.glob("biotwin-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    code = (
        "import biotwin; m = biotwin.load_model('mab_fedbatch'); print(m.folder); "
        "print(sorted(biotwin.available_models()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    folder = done.stdout.splitlines()[0]
    assert folder.startswith(str(target)), "the model must come from the installed package, not the checkout"
    assert "lyophilization" in done.stdout and "mab_fedbatch" in done.stdout


def test_setup_solver_names_the_missing_package(monkeypatch):
    import pytest

    from biotwin.core.errors import SolverSetupError
    from biotwin.tools import solver_build

    monkeypatch.setattr(solver_build, "_dpkg_files", lambda package: [])
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    monkeypatch.setattr(solver_build.sys, "prefix", "/nonexistent-prefix")
    with pytest.raises(SolverSetupError, match="libamplsolver-dev"):
        solver_build.find_asl()


def test_code_and_notebooks_are_ruff_clean():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    for command in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run([ruff, *command, str(ROOT)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"ruff {' '.join(command)}:\n{done.stdout}{done.stderr}"
