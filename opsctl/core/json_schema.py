"""The part of JSON Schema (2020-12) the daemon's API document uses, checked against a request.

The API validates every request against the same schemas its OpenAPI document publishes, so the
document states exactly what is accepted: a request that fits it is never refused for its shape.
Supported keywords: ``type``, ``enum``, ``pattern``, ``minLength``, ``maxLength``, ``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``required``, ``properties``,
``additionalProperties``, ``items``, ``minItems``, ``maxItems``, ``anyOf``. Any other keyword is a
programming error (the document would promise what is not checked).

>>> first_error({"a": 1}, {"type": "object", "properties": {"a": {"type": "string"}}})
"'a' must be a string"
>>> first_error([1, 2], {"type": "array", "items": {"type": "integer", "minimum": 2}})
"'[0]' is out of range: must be at least 2"
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

SUPPORTED_KEYWORDS = frozenset({
    "type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "required", "properties", "additionalProperties", "items", "minItems", "maxItems",
    "anyOf", "description", "format", "examples", "default", "title",
})

_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "object": "an object", "array": "a list", "null": "null"}


def first_error(value: Any, schema: dict[str, Any], at: str = "") -> str | None:
    """The first way ``value`` breaks ``schema`` as a one-line message naming the field, or None."""
    unknown = set(schema) - SUPPORTED_KEYWORDS
    if unknown:
        raise ValueError(f"unsupported JSON Schema keywords {sorted(unknown)}")
    name = f"{at!r}" if at else "the body"
    if "anyOf" in schema:
        problems = [first_error(value, option, at) for option in schema["anyOf"]]
        if all(problems):
            if all("title" in option for option in schema["anyOf"]):  # say what each form lacks
                return f"{name} fits none of its forms: " + "; ".join(
                    f"as {option['title']}, {problem}" for option, problem in zip(schema["anyOf"], problems,
                                                                                   strict=True))
            return f"{name} matches none of the allowed forms"
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, kind) for kind in allowed):
            return f"{name} must be " + " or ".join(_TYPE_WORDS[kind] for kind in allowed)
    if "enum" in schema and value not in schema["enum"]:
        return f"{name} must be one of {', '.join(repr(v) for v in schema['enum'])}"
    if isinstance(value, str):
        return _string_error(value, schema, name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_error(value, schema, name)
    if isinstance(value, list):
        return _array_error(value, schema, at, name)
    if isinstance(value, dict):
        return _object_error(value, schema, at)
    return None


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":  # JSON Schema counts 3.0 as an integer
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    expected = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}[kind]
    return type(value) is expected


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    # In JSON Schema (ECMA-262) '$' is the end of the string; in Python it also matches before a final
    # newline, which let "evil\n" through a name pattern.
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1] + "\\Z"
    return re.compile(text)


def _string_error(value: str, schema: dict[str, Any], name: str) -> str | None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{name} must not be empty" if schema["minLength"] == 1 else \
            f"{name} must have at least {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{name} must have at most {schema['maxLength']} characters"
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        if "title" in schema and "description" in schema:  # e.g. "invalid model name 'x y': use letters, ..."
            return f"invalid {schema['title']} {value!r}: {schema['description']}"
        return f"{name} must match {schema['pattern']}"
    return None


def _number_error(value: float, schema: dict[str, Any], name: str) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"{name} is out of range: must be at least {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{name} is out of range: must be at most {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return f"{name} is out of range: must be greater than {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        return f"{name} is out of range: must be less than {schema['exclusiveMaximum']}"
    return None


def _array_error(value: list[Any], schema: dict[str, Any], at: str, name: str) -> str | None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"{name} must have at least {schema['minItems']} item(s)"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{name} must have at most {schema['maxItems']} items"
    if "items" in schema:
        for index, item in enumerate(value):
            problem = first_error(item, schema["items"], f"{at}[{index}]")
            if problem:
                return problem
    return None


def _object_error(value: dict[str, Any], schema: dict[str, Any], at: str) -> str | None:
    prefix = f"{at}." if at else ""
    for key in schema.get("required", ()):
        if key not in value:
            return f"{prefix + key!r} is required"
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            problem = first_error(item, properties[key], prefix + key)
        elif extra is False:
            known = ", ".join(sorted(properties)) or "none"
            return f"{prefix + key!r} is not a known field (known: {known})"
        elif isinstance(extra, dict):
            problem = first_error(item, extra, prefix + key)
        else:
            problem = None
        if problem:
            return problem
    return None
