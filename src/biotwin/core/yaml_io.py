"""YAML reading that refuses duplicate keys and reads booleans as YAML 1.2 does.

PyYAML keeps the last of two equal keys in a mapping without a word, so a recipe that sets
``duration`` twice runs with whichever came last. Every biotwin YAML file (recipes,
``parameters.yaml``, validation protocols) is read through :func:`load`, which names the key and
both lines instead.

PyYAML also follows YAML 1.1, where ``on``, ``off``, ``yes``, ``no``, ``y`` and ``n`` are booleans:
a protocol's criterion ``{metric: rmse_sd, on: validation}`` would be read with the key ``True``.
:func:`load` reads only ``true`` and ``false`` as booleans (the YAML 1.2 core schema), so those
words stay words.
"""

from __future__ import annotations

import re
from typing import ClassVar

import yaml

_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader whose mappings refuse a key that appears twice; YAML 1.2 booleans only."""

    yaml_implicit_resolvers: ClassVar[dict] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key] + 1}, again on line "
                    f"{key_node.start_mark.line + 1}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))


def load(text: str):
    """Parse YAML ``text`` like :func:`yaml.safe_load`, but a duplicate key is a :class:`yaml.YAMLError` and
    only ``true``/``false`` are booleans (``on``, ``yes``, ``no`` stay strings)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_mapping_file(path, what: str, error: type, keys: str):
    """Read a YAML file that must hold a mapping; every failure is ``error`` naming ``what`` and the file.

    ``keys`` is what the mapping holds, for the message (e.g. ``"model, recipe, grid, ..."``).
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path}: no such file")
    try:
        raw = load(path.read_text())
    except yaml.YAMLError as exc:  # a syntax error or a duplicate key
        raise error(f"{what} {path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: a {what} is a mapping of keys ({keys})")
    return raw
