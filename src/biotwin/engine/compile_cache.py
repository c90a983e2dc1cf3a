"""A disk cache of the NumPy functions that sympy generates from a model's equations.

The forward integrator (:mod:`biotwin.engine.forward`) and the vectorized expressions
(:mod:`biotwin.engine.expressions`) convert a model's equations at one template time to sympy and
generate NumPy functions from them (``sympy.lambdify``). In a fresh process that is the largest part
of a first simulation: importing sympy alone takes about 0.3 s, converting and generating the
lyophilization model's functions another 0.4 s. The generated functions are plain Python source; this
module keeps that source on disk, so that the next process loads it without importing sympy.

An entry is found by a key computed from what was compiled, not from where it came from: the text
of every equation (named expressions written out, the states, outputs and inputs by their role, the
values of mutable parameters), the names of the components, the versions of Python, NumPy, sympy and
Pyomo, and the source of the modules that compile. A changed equation, recipe structure or library
version is a new key, never a stale entry. An entry that cannot be read (a half-written file, another
format) is ignored and compiled again; a cache directory that cannot be written is not an error.

Where: ``$BIOTWIN_CACHE_DIR/compiled`` when set, else ``$XDG_CACHE_HOME/biotwin/compiled``, else
``~/.cache/biotwin/compiled``. ``BIOTWIN_COMPILE_CACHE=off`` turns the cache off (every process
compiles with sympy, as before).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

#: Bumped when what an entry holds changes shape.
FORMAT = 1

_memory: dict[str, dict] = {}  # key -> payload, entries this process has read or written


def enabled() -> bool:
    """Whether compiled functions are kept on disk (``BIOTWIN_COMPILE_CACHE`` is not ``off``/``0``)."""
    return os.environ.get("BIOTWIN_COMPILE_CACHE", "on").strip().lower() not in {"off", "0", "false", "no"}


def directory() -> Path:
    """The cache directory (see the module docstring)."""
    root = os.environ.get("BIOTWIN_CACHE_DIR")
    if root:
        return Path(root) / "compiled"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "biotwin" / "compiled"


@functools.lru_cache(maxsize=1)
def _environment() -> str:
    """Versions and compiler source that every key includes."""
    versions = {}
    for dist in ("sympy", "numpy", "pyomo"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    here = Path(__file__).resolve().parent
    source = hashlib.sha256()
    for name in ("compile_cache.py", "forward.py", "expressions.py"):
        source.update((here / name).read_bytes())
    return json.dumps(
        {"format": FORMAT, "python": platform.python_version(), **versions, "compiler": source.hexdigest()},
        sort_keys=True,
    )


def key(kind: str, text: str) -> str:
    """The key of what ``text`` describes, compiled by ``kind`` (``forward``, ``expressions``)."""
    return hashlib.sha256(f"{kind}\n{_environment()}\n{text}".encode()).hexdigest()


def get(key: str) -> dict | None:
    """The payload stored under ``key``, or None (not stored, unreadable, or the cache is off)."""
    if key in _memory:
        return _memory[key]
    if not enabled():
        return None
    try:
        payload = json.loads((directory() / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    _memory[key] = payload
    return payload


def put(key: str, payload: dict) -> None:
    """Store ``payload`` (JSON-serializable) under ``key``; written atomically, failures ignored."""
    payload = {**payload, "key": key}
    _memory[key] = payload
    if not enabled():
        return
    folder = directory()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh)
        os.replace(tmp, folder / f"{key}.json")  # readers see the old entry or the whole new one
    except OSError:
        pass


def fetch(key: str, load, compile_) -> None:
    """Use the entry under ``key`` if ``load(payload)`` accepts it; else ``compile_()`` and store what it
    returns (an empty payload -- something not portable -- is not stored)."""
    payload = get(key)
    if payload is None or not load(payload):
        payload = compile_()
        if payload:
            put(key, payload)


# ----------------------------------------------------------------------------------------------------
# generated functions as source


@functools.lru_cache(maxsize=1)
def _namespace() -> dict:
    """What the source sympy generates for NumPy reads: NumPy's names, ``numpy`` and ``reduce``."""
    return {**{k: v for k, v in vars(np).items() if not k.startswith("_")}, "numpy": np, "reduce": functools.reduce}


def source_of(function) -> str | None:
    """The source of a function ``sympy.lambdify`` generated, or None when it reads a name that
    :func:`function_from` would not give it the same object for (it is then not cached)."""
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    names, stack = set(), [function.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if inspect.iscode(c))
    ns, glob = _namespace(), function.__globals__
    for name in names:
        if name in glob and (name not in ns or ns[name] is not glob[name]):
            return None
    return text


def function_from(text: str):
    """The function defined by source :func:`source_of` returned."""
    scope = dict(_namespace())
    before = set(scope)
    exec(compile(text, "<biotwin compiled>", "exec"), scope)  # noqa: S102 - source this module generated
    (name,) = [k for k in scope if k not in before and k != "__builtins__"]
    return scope[name]


def expression_text(expr, labels: dict) -> str:
    """``expr`` as text for a key: named expressions written out, the components in ``labels`` (id ->
    label) by their label, other components by name, and the values of mutable parameters (which the
    conversion to sympy reads as numbers)."""
    from pyomo.core.expr.visitor import (
        ExpressionReplacementVisitor,
        expression_to_string,
        identify_mutable_parameters,
    )

    if not hasattr(expr, "is_expression_type"):
        return repr(expr)
    inlined = ExpressionReplacementVisitor(
        descend_into_named_expressions=True, remove_named_expressions=True
    ).walk_expression(expr)
    text = expression_to_string(inlined, labeler=lambda obj: labels.get(id(obj)) or obj.name)
    mutable = sorted(f"{p.name}={p.value!r}" for p in identify_mutable_parameters(expr))
    return text + (" | " + ", ".join(mutable) if mutable else "")
