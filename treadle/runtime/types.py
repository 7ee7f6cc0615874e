"""The value types of the language, shared by the operator registry, the compiler and the runtime.

A type is data (a frozen pydantic model) so signatures, IR and diagnostics can print and compare
them. Records are the structured results operators return (`report.passed`); a `choice` is a
closed set of bare words an operator takes as its subject (`extract number from d`).
"""

from __future__ import annotations

import types as _pytypes
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from treadle.runtime.expr import render

Kind = Literal[
    "text", "number", "boolean", "code", "json", "list", "record", "choice", "null", "any"
]


class Type(BaseModel):
    # built without validation here (`model_construct`), so importing the types builds no
    # schema: a fresh `treadle check` then never loads pydantic's plugin machinery
    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Kind
    item: Type | None = None
    name: str | None = None
    fields: tuple[tuple[str, Type], ...] = ()
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list of {self.item}"
        if self.kind == "record":
            return self.name or "record"
        if self.kind == "choice":
            return " | ".join(self.choices)
        return self.kind

    def field(self, name: str) -> Type | None:
        """The type of `value.name`, or None when this type has no such field."""
        if self.kind in ("json", "any"):
            return ANY
        return dict(self.fields).get(name)

    def accepts(self, other: Type) -> bool:
        """Whether a value of type `other` may flow where this type is expected.

        `json` is the dynamic type (gradual typing): it flows anywhere and anything flows into
        it. Where text is expected, numbers, booleans, words and json values are accepted and
        read as a template renders them. At run time `treadle.runtime.coerce` does exactly what
        this promises, for every operator argument, call input and declared output: so what
        the checker accepts runs (tests/compiler/test_soundness.py holds it to that).
        """
        if self.kind in ("any", "json") or other.kind in ("any", "json"):
            return True
        if other.kind == "null":  # the `null` literal: only where any value may go
            return self.kind == "null"
        if self.kind == "text":
            # code is text; numbers and booleans read as text in prompts
            return other.kind in ("text", "code", "number", "boolean", "choice")
        if self.kind == "code":
            return other.kind in ("code", "text")
        if self.kind == "list":
            return (
                other.kind == "list"
                and self.item is not None
                and other.item is not None
                and (self.item.accepts(other.item))
            )
        if self.kind == "record":
            return other.kind == "record" and (self.name is None or self.name == other.name)
        if self.kind == "choice":
            return other.kind == "choice" and set(other.choices) <= set(self.choices)
        return self.kind == other.kind


TEXT = Type.model_construct(kind="text")
NUMBER = Type.model_construct(kind="number")
BOOLEAN = Type.model_construct(kind="boolean")
CODE = Type.model_construct(kind="code")
JSON = Type.model_construct(kind="json")
ANY = Type.model_construct(kind="any")
#: the type of the `null` literal (a value an operator's result may also be at run time)
NULL = Type.model_construct(kind="null")


def list_of(item: Type) -> Type:
    return Type.model_construct(kind="list", item=item)


def record(name: str, fields: dict[str, Type]) -> Type:
    return Type.model_construct(kind="record", name=name, fields=tuple(fields.items()))


def choice(*words: str) -> Type:
    return Type.model_construct(kind="choice", choices=tuple(words))


_SCALARS = {"text": TEXT, "number": NUMBER, "boolean": BOOLEAN, "code": CODE, "json": JSON}


def parse_type(text: str) -> Type:
    """Parse a type as written in a `.flow` signature: `text`, `list of number`, ..."""
    words = text.split()
    if len(words) >= 3 and words[0] == "list" and words[1] == "of":
        return list_of(parse_type(" ".join(words[2:])))
    if len(words) == 1 and words[0] in _SCALARS:
        return _SCALARS[words[0]]
    raise ValueError(
        f"unknown type {text!r}; expected text, number, boolean, code, json or list of T"
    )


TYPE_NAMES = tuple(_SCALARS)


class Code(str):
    """Marks a str annotation in an operator's pydantic model as the `code` type."""


def from_annotation(annotation: Any) -> Type:
    """The language type of a Python annotation in an operator's pydantic models."""
    if annotation is Code:
        return CODE
    if annotation is str:
        return TEXT
    if annotation in (int, float):
        return NUMBER
    if annotation is bool:
        return BOOLEAN
    if annotation is Any or annotation is object:
        return JSON
    origin = get_origin(annotation)
    if origin is Literal:
        return choice(*(str(a) for a in get_args(annotation)))
    if origin is list:
        (item,) = get_args(annotation) or (Any,)
        return list_of(from_annotation(item))
    if origin is dict:
        return JSON
    if origin in (Union, _pytypes.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return from_annotation(args[0])
        if set(args) <= {int, float}:
            return NUMBER
        return JSON
    if origin is typing.Annotated:
        return from_annotation(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = {
            name: from_annotation(f.annotation) for name, f in annotation.model_fields.items()
        }
        return record(annotation.__name__, fields)
    return JSON


def check_value(t: Type, value: Any) -> bool:
    """Whether a runtime value fits a declared input type (used to validate workflow inputs)."""
    if t.kind in ("any", "json"):
        return True
    if t.kind in ("text", "code"):
        return isinstance(value, str)
    if t.kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t.kind == "boolean":
        return isinstance(value, bool)
    if t.kind == "list":
        return isinstance(value, list) and all(check_value(t.item or ANY, v) for v in value)
    if t.kind == "record":
        return isinstance(value, dict)
    if t.kind == "choice":
        return value in t.choices
    if t.kind == "null":
        return value is None
    return False


class NumberRange(BaseModel):
    """The bounds a numeric parameter declares (pydantic's `ge`/`gt`/`le`/`lt`, and `int` for
    whole numbers), so the checker refuses a constant the operator would refuse at run time."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    whole: bool = False
    low: float | None = None
    high: float | None = None
    #: `gt` / `lt`: the bound itself is out
    low_open: bool = False
    high_open: bool = False

    def admits(self, x: float) -> bool:
        if self.whole and x != int(x):
            return False
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or (x < self.high if self.high_open else x <= self.high)

    def __str__(self) -> str:
        what = "a whole number" if self.whole else "a number"
        if self.low is not None:
            what += f" {'above' if self.low_open else 'from'} {render(self.low)}"
        if self.high is not None:
            what += f" {'below' if self.high_open else 'up to'} {render(self.high)}"
        return what


def number_range(annotation: Any, metadata: list[Any]) -> NumberRange | None:
    """The `NumberRange` of an operator's numeric field, or None when it declares none."""
    whole = int in (get_args(annotation) or (annotation,))
    bounds: dict[str, Any] = {}
    for m in metadata:
        for attr, key, is_open in (("ge", "low", False), ("gt", "low", True),
                                   ("le", "high", False), ("lt", "high", True)):  # fmt: skip
            value = getattr(m, attr, None)
            if value is not None:
                bounds[key] = float(value)
                bounds[f"{key}_open"] = is_open
    if not whole and not bounds:
        return None
    return NumberRange.model_construct(whole=whole, **{**_NO_BOUNDS, **bounds})


_NO_BOUNDS: dict[str, Any] = {"low": None, "high": None, "low_open": False, "high_open": False}
