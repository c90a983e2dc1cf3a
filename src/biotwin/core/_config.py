"""Where biotwin keeps the PyNumero ASL library.

Pyomo looks for ``libpynumero_ASL`` in ``$PYOMO_CONFIG_DIR/lib``. biotwin keeps
that folder inside the active virtual (or conda) environment, so that each
environment carries its own build and users never export the variable by hand.
This module is imported first by :mod:`biotwin`, before Pyomo is imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _in_isolated_env() -> bool:
    conda = os.environ.get("CONDA_PREFIX")
    return sys.prefix != sys.base_prefix or (conda is not None and Path(conda) == Path(sys.prefix))


def pyomo_config_dir() -> Path:
    """Return the Pyomo configuration folder biotwin uses.

    Returns
    -------
    pathlib.Path
        ``$PYOMO_CONFIG_DIR`` when set; ``<env prefix>/pyomo`` inside a virtual
        or conda environment; Pyomo's own default (``~/.pyomo``) otherwise.
    """
    if os.environ.get("PYOMO_CONFIG_DIR"):
        return Path(os.environ["PYOMO_CONFIG_DIR"]).resolve()
    if _in_isolated_env():
        return Path(sys.prefix) / "pyomo"
    return Path.home() / ".pyomo"


def configure_pyomo_config_dir() -> Path:
    """Point Pyomo at :func:`pyomo_config_dir`, also if Pyomo is already imported."""
    folder = pyomo_config_dir()
    os.environ["PYOMO_CONFIG_DIR"] = str(folder)
    envvar = sys.modules.get("pyomo.common.envvar")
    if envvar is not None:
        envvar.PYOMO_CONFIG_DIR = str(folder)
    return folder
