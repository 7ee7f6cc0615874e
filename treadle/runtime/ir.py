"""The Graph IR: what the compiler emits and the scheduler executes.

The runtime needs no knowledge of the syntax. A workflow is a graph of nodes; data flows through
expressions that reference other nodes by id. Control flow is structural: a `Branch`, `Loop` or
`Map` node holds sub-graphs, and `return` has already been lowered away by the compiler.

Scoping is lexical: a reference names a node id or a graph parameter of the graph that holds it
or of any enclosing graph. Ids are unique across a whole program (the compiler derives them from
step names and their position, e.g. `repeat1.report`), so a reference never needs a scope path.
A node starts as soon as every value its own expressions reference is ready; references made
inside a sub-graph are awaited by the nodes of that sub-graph, not by the composite node.

Values are JSON-compatible: text, numbers, booleans, lists, and records as dicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IR_VERSION = 1


class _Model(BaseModel):
    # schemas are built on first validation or dump, not at import: the compiler makes nodes
    # without validation, so `treadle check` never pays for them
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# ---------------------------------------------------------------- expressions


class Const(_Model):
    kind: Literal["const"] = "const"
    value: Any


class Ref(_Model):
    """A node's value or a graph parameter, then `path` indexes records (`report.passed`)."""

    kind: Literal["ref"] = "ref"
    name: str
    path: tuple[str, ...] = ()


class Template(_Model):
    """A string with interpolations, rendered to text."""

    kind: Literal["template"] = "template"
    parts: tuple[str | Expr, ...]


class ListExpr(_Model):
    kind: Literal["list"] = "list"
    items: tuple[Expr, ...]


class ObjectExpr(_Model):
    """A JSON object literal's value: a dict with these keys, in order."""

    kind: Literal["object"] = "object"
    fields: dict[str, Expr]


class Unary(_Model):
    kind: Literal["unary"] = "unary"
    op: Literal["not", "neg"]
    operand: Expr


#: `default` is the source's `or else`: the left value unless it is null, else the right one
BinaryOp = Literal[
    "and", "or", "default", "contains", "starts with", "ends with",
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/",
]  # fmt: skip


class Binary(_Model):
    kind: Literal["binary"] = "binary"
    op: BinaryOp
    left: Expr
    right: Expr


Expr = Annotated[
    Const | Ref | Template | ListExpr | ObjectExpr | Unary | Binary, Field(discriminator="kind")
]


def refs(expr: Expr) -> list[Ref]:
    """Every reference in an expression, in order (the node's dependencies)."""
    if isinstance(expr, Ref):
        return [expr]
    if isinstance(expr, Template):
        return [r for p in expr.parts if not isinstance(p, str) for r in refs(p)]
    if isinstance(expr, ListExpr):
        return [r for i in expr.items for r in refs(i)]
    if isinstance(expr, ObjectExpr):
        return [r for v in expr.fields.values() for r in refs(v)]
    if isinstance(expr, Unary):
        return refs(expr.operand)
    if isinstance(expr, Binary):
        return refs(expr.left) + refs(expr.right)
    return []


# ---------------------------------------------------------------- nodes


@dataclasses.dataclass(frozen=True, slots=True)
class SourceSpan:
    """Where something came from in the source, so traces and errors can point at it: 1-based
    line and column of the first character, the end exclusive. The compiler's syntax tree uses
    it too, with `file` None (a tree is one file's); the IR's nodes carry the file.

    A plain dataclass, not a model: the parser makes one per token, so it must be cheap."""

    line: int
    column: int
    end_line: int
    end_column: int
    file: str | None = None


class _Node(_Model):
    id: str
    #: the source-level name the step binds (the `NAME` of `NAME = ...`), for traces
    name: str
    span: SourceSpan | None = None


class Step(_Node):
    """One operator call. `args` are keyed by parameter name (prepositions already resolved).

    `timeout_s`, `retries` and `samples` come from the options every step takes. With
    `samples` N the operator runs N times (concurrently, each with its own sample index) and
    the step's value is the list of the N results.
    """

    kind: Literal["step"] = "step"
    op: str
    args: dict[str, Expr] = {}
    options: dict[str, Expr] = {}
    timeout_s: float | None = None
    retries: int | None = None
    samples: int | None = None


class Call(_Node):
    """A call of another workflow of the program (from the same file or a `use`d one)."""

    kind: Literal["call"] = "call"
    workflow: str
    args: dict[str, Expr] = {}


class Arm(_Model):
    """`when` None is the else arm. The arm's body outputs every name in `Branch.outputs`."""

    when: Expr | None
    body: Graph


class Branch(_Node):
    """if / else if / else. Value: a dict of the taken arm's outputs.

    The compiler always supplies a final else arm (passing through the values bound before the
    `if` where the source has none), so exactly one arm runs; the others are skipped.
    """

    kind: Literal["branch"] = "branch"
    arms: tuple[Arm, ...]
    outputs: tuple[str, ...] = ()


class Loop(_Node):
    """`repeat up to N times ... until COND`: runs `body` 1..max_iters times.

    `init` gives the first value of each carried parameter (evaluated in the enclosing scope);
    each turn binds `body.params` to the previous turn's outputs of the same names. The body's
    outputs include `$until` (boolean). Value: a dict of the last turn's outputs plus
    `$iterations`.
    """

    kind: Literal["loop"] = "loop"
    max_iters: int
    init: dict[str, Expr] = {}
    body: Graph


class Map(_Node):
    """`for each VAR in LIST`: runs `body` once per item, concurrently.

    `body.params` is `[var]`; value: the list of each run's `$item` output, in order.
    """

    kind: Literal["map"] = "map"
    over: Expr
    var: str
    body: Graph


Node = Annotated[Step | Call | Branch | Loop | Map, Field(discriminator="kind")]


class Graph(_Model):
    params: tuple[str, ...] = ()
    nodes: tuple[Node, ...] = ()
    outputs: dict[str, Expr] = {}


class Field_(_Model):
    """A declared workflow input or output: its name and type as written (`list of text`).
    An input with a `default` may be left out of a run (its value is then the default's)."""

    name: str
    type: str
    default: Const | None = None


class Workflow(_Model):
    """`graph.params` are the input names; `graph.outputs` are keyed by the output names."""

    name: str
    inputs: tuple[Field_, ...] = ()
    outputs: tuple[Field_, ...] = ()
    graph: Graph
    doc: str | None = None


class Program(_Model):
    version: int = IR_VERSION
    #: the workflow `treadle run` runs when none is named: the first one of the main file
    entry: str
    workflows: dict[str, Workflow]
    source: str | None = None

    def content_hash(self) -> str:
        """A stable hash of the program's meaning (spans and file names excluded)."""
        data = self.model_dump(mode="json", exclude={"source"})
        return hashlib.sha256(_canonical(_strip_spans(data)).encode()).hexdigest()


def _strip_spans(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_spans(v) for k, v in data.items() if k != "span"}
    if isinstance(data, list):
        return [_strip_spans(v) for v in data]
    return data


def _canonical(data: Any) -> str:
    import json

    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
