"""Build PyNumero's ASL library (``libpynumero_ASL``) into the environment.

Pyomo's ``pyomo build-extensions`` downloads ASL and fails offline. Debian's
``libamplsolver-dev`` (netlib ASL) or conda-forge's ``ampl-asl`` provide it;
we compile Pyomo's own ``pyomo/contrib/pynumero/src`` against it with cmake and
install into :func:`biotwin.core._config.pyomo_config_dir` (DESIGN.md, "Solver path").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from biotwin.core._config import configure_pyomo_config_dir
from biotwin.core.errors import SolverSetupError

DEBIAN_PACKAGES = ("libamplsolver-dev", "cmake", "g++")


def _dpkg_files(package: str) -> list[str]:
    if shutil.which("dpkg") is None:
        return []
    done = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def find_asl() -> tuple[Path, Path]:
    """Locate the ASL headers folder and library.

    Returns
    -------
    (include_dir, library) : (Path, Path)

    Raises
    ------
    SolverSetupError
        Naming the package to install when neither Debian's nor conda's ASL is present.
    """
    files = _dpkg_files("libamplsolver-dev")
    headers = [Path(f) for f in files if f.endswith("/asl.h")]
    libraries = [Path(f) for f in files if Path(f).name == "libamplsolver.so"]
    if headers and libraries:
        return headers[0].parent, libraries[0]
    prefix = os.environ.get("CONDA_PREFIX") or (sys.prefix if (Path(sys.prefix) / "conda-meta").is_dir() else None)
    if prefix:
        for include in (Path(prefix) / "include" / "asl", Path(prefix) / "include"):
            for name in ("libasl.so", "libamplsolver.so", "libasl.dylib"):
                lib = Path(prefix) / "lib" / name
                if (include / "asl.h").is_file() and lib.is_file():
                    return include, lib
    raise SolverSetupError(
        "the AMPL Solver Library (ASL) headers are missing: install the Debian package "
        "'libamplsolver-dev' (apt-get install libamplsolver-dev cmake g++) "
        "or, in a conda environment, 'ampl-asl' from conda-forge"
    )


def pynumero_source() -> Path:
    """Pyomo's PyNumero C++ sources (``pyomo/contrib/pynumero/src``)."""
    import pyomo

    src = Path(pyomo.__file__).parent / "contrib" / "pynumero" / "src"
    if not (src / "CMakeLists.txt").is_file():
        raise SolverSetupError(f"Pyomo's PyNumero sources are missing at {src}")
    return src


def build_pynumero(force: bool = False, log=print) -> Path:
    """Compile and install ``libpynumero_ASL`` into the Pyomo config folder.

    Parameters
    ----------
    force : bool
        Rebuild even when a working library is present.
    log : callable
        Receives progress lines.

    Returns
    -------
    pathlib.Path
        The installed library.
    """
    prefix = configure_pyomo_config_dir()
    target = prefix / "lib" / "libpynumero_ASL.so"
    if target.is_file() and not force:
        log(f"PyNumero ASL library already built: {target} (use --force to rebuild)")
        return target
    for tool in ("cmake", "make", "c++"):
        if shutil.which(tool) is None:
            raise SolverSetupError(f"'{tool}' is not installed: apt-get install {' '.join(DEBIAN_PACKAGES)}")
    include, library = find_asl()
    src = pynumero_source()
    log(
        f"building PyNumero ASL library from {src}\n  ASL headers {include}\n  ASL library {library}\n"
        f"  installing into {prefix}"
    )
    with tempfile.TemporaryDirectory(prefix="pynumero-build-") as build:
        steps = [
            [
                "cmake",
                str(src),
                "-DBUILD_ASL=ON",
                f"-DASL_INCLUDE_DIR={include}",
                f"-DASL_LIBRARY={library}",
                f"-DCMAKE_INSTALL_PREFIX={prefix}",
                "-DCMAKE_BUILD_TYPE=Release",
            ],
            ["make", f"-j{os.cpu_count() or 1}", "install"],
        ]
        for cmd in steps:
            done = subprocess.run(cmd, cwd=build, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SolverSetupError(f"`{' '.join(cmd)}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if not target.is_file():
        raise SolverSetupError(f"the build finished but {target} is missing")
    log(f"installed {target}")
    return target
