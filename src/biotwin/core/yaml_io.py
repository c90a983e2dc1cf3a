"""YAML reading that refuses duplicate keys.

PyYAML keeps the last of two equal keys in a mapping without a word, so a recipe that sets
``duration`` twice runs with whichever came last. Every biotwin YAML file (recipes,
``parameters.yaml``) is read through :func:`load`, which names the key and both lines instead.
"""

from __future__ import annotations

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader whose mappings refuse a key that appears twice."""

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


def load(text: str):
    """Parse YAML ``text`` like :func:`yaml.safe_load`, but a duplicate key is a :class:`yaml.YAMLError`."""
    return yaml.load(text, Loader=_UniqueKeyLoader)
