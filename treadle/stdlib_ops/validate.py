"""`validate VALUE against SCHEMA`: check a JSON value against a JSON Schema; the errors come
back as feedback a `revise` or a repair loop can act on.

A text value (a model's reply) is read as JSON first (fenced or bare), so
`validate reply against schema` works on the raw reply. An invalid schema is the workflow
author's mistake and fails the step with the schema error; an invalid value never fails it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from treadle.errors import StepError
from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops import _text
from treadle.stdlib_ops.registry import (
    OpArgs,
    Operator,
    OpOptions,
    constant,
    prep,
    register,
    subject,
)


class Validation(BaseModel):
    valid: bool = Field(description="whether the value matches the schema")
    errors: list[str] = Field(description="one line per violation, with where it is")
    feedback: str = Field(description="the errors as one paragraph to revise from ('' if valid)")
    value: Any = Field(None, description="the value that was checked (parsed from text)")


class ValidateArgs(OpArgs):
    value: Any = subject("the value to check (text is read as JSON)")
    json_schema: Any = prep("against", "the JSON Schema (an object, or its JSON text)")


class ValidateOptions(OpOptions):
    parse: bool = Field(True, description="read a text value as JSON before checking it")
    max_errors: int = Field(10, ge=1, description="the most errors to report")


def _path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def check(value: Any, schema: Any, *, parse: bool = True, max_errors: int = 10) -> Validation:
    """Validate `value` against `schema` (Draft 2020-12 unless the schema names its draft)."""
    import jsonschema

    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise StepError(f"validate: the schema is not valid JSON ({e})") from None
    if not isinstance(schema, dict | bool):
        raise StepError(f"validate: a schema is a JSON object, got {type(schema).__name__}")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise StepError(f"validate: the schema is not a valid JSON Schema: {e.message}") from None
    if parse and isinstance(value, str):
        parsed = _parse(value)
        if parsed is _NOTHING:
            error = "$: no JSON value found in the text"
            return Validation(valid=False, errors=[error], feedback=_feedback([error]), value=None)
        value = parsed
    found = sorted(
        cls(schema).iter_errors(value), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    )
    errors = [f"{_path(e.absolute_path)}: {e.message}" for e in found]
    if len(errors) > max_errors:
        errors = [*errors[:max_errors], f"... and {len(errors) - max_errors} more"]
    return Validation(valid=not errors, errors=errors, feedback=_feedback(errors), value=value)


_NOTHING = object()


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    value = _text.json_in(text)
    return _NOTHING if value is None else value


def _feedback(errors: list[str]) -> str:
    if not errors:
        return ""
    lines = "\n".join(f"- {e}" for e in errors)
    return f"The JSON value does not match the required schema:\n{lines}"


async def run(ctx: OpContext, args: ValidateArgs, options: ValidateOptions) -> Validation:
    return check(args.value, args.json_schema, parse=options.parse, max_errors=options.max_errors)


register(
    Operator(
        name="validate",
        summary="Check a JSON value against a JSON Schema; `valid`, `errors` and `feedback`.",
        args=ValidateArgs,
        options=ValidateOptions,
        output=Validation,
        run=run,
        ablation=constant(
            {"valid": True, "errors": [], "feedback": ""}, "valid, with no errors", value="value"
        ),
    )
)
