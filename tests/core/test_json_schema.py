"""The JSON Schema subset the API validates requests with: the document's promises, checked."""

from __future__ import annotations

import pytest

from opsctl.core.json_schema import first_error

NAME = {"type": "string", "pattern": "^[a-z]{1,8}$"}


def test_dollar_is_the_end_of_the_string_not_before_a_newline() -> None:
    assert first_error("evil", NAME) is None
    assert first_error("evil\n", NAME) == "the body must match ^[a-z]{1,8}$"


def test_an_integral_float_is_an_integer_as_json_schema_says() -> None:
    schema = {"type": "integer", "minimum": 0}
    assert first_error(3.0, schema) is None
    assert first_error(3.5, schema) == "the body must be an integer"
    assert first_error(True, schema) == "the body must be an integer"


def test_unknown_fields_are_named_with_the_known_ones() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"reason": {"type": "string"}}}
    assert first_error({"reasn": "x"}, schema) == "'reasn' is not a known field (known: reason)"


def test_nested_fields_and_list_items_are_named_by_their_path() -> None:
    schema = {"type": "object", "properties": {"records": {"type": "array", "items": {
        "type": "object", "required": ["id"], "properties": {"id": {"type": "string", "minLength": 1}}}}}}
    assert first_error({"records": [{"id": "a"}, {"id": ""}]}, schema) == "'records[1].id' must not be empty"
    assert first_error({"records": [{}]}, schema) == "'records[0].id' is required"


def test_any_of_accepts_either_form() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "object", "required": ["n"]}]}
    assert first_error("3/4", schema) is None
    assert first_error({"n": 1}, schema) is None
    assert first_error(4, schema) == "the body matches none of the allowed forms"


@pytest.mark.parametrize(("value", "message"), [
    (0, "the body is out of range: must be greater than 0"), (1, "the body is out of range: must be less than 1"),
    (0.5, None)])
def test_exclusive_bounds(value: float, message: str | None) -> None:
    assert first_error(value, {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}) == message


def test_a_keyword_it_does_not_check_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ValueError, match="oneOf"):
        first_error("x", {"oneOf": [{"type": "string"}]})


def test_an_object_that_fits_no_form_is_told_what_each_form_lacks() -> None:
    prediction = {"type": "object", "title": "a prediction", "required": ["id", "features", "timestamp"]}
    feedback = {"type": "object", "title": "feedback", "required": ["id", "label", "timestamp"]}
    schema = {"anyOf": [prediction, feedback]}
    assert first_error({"id": "p1", "features": {}}, schema) == (
        "the body fits none of its forms: as a prediction, 'timestamp' is required; as feedback, 'label' is required")
    assert first_error({"id": "p1", "label": 1, "timestamp": "t"}, schema) is None
