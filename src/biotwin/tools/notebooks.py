"""Run the project's notebooks headless with papermill (CI and ``make demo``).

Every notebook has a cell tagged ``parameters`` whose defaults are fast enough
for CI and a ``results_path`` parameter (None for a user: nothing written); its
last cell writes the notebook's key numbers there as JSON. :func:`run_notebook`
injects ``results_path`` so the numbers land next to the executed copy under
``out/``, never in the user's notebook folders.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from biotwin.core.model import helper_module

#: The source repository this module sits in (``src/biotwin/tools`` -> the checkout), when installed editable.
REPOSITORY = Path(__file__).resolve().parents[3]


def repository_reference(name: str):
    """An independent reference implementation from the repository's ``tests/references/<name>.py``.

    The notebooks compare biotwin with second implementations written from the model cards (the scipy
    lyophilization code); those are test references and are not shipped with the package, so they load
    from a source checkout only.
    """
    path = REPOSITORY / "tests" / "references" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference implementation {name!r} at {path}: the independent references live in the source "
            "repository's tests/references (a checkout installed with make setup), not in the installed package"
        )
    return helper_module(path, name)  # the one loader of a Python file beside another, imported once


def find_notebooks(folder: str | Path = "notebooks") -> list[Path]:
    """Notebooks under ``folder`` (recursively), checkpoints excluded, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {folder.resolve()}")
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def run_notebook(
    path: str | Path,
    out_dir: str | Path = "out",
    parameters: dict | None = None,
    root: str | Path | None = None,
    progress_bar: bool = True,
    timeout: int = 1200,
) -> dict:
    """Execute one notebook with papermill and return the numbers it wrote.

    Parameters
    ----------
    path : path of the notebook
    out_dir : folder for the executed notebook and its ``.json`` results
    parameters : extra papermill parameters
    root : folder the notebook path is taken relative to, for the output layout
    progress_bar : show papermill's per-cell progress bar
    timeout : per-cell timeout [s]

    Returns
    -------
    dict
        The JSON the notebook wrote, with ``_executed_notebook`` and ``_wall_time_s`` added.
    """
    import papermill as pm

    path = Path(path).resolve()
    root = Path(root).resolve() if root else path.parent
    rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    out_dir = Path(out_dir).resolve()
    executed = out_dir / rel
    results = executed.with_suffix(".json")
    executed.parent.mkdir(parents=True, exist_ok=True)
    if results.exists():
        results.unlink()
    params = {"results_path": str(results), **(parameters or {})}
    start = time.perf_counter()
    pm.execute_notebook(
        str(path),
        str(executed),
        parameters=params,
        kernel_name="python3",
        cwd=str(path.parent),
        progress_bar=progress_bar,
        execution_timeout=timeout,
    )
    wall = time.perf_counter() - start
    if not results.is_file():
        raise RuntimeError(f"{path} ran but did not write its results to {results} (its last cell must)")
    data = json.loads(results.read_text())
    data["_executed_notebook"] = str(executed)
    data["_wall_time_s"] = wall
    return data
