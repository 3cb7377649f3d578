"""YAML config files whose errors name the file, the line and the key.

Price overrides, the collector config, budgets and shared costs are edited
by hand by people who are not the authors; a ``KeyError`` deep inside a
report helps nobody. Everything that reads a YAML file goes through
:func:`load` and the typed getters of :class:`Node`, so every mistake is
reported as ``file:line: key: what is wrong`` and nothing else is half-loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file is wrong; the message names file, line and key."""

    def __init__(self, file: str, line: int | None, key: str | None, problem: str) -> None:
        self.file, self.line, self.key, self.problem = file, line, key, problem
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class Node:
    """A YAML value with its position, and getters that fail with that position."""

    def __init__(self, node: yaml.Node, file: str, path: str = "") -> None:
        self._node, self.file, self.path = node, file, path

    # -- position / errors ------------------------------------------------
    @property
    def line(self) -> int:
        return self._node.start_mark.line + 1

    def error(
        self, problem: str, key: str | None = None, at: yaml.Node | None = None
    ) -> ConfigError:
        node = at or self._node
        return ConfigError(self.file, node.start_mark.line + 1, self._join(key), problem)

    def _join(self, key: str | None) -> str | None:
        if key is None:
            return self.path or None
        return f"{self.path}.{key}" if self.path else key

    # -- shape --------------------------------------------------------------
    def is_mapping(self) -> bool:
        return isinstance(self._node, yaml.MappingNode)

    def _mapping(self) -> dict[str, yaml.Node]:
        if not isinstance(self._node, yaml.MappingNode):
            raise self.error("expected a mapping (key: value)")
        out: dict[str, yaml.Node] = {}
        for k, v in self._node.value:
            key = str(k.value)
            if key in out:
                raise self.error("duplicate key", key=key, at=k)
            out[key] = v
        return out

    def keys(self) -> list[str]:
        return list(self._mapping())

    def check_keys(self, allowed: set[str] | frozenset[str]) -> None:
        """Reject unknown keys: a typo must not silently fall back to a default."""
        for k, _v in self._node.value if self.is_mapping() else []:
            if str(k.value) not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.error(f"unknown key (expected one of: {hint})", key=str(k.value), at=k)

    def has(self, key: str) -> bool:
        return key in self._mapping()

    def child(self, key: str) -> Node:
        m = self._mapping()
        if key not in m:
            raise self.error("required key is missing", key=key)
        return Node(m[key], self.file, self._join(key) or key)

    def items(self) -> Iterator[tuple[str, Node]]:
        for k, v in self._mapping().items():
            yield k, Node(v, self.file, self._join(k) or k)

    def list(self, key: str | None = None, required: bool = False) -> list[Node]:
        """Items of the sequence at ``key`` (or of this node when ``key`` is None)."""
        if key is not None:
            if not self.has(key):
                if required:
                    raise self.error("required key is missing", key=key)
                return []
            return self.child(key).list()
        if isinstance(self._node, yaml.ScalarNode) and self._node.tag.endswith(":null"):
            return []
        if not isinstance(self._node, yaml.SequenceNode):
            raise self.error("expected a list")
        return [Node(v, self.file, f"{self.path}[{i}]") for i, v in enumerate(self._node.value)]

    # -- scalars --------------------------------------------------------------
    def _scalar(self, key: str) -> tuple[Any, yaml.Node]:
        node = self.child(key)._node
        if not isinstance(node, yaml.ScalarNode):
            raise self.error("expected a single value", key=key, at=node)
        if node.value == "":
            return None, node
        try:
            return yaml.safe_load(yaml.serialize(node)), node
        except ValueError as exc:  # e.g. an impossible date such as 2025-02-30
            raise self.error(f"invalid value {node.value!r}: {exc}", key=key, at=node) from None

    def get_str(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        if not self.has(key):
            if required:
                raise self.error("required key is missing", key=key)
            return default
        value, node = self._scalar(key)
        if value is None or isinstance(value, (dict, list)):
            raise self.error("expected a text value", key=key, at=node)
        return str(value)

    def get_decimal(
        self, key: str, default: Decimal | None = None, required: bool = False,
        minimum: Decimal | None = Decimal(0), maximum: Decimal | None = None,
    ) -> Decimal | None:
        """A money or rate value, parsed from its text so 0.1 stays exactly 0.1."""
        if not self.has(key):
            if required:
                raise self.error("required key is missing", key=key)
            return default
        node = self.child(key)._node
        if not isinstance(node, yaml.ScalarNode) or isinstance(node.value, bool):
            raise self.error("expected a number", key=key, at=node)
        try:
            value = Decimal(str(node.value).replace("_", ""))
        except InvalidOperation:
            raise self.error(f"expected a number, got {node.value!r}", key=key, at=node) from None
        if not value.is_finite():
            raise self.error("expected a finite number", key=key, at=node)
        if minimum is not None and value < minimum:
            raise self.error(f"must be >= {minimum}, got {value}", key=key, at=node)
        if maximum is not None and value > maximum:
            raise self.error(f"must be <= {maximum}, got {value}", key=key, at=node)
        return value

    def get_int(self, key: str, default: int | None = None, required: bool = False,
                minimum: int | None = 0) -> int | None:
        if not self.has(key):
            if required:
                raise self.error("required key is missing", key=key)
            return default
        value, node = self._scalar(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {node.value!r}", key=key, at=node)
        if minimum is not None and value < minimum:
            raise self.error(f"must be >= {minimum}, got {value}", key=key, at=node)
        return value

    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        if not self.has(key):
            return default
        value, node = self._scalar(key)
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {node.value!r}", key=key, at=node)
        return value

    def get_date(
        self, key: str, default: dt.date | None = None, required: bool = False
    ) -> dt.date | None:
        if not self.has(key):
            if required:
                raise self.error("required key is missing", key=key)
            return default
        node = self.child(key)._node
        # Parse the text ourselves: YAML's own timestamp parsing fails on 2025-02-30
        # with a bare ValueError and would accept a full timestamp silently.
        text = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise self.error(
                f"expected a date YYYY-MM-DD, got {node.value!r}", key=key, at=node
            ) from None

    def get_str_list(self, key: str) -> list[str]:
        out = []
        for item in self.list(key):
            if not isinstance(item._node, yaml.ScalarNode):
                raise item.error("expected a text value")
            out.append(str(item._node.value))
        return out


def load(path: str | Path) -> Node:
    """Parse ``path``; a missing file or bad YAML syntax is a :class:`ConfigError` too."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, None, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, None, None, f"cannot read: {exc}") from None
    return loads(text, file)


def loads(text: str, file: str = "<string>") -> Node:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(file, line, None, f"invalid YAML: {exc.problem or exc}") from None
    if node is None:
        node = yaml.MappingNode(tag="tag:yaml.org,2002:map", value=[])
        node.start_mark = node.end_mark = yaml.Mark(file, 0, 0, 0, None, None)
    return Node(node, file)
