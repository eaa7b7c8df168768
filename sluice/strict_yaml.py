"""YAML loading that refuses duplicate keys: plain ``yaml.safe_load`` silently keeps the last one, so a
params file that sets ``ingest:`` twice would lose the first section without a word."""

from __future__ import annotations

import yaml


def load_yaml(text: str) -> object:
    """``yaml.safe_load`` that raises :class:`DuplicateKey` naming the dotted key and both lines."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


class DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                dotted = ".".join([*self._path(node), str(key)])
                raise DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key '{dotted}' "
                                    f"(first on line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def _path(self, target) -> list[str]:
        """The keys leading from the document root to ``target`` (for the error message)."""
        def walk(node, trail):
            if node is target:
                return trail
            if isinstance(node, yaml.MappingNode):
                children = [(str(k.value), v) for k, v in node.value]
            elif isinstance(node, yaml.SequenceNode):
                children = [(str(i), v) for i, v in enumerate(node.value)]
            else:
                return None
            for name, child in children:
                found = walk(child, [*trail, name])
                if found is not None:
                    return found
            return None

        return walk(self._root, []) or []

    def construct_document(self, node):
        self._root = node
        return super().construct_document(node)
