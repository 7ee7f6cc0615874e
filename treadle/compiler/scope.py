"""Bindings: what a name means at one point of a workflow, and whether it is bound on every path.

An environment maps source names to the IR expression that yields their value (a node's value,
a field of a branch's or loop's result, a graph parameter, or an inlined expression) with its
type. It is copied at every branch, so the checks are flow-sensitive: after an `if`, a name
bound on some paths only is `partial` and reading it is an error.
"""

from __future__ import annotations

import dataclasses

from treadle.runtime import ir
from treadle.runtime.ir import SourceSpan
from treadle.runtime.types import Type


@dataclasses.dataclass(frozen=True)
class Binding:
    expr: ir.Expr
    type: Type
    #: where the name was bound (the step, the input, the `for each` variable)
    span: SourceSpan
    #: the definitions this value comes from (several after an `if`); reads mark them used
    defs: tuple[int, ...] = ()
    #: bound on some paths only (after an `if` without it on every arm)
    partial: bool = False
    #: a stand-in for a line that did not parse: reads are never reported
    quiet: bool = False


Env = dict[str, Binding]


@dataclasses.dataclass
class Definition:
    """A step, value or input, for the unused-step warning."""

    name: str
    span: SourceSpan
    kind: str  # "step" | "value" | "input"
    used: bool = False


@dataclasses.dataclass(frozen=True)
class ScopeMark:
    """The bindings at one point of a workflow, for an editor's completion and hover: `env`
    holds before the statement starting at (`line`, `column`) or, when `after` is set, on the
    lines after `line` (the end of a statement, or a workflow's header)."""

    line: int
    column: int
    env: Env
    after: bool = False
