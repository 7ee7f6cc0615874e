"""Evaluating IR expressions: the scheduler compiles each expression once into a closure.

Compiling (instead of walking the pydantic tree on every evaluation) keeps the per-node cost of
the scheduler small: a `Ref` becomes a dict lookup, a `Const` a captured value. Every value is
JSON-compatible; the rules a user can see are here:

- a template renders text as is, integral numbers without `.0`, booleans as `true`/`false`,
  lists and records as JSON;
- `==` / `!=` compare numbers numerically (`2 == 2.0`) and never equate a boolean with a number;
- `and` / `or` short-circuit, and so does `or else` (`default`): its right side is evaluated
  only when the left value is null;
- indexing a record with a field it lacks is an `ExprError` that names the field and the fields
  it has (the scheduler adds the step's name).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from treadle.runtime.ir import (
    Binary,
    Const,
    Expr,
    ListExpr,
    ObjectExpr,
    Ref,
    Template,
    Unary,
    refs,
)

#: resolves a name (node id or graph parameter) to its ready value
Lookup = Callable[[str], Any]
Compiled = Callable[[Lookup], Any]


class ExprError(Exception):
    """An expression could not be evaluated; the scheduler wraps it in a `RunError`."""


def evaluate(expr: Expr, lookup: Lookup) -> Any:
    """Evaluate once (tests, one-off uses); the scheduler keeps `compile_expr` results."""
    return compile_expr(expr)(lookup)


def compile_expr(expr: Expr) -> Compiled:
    if isinstance(expr, Const):
        value = expr.value
        return lambda _lookup: value
    if isinstance(expr, Ref):
        return _compile_ref(expr)
    if isinstance(expr, Template):
        parts: list[str | Compiled] = [
            p if isinstance(p, str) else compile_expr(p) for p in expr.parts
        ]
        if all(isinstance(p, str) for p in parts):
            text = "".join(p for p in parts if isinstance(p, str))
            return lambda _lookup: text

        def template(lookup: Lookup) -> str:
            return "".join(p if isinstance(p, str) else render(p(lookup)) for p in parts)

        return template
    if isinstance(expr, ListExpr):
        items = [compile_expr(i) for i in expr.items]
        return lambda lookup: [i(lookup) for i in items]
    if isinstance(expr, ObjectExpr):
        fields = [(k, compile_expr(v)) for k, v in expr.fields.items()]
        return lambda lookup: {k: v(lookup) for k, v in fields}
    if isinstance(expr, Unary):
        return _compile_unary(expr)
    if isinstance(expr, Binary):
        return _compile_binary(expr)
    raise ExprError(f"unknown expression {expr!r}")


def _compile_ref(ref: Ref) -> Compiled:
    name, path = ref.name, ref.path
    if not path:
        return lambda lookup: lookup(name)

    def indexed(lookup: Lookup) -> Any:
        value = lookup(name)
        for i, key in enumerate(path):
            value = _index(value, key, ".".join((name, *path[:i])))
        return value

    return indexed


def _index(value: Any, key: str, where: str) -> Any:
    if isinstance(value, dict):
        if key in value:
            return value[key]
        have = ", ".join(sorted(map(str, value))) or "none"
        raise ExprError(f"`{where}` has no field `{key}` (its fields: {have})")
    if isinstance(value, list) and (key.isdigit() or (key[:1] == "-" and key[1:].isdigit())):
        try:
            return value[int(key)]
        except IndexError:
            raise ExprError(f"`{where}` has {len(value)} items; there is no item {key}") from None
    raise ExprError(f"`{where}` is {type_name(value)}, not a record: it has no field `{key}`")


def _compile_unary(expr: Unary) -> Compiled:
    operand = compile_expr(expr.operand)
    if expr.op == "not":
        return lambda lookup: not truthy(operand(lookup))

    def neg(lookup: Lookup) -> Any:
        value = operand(lookup)
        if not is_number(value):
            raise ExprError(f"cannot negate {type_name(value)} {_short(value)}")
        return -value

    return neg


def _compile_binary(expr: Binary) -> Compiled:
    left, right, op = compile_expr(expr.left), compile_expr(expr.right), expr.op
    if op == "and":
        return lambda lookup: truthy(left(lookup)) and truthy(right(lookup))
    if op == "or":
        return lambda lookup: truthy(left(lookup)) or truthy(right(lookup))
    if op == "default":

        def default(lookup: Lookup) -> Any:
            value = left(lookup)
            return right(lookup) if value is None else value

        return default
    if op == "==":
        return lambda lookup: equal(left(lookup), right(lookup))
    if op == "!=":
        return lambda lookup: not equal(left(lookup), right(lookup))
    fn = _ARITH[op]
    return lambda lookup: fn(left(lookup), right(lookup))


# ---------------------------------------------------------------- value rules


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a record"
    return type(value).__name__


def truthy(value: Any) -> bool:
    """Conditions are booleans; other values follow the usual rule (empty and null are false)."""
    return bool(value)


def equal(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


def render(value: Any) -> str:
    """How a value reads inside a template (and in a prompt)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _render_float(value: float) -> str:
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _short(value: Any) -> str:
    text = render(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _add(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    if isinstance(a, str) or isinstance(b, str):
        return render(a) + render(b)
    raise ExprError(f"cannot add {type_name(a)} and {type_name(b)}")


def _numeric(symbol: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if not (is_number(a) and is_number(b)):
            raise ExprError(
                f"`{symbol}` needs two numbers, got {type_name(a)} {_short(a)!r} "
                f"and {type_name(b)} {_short(b)!r}"
            )
        return fn(a, b)

    return apply


def _divide(a: Any, b: Any) -> Any:
    if b == 0:
        raise ExprError(f"division by zero ({_short(a)} / 0)")
    return a / b


def _compare(symbol: str, fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(a: Any, b: Any) -> bool:
        if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
            return fn(a, b)
        raise ExprError(
            f"`{symbol}` compares two numbers or two texts, got {type_name(a)} {_short(a)!r} "
            f"and {type_name(b)} {_short(b)!r}"
        )

    return apply


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return any(equal(x, b) for x in a)
    if isinstance(a, str) and isinstance(b, str):
        return b in a
    raise ExprError(
        f"`contains` looks in a text or a list, got {type_name(a)} {_short(a)!r} "
        f"and {type_name(b)} {_short(b)!r}"
    )


def _affix(symbol: str, fn: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def apply(a: Any, b: Any) -> bool:
        if isinstance(a, str) and isinstance(b, str):
            return fn(a, b)
        raise ExprError(
            f"`{symbol}` tests two texts, got {type_name(a)} {_short(a)!r} "
            f"and {type_name(b)} {_short(b)!r}"
        )

    return apply


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "contains": _contains,
    "starts with": _affix("starts with", str.startswith),
    "ends with": _affix("ends with", str.endswith),
    "+": _add,
    "-": _numeric("-", lambda a, b: a - b),
    "*": _numeric("*", lambda a, b: a * b),
    "/": _numeric("/", _divide),
    "<": _compare("<", lambda a, b: a < b),
    "<=": _compare("<=", lambda a, b: a <= b),
    ">": _compare(">", lambda a, b: a > b),
    ">=": _compare(">=", lambda a, b: a >= b),
}


def ref_names(exprs: Iterable[Expr]) -> tuple[str, ...]:
    """The distinct names a group of expressions reads, in first-use order."""
    seen: dict[str, None] = {}
    for e in exprs:
        for r in refs(e):
            seen.setdefault(r.name, None)
    return tuple(seen)
