"""Test plumbing stays out of the user's folders (issue #19 item 10): every notebook's ``results_path`` is None
by default -- run by a user it writes no key-numbers file; the test runner injects a path -- and every write
of it is guarded."""

import json

import pytest

from support import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_a_notebook_run_by_a_user_writes_no_results_file(path):
    cells = json.loads(path.read_text())["cells"]
    assert all("id" in c for c in cells), "every cell needs an id (nbformat 4.5; nbformat warns, and will refuse)"
    parameters = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    assert "results_path = None" in "".join(parameters["source"])
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    lines = code.splitlines()
    for k, line in enumerate(lines):
        if "open(results_path" in line:
            assert lines[k - 1].strip().startswith("if results_path"), f"{path.name}: unguarded write: {line}"
