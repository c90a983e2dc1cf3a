"""pyproject.toml (pip) and environment.yml (conda) list the same dependencies."""

import re
import tomllib

import yaml

from conftest import ROOT

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
