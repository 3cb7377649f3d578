"""YAML config files whose errors name the file, the line and the key.

Price overrides, the collector config, budgets and shared costs are edited
by hand by people who are not the authors; a ``KeyError`` deep inside a
report helps nobody. Everything that reads a YAML file goes through
:func:`load`, then either the typed getters of :class:`Node` or
:func:`validate` (a pydantic model declares the file), so every mistake is
reported as ``file:line: key: what is wrong`` and nothing else is half-loaded.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError
    from pydantic_core import ErrorDetails

    M = TypeVar("M", bound=BaseModel)


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


# -- pydantic models ----------------------------------------------------------------
def validate(node: Node, model: type[M], context: dict[str, Any] | None = None) -> M:
    """``node`` as an instance of the pydantic ``model``, or a :class:`ConfigError`.

    Scalars reach the model as YAML resolves them (so ``port: 4317`` is an int
    and ``enabled: yes`` a bool, as everywhere else), except where the model
    wants text: there the scalar's own text is kept (``token: 0123`` stays
    ``"0123"``, not the octal number 83). A bare ``section:`` means the
    section's defaults. Validation errors come back as ``file:line: key:
    problem`` with the line of the offending key or value.
    """
    from pydantic import ValidationError

    data = _data(node, model)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise _first_error(node, model, exc) from None


def _data(node: Node, annotation: Any) -> Any:
    """The YAML under ``node`` as plain Python values, shaped by the model's annotations."""
    raw = node._node
    if isinstance(raw, yaml.MappingNode):
        fields = _fields(annotation)
        out: dict[str, Any] = {}
        for key, child in node.items():  # items() rejects duplicate keys
            field = fields.get(key)
            if _model_of(field) is not None and _is_null(child._node):
                continue  # a bare `section:` keeps the section's defaults
            out[key] = _data(child, field)
        return out
    if isinstance(raw, yaml.SequenceNode):
        return [_data(item, None) for item in node.list()]
    if _is_null(raw):
        return None
    if _is_text(annotation):
        return str(raw.value)
    try:
        return yaml.safe_load(yaml.serialize(raw))
    except ValueError as exc:  # e.g. an impossible date such as 2025-02-30
        raise node.error(f"invalid value {raw.value!r}: {exc}") from None


def _is_null(raw: yaml.Node) -> bool:
    return isinstance(raw, yaml.ScalarNode) and raw.tag.endswith(":null")


def _members(annotation: Any) -> list[Any]:
    """``X | None`` -> [X, None]; ``Annotated[X, ...]`` -> [X]; anything else -> [it]."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    from pydantic import BaseModel

    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _fields(annotation: Any) -> dict[str, Any]:
    model = _model_of(annotation)
    return {} if model is None else {k: f.annotation for k, f in model.model_fields.items()}


def _is_text(annotation: Any) -> bool:
    kinds = {m for m in _members(annotation) if m is not type(None)}
    return kinds == {str}


def _first_error(node: Node, model: type[BaseModel], exc: ValidationError) -> ConfigError:
    """The error nearest the top of the file, worded like the :class:`Node` getters."""
    errors = [_config_error(node, model, e) for e in exc.errors()]
    return min(errors, key=lambda e: e.line or 0)


def _config_error(node: Node, model: type[BaseModel], error: ErrorDetails) -> ConfigError:
    """Follow the error's location down the YAML (and the model) to the offending line."""
    at, annotation = node, model
    kind, loc = error["type"], error["loc"]
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(at._node, yaml.SequenceNode):
            items = at.list()
            if part >= len(items):
                break
            at, annotation = items[part], None
            continue
        if not isinstance(part, str) or not at.is_mapping():
            break  # a union member's tag, or no deeper YAML: report at this node
        if not at.has(part):
            if kind == "missing":
                return at.error("required key is missing", key=part)
            break
        if kind == "extra_forbidden" and i == len(loc) - 1:
            key_node = next(k for k, _ in at._node.value if str(k.value) == part)
            expected = ", ".join(sorted(_fields(annotation)))
            return at.error(f"unknown key (expected one of: {expected})", key=part, at=key_node)
        at, annotation = at.child(part), _fields(annotation).get(part)
    return ConfigError(at.file, at.line, at.path or None, _problem(error, at._node))


def _problem(error: ErrorDetails, raw: yaml.Node) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "expected a mapping (key: value)"
    if not isinstance(raw, yaml.ScalarNode):
        return "expected a single value"
    text = raw.value
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {text!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {text!r}"
    if kind in ("string_type", "string_too_short"):
        return "expected a text value"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}, got {error['input']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}, got {error['input']}"
    return error["msg"]
