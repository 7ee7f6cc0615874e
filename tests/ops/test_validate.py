from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from treadle.errors import StepError
from treadle.stdlib_ops.validate import Validation

if TYPE_CHECKING:
    from tests.ops.conftest import Call, Scripted

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


async def test_valid_value(call: Call, scripted: Scripted) -> None:
    got = await call(
        "validate", scripted(), {"value": {"name": "Ada", "age": 36}, "json_schema": SCHEMA}
    )
    assert got == Validation(valid=True, errors=[], feedback="", value={"name": "Ada", "age": 36})


async def test_errors_name_where_and_what(call: Call, scripted: Scripted) -> None:
    got = await call(
        "validate", scripted(), {"value": {"age": -1, "extra": [1]}, "json_schema": SCHEMA}
    )
    assert got.valid is False
    assert got.errors == [
        "$: 'name' is a required property",
        "$: Additional properties are not allowed ('extra' was unexpected)",
        "$.age: -1 is less than the minimum of 0",
    ]
    assert got.feedback.startswith("The JSON value does not match the required schema:\n- $: ")
    assert "- $.age: -1 is less than the minimum of 0" in got.feedback


async def test_text_is_read_as_json_and_nested_paths_are_shown(
    call: Call, scripted: Scripted
) -> None:
    schema = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "number"}}}}
    reply = 'Here you go:\n```json\n[{"n": 1}, {"n": "two"}]\n```'
    got = await call("validate", scripted(), {"value": reply, "json_schema": schema})
    assert got.errors == ["$[1].n: 'two' is not of type 'number'"]
    assert got.value == [{"n": 1}, {"n": "two"}]


async def test_text_without_json_is_invalid_not_an_error(call: Call, scripted: Scripted) -> None:
    got = await call("validate", scripted(), {"value": "no json here", "json_schema": SCHEMA})
    assert got.valid is False and got.errors == ["$: no JSON value found in the text"]


async def test_parse_false_checks_the_text_itself(call: Call, scripted: Scripted) -> None:
    got = await call(
        "validate", scripted(), {"value": "42", "json_schema": {"type": "string"}}, {"parse": False}
    )
    assert got.valid is True and got.value == "42"
    got = await call("validate", scripted(), {"value": "42", "json_schema": {"type": "string"}})
    assert got.valid is False and got.errors == ["$: 42 is not of type 'string'"]


async def test_schema_as_text_and_error_cap(call: Call, scripted: Scripted) -> None:
    schema = '{"type": "array", "items": {"type": "integer"}}'
    got = await call(
        "validate", scripted(), {"value": list("abcdef"), "json_schema": schema}, {"max_errors": 2}
    )
    assert got.errors == [
        "$[0]: 'a' is not of type 'integer'",
        "$[1]: 'b' is not of type 'integer'",
        "... and 4 more",
    ]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("{not json", "the schema is not valid JSON"),
        ({"type": "wibble"}, "not a valid JSON Schema"),
        ([1, 2], "a schema is a JSON object"),
    ],
)
async def test_a_bad_schema_fails_the_step_clearly(
    schema: object, message: str, call: Call, scripted: Scripted
) -> None:
    with pytest.raises(StepError, match=message):
        await call("validate", scripted(), {"value": {}, "json_schema": schema})
