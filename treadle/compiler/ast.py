"""The syntax tree of a `.flow` file: what the source says, before any name or type is resolved.

The tree mirrors the text closely enough to print it back (the formatter works from it), so
operator calls keep their words as written (`write code for problem` is the terms `write`,
`code` plus one preposition argument); which words name the operator is decided by the checker.
Comments ride along on the statement they precede so formatting never loses them.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from treadle.runtime.ir import SourceSpan

NO_SPAN = SourceSpan(line=0, column=0, end_line=0, end_column=0)


class Node(BaseModel):
    # schemas are built on first validation only: the parser constructs nodes without it,
    # which keeps `treadle check` start-up and parsing fast
    model_config = ConfigDict(extra="forbid", defer_build=True)

    span: SourceSpan = NO_SPAN


# ---------------------------------------------------------------- expressions


class Name(Node):
    """A name, possibly with fields: `report.passed` is path ("report", "passed")."""

    kind: Literal["name"] = "name"
    path: tuple[str, ...]


class Interp(Node):
    """A `{name.field}` interpolation inside a string."""

    path: tuple[str, ...]


class Str(Node):
    """A string literal; `parts` alternate raw text and interpolations."""

    kind: Literal["str"] = "str"
    parts: tuple[str | Interp, ...] = ()
    #: written `"""`-quoted over lines (the formatter keeps it so)
    block: bool = False

    def as_text(self) -> str:
        """The string with interpolations written back as `{name}` (for `use` paths)."""
        return "".join(
            p if isinstance(p, str) else "{" + ".".join(p.path) + "}" for p in self.parts
        )


class PromptFile(Node):
    """`file "prompts/solve.txt"`: a template read from a file next to the flow."""

    kind: Literal["file"] = "file"
    path: str


class Num(Node):
    kind: Literal["num"] = "num"
    value: int | float


class Bool(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class Null(Node):
    """The `null` literal: no value (what an operator gives when it finds nothing)."""

    kind: Literal["null"] = "null"


class ListLit(Node):
    kind: Literal["list"] = "list"
    items: tuple[Expr, ...] = ()


class Pair(Node):
    """`"KEY": VALUE` in a JSON object literal."""

    key: str
    value: Expr


class ObjectLit(Node):
    """A JSON object literal: `{"type": "object", "required": ["answer"]}`; keys in order."""

    kind: Literal["object"] = "object"
    pairs: tuple[Pair, ...] = ()


class UnaryOp(Node):
    kind: Literal["unary"] = "unary"
    op: Literal["not", "-"]
    operand: Expr


BinOp = Literal[
    "and", "or", "or else", "==", "!=", "<", "<=", ">", ">=", "is", "is not",
    "contains", "starts with", "ends with", "+", "-", "*", "/",
]  # fmt: skip


class BinaryOp(Node):
    kind: Literal["binary"] = "binary"
    op: BinOp
    left: Expr
    right: Expr


Expr = Name | Str | PromptFile | Num | Bool | Null | ListLit | ObjectLit | UnaryOp | BinaryOp


# ---------------------------------------------------------------- steps


class Arg(Node):
    """`PREPOSITION VALUE` after the subject."""

    prep: str
    value: Expr


class Option(Node):
    """One `with NAME VALUE`."""

    name: str
    value: Expr


class Command(Node):
    """The right-hand side of a step: `terms` are the juxtaposed words and values before the
    first preposition (`vote numbers`, `write code`), or a single expression (`checked.value`)."""

    kind: Literal["command"] = "command"
    terms: tuple[Expr, ...]
    args: tuple[Arg, ...] = ()
    options: tuple[Option, ...] = ()


class Stmt(Node):
    #: comments on their own lines just above the statement
    comments: tuple[str, ...] = ()
    #: a comment at the end of the statement's first line
    trailing: str | None = None


class ForEach(Node):
    """`for each VAR in LIST: COMMAND` (inline) or with a block ending in `end`."""

    kind: Literal["for"] = "for"
    var: str
    over: Expr
    command: Command | None = None
    body: tuple[Statement, ...] | None = None
    end_comments: tuple[str, ...] = ()


class Step(Stmt):
    kind: Literal["step"] = "step"
    name: str
    value: Command | ForEach


class Arm(Node):
    """One arm of an `if`: `cond` None is the `else` arm."""

    cond: Expr | None
    body: tuple[Statement, ...] = ()
    #: comments on the arm's header line, and before the next arm or `end`
    trailing: str | None = None
    end_comments: tuple[str, ...] = ()


class If(Stmt):
    kind: Literal["if"] = "if"
    arms: tuple[Arm, ...]


class Repeat(Stmt):
    kind: Literal["repeat"] = "repeat"
    #: the N of `up to N times`; None when the source gives no bound (an error)
    bound: Expr | None
    body: tuple[Statement, ...] = ()
    until: Expr
    end_comments: tuple[str, ...] = ()


class Return(Stmt):
    kind: Literal["return"] = "return"
    value: Expr | None = None


class Invalid(Stmt):
    """A line that did not parse; `name` is what it seemed to bind, so later uses stay quiet."""

    kind: Literal["invalid"] = "invalid"
    name: str | None = None


Statement = Step | If | Repeat | Return | Invalid


# ---------------------------------------------------------------- files


class TypeRef(Node):
    """A type as written: `text`, `list of number`."""

    name: str
    item: TypeRef | None = None

    def __str__(self) -> str:
        return f"list of {self.item}" if self.item is not None else self.name


class Param(Node):
    name: str
    type: TypeRef
    #: an input's default (`k: number = 3`): a constant, used when a run leaves it out
    default: Expr | None = None


class Workflow(Node):
    kind: Literal["workflow"] = "workflow"
    name: str
    inputs: tuple[Param, ...] = ()
    outputs: tuple[Param, ...] = ()
    body: tuple[Statement, ...] = ()
    comments: tuple[str, ...] = ()
    trailing: str | None = None
    end_comments: tuple[str, ...] = ()
    #: set when the header did not parse, so checks inside stay quiet about names
    broken: bool = False
    #: set when a line of the body did not parse, so checks stay quiet about what it may
    #: have bound or read (unused values, unbound outputs)
    damaged: bool = False


class Use(Node):
    kind: Literal["use"] = "use"
    path: str
    comments: tuple[str, ...] = ()
    trailing: str | None = None


class Module(Node):
    items: tuple[Use | Workflow, ...] = ()
    end_comments: tuple[str, ...] = ()

    @property
    def workflows(self) -> list[Workflow]:
        return [i for i in self.items if isinstance(i, Workflow)]

    @property
    def uses(self) -> list[Use]:
        return [i for i in self.items if isinstance(i, Use)]


_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {}
_N = TypeVar("_N", bound=BaseModel)


def new(cls: type[_N], **fields: Any) -> _N:
    """Build a node without validation (what `model_construct` does, minus its per-call
    default lookup): the parser makes hundreds of nodes per file and knows their types."""
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = {
            name: f.get_default(call_default_factory=True)
            for name, f in cls.model_fields.items()
            if not f.is_required()
        }
        _DEFAULTS[cls] = defaults
    obj = cls.__new__(cls)
    data = dict(defaults)
    data.update(fields)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def without_spans(node: Any) -> Any:
    """The tree as plain data with every span dropped: equality that ignores positions."""
    data = node.model_dump(mode="python") if isinstance(node, BaseModel) else node
    return _strip(data)


def _strip(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip(v) for k, v in data.items() if k != "span"}
    if isinstance(data, list | tuple):
        return [_strip(v) for v in data]
    return data
