"""The one rule by which a value reaches a place of a declared type, at run time.

The checker lets a value flow where `Type.accepts` says it may; this module does, at run time,
exactly what that acceptance promises, so what compiles runs:

- where text (or code) is expected, any value reads as it reads in a template (`render`):
  `42`, `true`, JSON for lists and records, `null`;
- `json` (the dynamic type) and `any` take every value as it is;
- a number, a boolean, a list, a record or one of a set of words must be one at run time; a
  `json` value that is not is a `CoercionError` saying what was expected and what came;
- a list's items are converted to the item type one by one;
- null stays null where the place may be left out (an optional argument), and is an error
  where a number, a boolean, a list or a record is required.

The scheduler applies it to every operator argument and option and to every declared output
(of the entry workflow and of each call). Templates and text arguments share `render`.
"""

from __future__ import annotations

import types as _pytypes
from typing import Any, Union, get_args, get_origin

from treadle.runtime.expr import is_number, render, type_name
from treadle.runtime.types import ANY, Type


class CoercionError(Exception):
    """A value does not fit its declared type; the caller names the place."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"expects {expected}, got {got}")
        self.expected = expected
        self.got = got


def coerce(value: Any, t: Type, *, optional: bool = False) -> Any:
    """`value` as a value of type `t`, or a `CoercionError` (see the module's rules)."""
    kind = t.kind
    if kind in ("any", "json"):
        return value
    if value is None and optional:
        return None
    if kind in ("text", "code"):
        return value if isinstance(value, str) else render(value)
    if kind == "number":
        if is_number(value):
            return value
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind == "list":
        if isinstance(value, list):
            item = t.item or ANY
            if item.kind in ("any", "json"):
                return value
            return [_item(v, item, i) for i, v in enumerate(value)]
    elif kind == "record":
        if isinstance(value, dict):
            return value
    elif kind == "choice":
        if isinstance(value, str) and value in t.choices:
            return value
        raise CoercionError(f"one of {', '.join(t.choices)}", _shown(value))
    raise CoercionError(_a(t), _shown(value))


def _item(value: Any, t: Type, i: int) -> Any:
    try:
        return coerce(value, t)
    except CoercionError as e:
        raise CoercionError(f"items of type {t}", f"{e.got} as item {i}") from None


def admits_none(annotation: Any) -> bool:
    """Whether an operator's pydantic annotation takes None (`str | None`, `Any`)."""
    if annotation is Any or annotation is None or annotation is type(None):
        return True
    if get_origin(annotation) in (Union, _pytypes.UnionType):
        return any(admits_none(a) for a in get_args(annotation))
    return False


def _a(t: Type) -> str:
    if t.kind == "list":
        return f"a list of {t.item}"
    if t.kind == "record":
        return f"a `{t}` record" if t.name else "a record"
    word = str(t)
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _shown(value: Any) -> str:
    text = render(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    if value is None:
        return "null"
    return f"{type_name(value)} {text}" if not isinstance(value, str) else f"text {text!r}"
