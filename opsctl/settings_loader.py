"""Turn TOML tables into typed settings dataclasses, naming the key in every error.

Each section of ``opsctl.toml`` is a frozen dataclass whose field names are the
TOML keys. This module knows nothing about which sections exist; it checks
types, rejects unknown keys (with a did-you-mean), recurses into nested
dataclasses, lists and tables, and turns the ``ValueError`` a dataclass raises
from ``__post_init__`` into a :class:`~opsctl.errors.ConfigError` that names
the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from opsctl.errors import ConfigError

T = TypeVar("T")

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def load_dataclass(cls: type[T], table: Mapping[str, Any], *, key: str, path: str | None) -> T:
    """Build ``cls`` from a TOML table; ``key`` is the dotted path used in messages."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"must be a table, got {_describe(table)}", key=key, path=path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name, raw in table.items():
        field_key = f"{key}.{name}" if key else name
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"unknown key {name!r}{hint}", key=field_key, path=path)
        values[name] = _convert(hints[name], raw, key=field_key, path=path)
    try:
        return cls(**values)
    except ValueError as error:
        raise ConfigError(str(error), key=key or None, path=path) from error
    except TypeError as error:  # a required field without a default is missing
        raise ConfigError(f"incomplete: {error}", key=key or None, path=path) from error


def _convert(annotation: Any, raw: Any, *, key: str, path: str | None) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if raw is None and len(options) < len(args):
            return None
        errors: list[ConfigError] = []
        for option in options:
            try:
                return _convert(option, raw, key=key, path=path)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is typing.Literal:
        if raw not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"must be one of {allowed}, got {raw!r}", key=key, path=path)
        return raw
    if origin in (list, tuple):
        if not isinstance(raw, list):
            raise ConfigError(f"must be a list, got {_describe(raw)}", key=key, path=path)
        item_type = args[0] if args else Any
        items = [_convert(item_type, item, key=f"{key}[{i}]", path=path) for i, item in enumerate(raw)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"must be a table, got {_describe(raw)}", key=key, path=path)
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _convert(value_type, v, key=f"{key}.{k}", path=path) for k, v in raw.items()}
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return load_dataclass(annotation, raw, key=key, path=path)
    if isinstance(annotation, type) and issubclass(annotation, str) and annotation is not str:
        # StrEnum and friends
        try:
            return annotation(raw)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in annotation)  # type: ignore[attr-defined]
            raise ConfigError(f"must be one of {allowed}, got {raw!r}", key=key, path=path) from None
    if annotation is Any:
        return raw
    if annotation is bool:
        if not isinstance(raw, bool):
            raise ConfigError(f"must be true or false, got {_describe(raw)}", key=key, path=path)
        return raw
    if annotation is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"must be an integer, got {_describe(raw)}", key=key, path=path)
        return raw
    if annotation is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(f"must be a number, got {_describe(raw)}", key=key, path=path)
        # TOML allows nan and inf; no setting means either, and both slip past `<= 0` checks.
        if not math.isfinite(raw):
            raise ConfigError(f"must be a finite number, got {raw}", key=key, path=path)
        return float(raw)
    if annotation is str:
        if not isinstance(raw, str):
            raise ConfigError(f"must be a string, got {_describe(raw)}", key=key, path=path)
        return raw
    raise ConfigError(f"unsupported setting type {annotation!r}", key=key, path=path)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__
