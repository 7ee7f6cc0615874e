"""The operator registry: the single source of every operator's signature.

An operator is declared with pydantic models: `args` holds its subject and its
preposition-bound parameters (`subject(...)`, `prep("from", ...)`), `options` holds the `with`
options and their defaults, `output` is the annotation of what it returns. The compiler reads
signatures from here, so a new operator never changes the grammar; the runtime validates a
step's values into the same models before calling `run`.

Modules here stay light to import (the CLI checks files without loading llama_cpp or docker):
heavy imports go inside `run`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from treadle.runtime.op_context import OpContext
from treadle.runtime.types import NUMBER, NumberRange, Type, from_annotation, number_range

#: The prepositions the grammar knows. An operator binds a parameter to one of these.
PREPOSITIONS: tuple[str, ...] = (
    "from", "for", "against", "using", "given", "to", "on", "of", "by", "into", "about",
    "as", "at", "over", "via", "in",
)  # fmt: skip

_SUBJECT = "treadle_subject"
_PREP = "treadle_prep"


class OpArgs(BaseModel):
    """Base of an operator's `args` model."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class OpOptions(BaseModel):
    """Base of an operator's `options` model; every field needs a default."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(OpOptions):
    pass


def subject(description: str, **kwargs: Any) -> Any:
    """The parameter written right after the operator: `vote numbers`."""
    return Field(description=description, json_schema_extra={_SUBJECT: True}, **kwargs)


def prep(word: str, description: str, **kwargs: Any) -> Any:
    """A parameter introduced by a preposition: `generate from "..."`."""
    if word not in PREPOSITIONS:
        raise ValueError(f"{word!r} is not a preposition of the grammar: {PREPOSITIONS}")
    return Field(description=description, json_schema_extra={_PREP: word}, **kwargs)


class Param(BaseModel):
    name: str
    type: Type
    #: None for the subject
    prep: str | None
    required: bool
    description: str
    #: a numeric parameter's declared bounds (the checker checks constants against them)
    range: NumberRange | None = None


class Option(BaseModel):
    name: str
    type: Type
    default: Any
    description: str
    range: NumberRange | None = None


class Signature(BaseModel):
    params: tuple[Param, ...]
    options: tuple[Option, ...]
    output: Type
    #: the value is one of the items of this list parameter: the checker types it as that
    #: list's items (`vote` of a list of numbers is a number), not as `output`
    item_of: str | None = None

    @property
    def subject(self) -> Param | None:
        return next((p for p in self.params if p.prep is None), None)

    def by_prep(self, word: str) -> Param | None:
        return next((p for p in self.params if p.prep == word), None)

    def option(self, name: str) -> Option | None:
        return next((o for o in (*self.options, *COMMON_OPTIONS) if o.name == name), None)


#: Options every step takes; the scheduler applies them, not the operator (see `ir.Step`).
#: `samples N` runs the operator N times and makes the step's value a list of the results.
COMMON_OPTIONS: tuple[Option, ...] = tuple(
    Option(name=name, type=NUMBER, default=None, description=description)
    for name, description in (
        ("timeout", "seconds before the step fails"),
        ("retries", "extra attempts on retryable errors"),
        ("samples", "run N times; the value is the list of results"),
    )
)


@dataclasses.dataclass(frozen=True)
class Ablation:
    """How a step of this operator is removed for counterfactual attribution, declared so that
    an ablation is never guessed: `pass` (the argument `param` stands in for the step's value),
    `first` (the first item of the list argument `param`), `constant` (`value` stands in; a
    record's `fields_from` fields come from arguments) or `keep` (not removable: `reason`)."""

    kind: Literal["pass", "first", "constant", "keep"]
    param: str | None = None
    value: Any = None
    fields_from: tuple[tuple[str, str], ...] = ()
    reason: str = ""

    @property
    def removable(self) -> bool:
        return self.kind != "keep"

    def describe(self) -> str:
        """One line for `treadle ops` and docs/operators.md."""
        if self.kind == "pass":
            return f"its `{self.param}` passes through"
        if self.kind == "first":
            return f"the first item of its `{self.param}` passes through"
        if self.kind == "constant":
            import json

            fields = "".join(f", `{f}` from its `{a}`" for f, a in self.fields_from)
            return f"replaced by `{json.dumps(self.value)}`{fields}" + (
                f" ({self.reason})" if self.reason else ""
            )
        return f"not removable: {self.reason}"


def passes(param: str) -> Ablation:
    """Removed, the step's value is its argument `param`."""
    return Ablation("pass", param=param)


def first_of(param: str) -> Ablation:
    """Removed, the step's value is the first item of its list argument `param`."""
    return Ablation("first", param=param)


def constant(value: Any, reason: str = "", /, **fields_from: str) -> Ablation:
    """Removed, the step's value is `value` (fields named in `fields_from` from arguments)."""
    return Ablation("constant", value=value, fields_from=tuple(fields_from.items()), reason=reason)


def not_removable(reason: str) -> Ablation:
    return Ablation("keep", reason=reason)


@dataclasses.dataclass(frozen=True)
class Operator:
    name: str
    summary: str
    args: type[OpArgs]
    output: Any
    run: Callable[[OpContext, Any, Any], Awaitable[Any]]
    options: type[OpOptions] = NoOptions
    uses_model: bool = False
    uses_sandbox: bool = False
    #: how attribution removes a step of it; None only until declared (a test requires one)
    ablation: Ablation | None = None
    #: the value is one of the items of this list parameter (see `Signature.item_of`)
    output_item_of: str | None = None

    @functools.cached_property
    def signature(self) -> Signature:
        params = []
        for name, f in self.args.model_fields.items():
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            is_subject = bool(extra.get(_SUBJECT))
            word = extra.get(_PREP)
            if not is_subject and not isinstance(word, str):
                raise TypeError(f"{self.name}.{name}: declare it with subject() or prep()")
            params.append(
                Param(
                    name=name,
                    type=from_annotation(f.annotation),
                    prep=None if is_subject else str(word),
                    required=f.is_required(),
                    description=f.description or "",
                    range=_range(f),
                )
            )
        options = tuple(
            Option(
                name=name,
                type=from_annotation(f.annotation),
                default=f.get_default(call_default_factory=True),
                description=f.description or "",
                range=_range(f),
            )
            for name, f in self.options.model_fields.items()
        )
        return Signature(
            params=tuple(params),
            options=options,
            output=from_annotation(self.output),
            item_of=self.output_item_of,
        )


def _range(f: Any) -> NumberRange | None:
    if from_annotation(f.annotation) != NUMBER:
        return None
    return number_range(f.annotation, f.metadata)


_OPERATORS: dict[str, Operator] = {}

#: modules of this package that are not operators
_NOT_OPERATORS = {"registry", "docs"}


def register(op: Operator) -> Operator:
    if op.name in _OPERATORS:
        raise ValueError(f"operator {op.name!r} is registered twice")
    _OPERATORS[op.name] = op
    return op


@functools.cache
def _load_stdlib() -> None:
    """Import every operator module of this package once; each registers itself."""
    import pkgutil

    import treadle.stdlib_ops as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name not in _NOT_OPERATORS:
            importlib.import_module(f"treadle.stdlib_ops.{info.name}")


def operators() -> dict[str, Operator]:
    """Every registered operator by name (multi-word names such as `write code` included)."""
    _load_stdlib()
    return dict(_OPERATORS)


def get(name: str) -> Operator | None:
    _load_stdlib()
    return _OPERATORS.get(name)
