"""The layers drawn in ``biotwin/__init__.py`` hold: no module imports from a layer above its own.

Every import in the package is read (also those inside functions), so a lazy import cannot hide
an upward dependency. Model folders use only public names of biotwin.
"""

import ast
from pathlib import Path

import pytest

from support import ROOT

PACKAGE = ROOT / "src" / "biotwin"
LAYERS = {
    "core": 0,
    "engine": 1,
    "processes": 2,
    "calibration": 3,
    "optimize": 3,
    "twin": 3,
    "sweep": 3,
    "ui": 4,
    "governance": 5,
    "tools": 6,
    "__init__": 6,
    "__main__": 6,
}
# tools/ sit with the public API (the CLI is written against it); the Model facade delegates to the engine when called (documented in the package docstring)
ALLOWED_UPWARD = {("core/model.py", "biotwin.engine.forward"), ("core/model.py", "biotwin.engine.simulation")}


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "biotwin":
                for alias in node.names:
                    yield f"biotwin.{alias.name}", node.lineno
            else:
                yield node.module, node.lineno


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "biotwin":
        return None
    if len(parts) == 1:
        return LAYERS["__init__"]
    return LAYERS.get(parts[1], LAYERS["__init__"])  # a top-level name of biotwin is the public API


def _own_layer(path: Path) -> int:
    rel = path.relative_to(PACKAGE)
    return LAYERS[rel.parts[0] if len(rel.parts) > 1 else rel.stem]


def test_every_module_sits_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        _own_layer(path)  # raises KeyError for a module outside the drawn layers


def test_no_layer_imports_a_higher_one():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _own_layer(path)
        rel = path.relative_to(PACKAGE).as_posix()
        for module, line in _imports(path):
            target = _layer(module)
            if target is not None and target > own and (rel, module) not in ALLOWED_UPWARD:
                violations.append(f"{rel}:{line} imports {module}")
    assert not violations, "upward imports:\n" + "\n".join(violations)


@pytest.mark.parametrize("folder", sorted(p.name for p in (ROOT / "models").iterdir() if (p / "model.py").is_file()))
def test_model_folders_use_only_public_names(folder):
    private = []
    for path in sorted((ROOT / "models" / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("biotwin"):
                private += [
                    f"{path.name}:{node.lineno} {node.module}.{a.name}" for a in node.names if a.name.startswith("_")
                ]
                if any(part.startswith("_") for part in node.module.split(".")):
                    private.append(f"{path.name}:{node.lineno} {node.module}")
    assert not private, "model folder imports private biotwin names:\n" + "\n".join(private)
