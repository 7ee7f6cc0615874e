"""Expression evaluation: the rules a user sees in templates, comparisons and conditions."""

from __future__ import annotations

from typing import Any

import pytest

from treadle.runtime import ir
from treadle.runtime.expr import ExprError, evaluate, render


def c(v: Any) -> ir.Const:
    return ir.Const(value=v)


def r(name: str, *path: str) -> ir.Ref:
    return ir.Ref(name=name, path=path)


def b(op: str, left: Any, right: Any) -> ir.Binary:
    return ir.Binary(op=op, left=left, right=right)


ENV = {"n": 3.0, "i": 3, "t": "hi", "l": [1, 2.5, "x"], "rec": {"passed": True, "nested": {"k": 1}}}


def ev(expr: Any) -> Any:
    return evaluate(expr, ENV.__getitem__)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (3.0, "3"),
        (2.5, "2.5"),
        (7, "7"),
        (True, "true"),
        (None, "null"),
        ([1, "a"], '[1, "a"]'),
        ({"a": 1}, '{"a": 1}'),
        (1e20, "1e+20"),
    ],
)
def test_render(value: Any, text: str) -> None:
    assert render(value) == text


def test_template_renders_each_part() -> None:
    t = ir.Template(
        parts=("n=", r("n"), ", t=", r("t"), ", l=", r("l"), ", ok=", r("rec", "passed"))
    )
    assert ev(t) == 'n=3, t=hi, l=[1, 2.5, "x"], ok=true'


def test_equality_is_numeric_for_numbers() -> None:
    assert ev(b("==", r("n"), r("i"))) is True
    assert ev(b("!=", r("n"), c(4))) is True
    assert ev(b("==", c(True), c(1))) is False
    assert ev(b("==", c([1, 2.0]), c([1.0, 2]))) is True
    assert ev(b("==", c("3"), c(3))) is False


def test_and_or_short_circuit() -> None:
    missing = r("rec", "nope")  # would raise if evaluated
    assert ev(b("and", c(False), missing)) is False
    assert ev(b("or", c(True), missing)) is True
    with pytest.raises(ExprError):
        ev(b("and", c(True), missing))


def test_arithmetic_and_comparison() -> None:
    assert ev(b("+", r("i"), c(1))) == 4
    assert ev(b("/", c(6), c(3))) == 2
    assert ev(b("+", r("t"), c(" there"))) == "hi there"
    assert ev(b("<", c("a"), c("b"))) is True
    assert ev(ir.Unary(op="neg", operand=r("i"))) == -3
    assert ev(ir.Unary(op="not", operand=r("rec", "passed"))) is False
    with pytest.raises(ExprError, match="division by zero"):
        ev(b("/", c(1), c(0)))
    with pytest.raises(ExprError, match="needs two numbers"):
        ev(b("*", c("a"), c(2)))
    with pytest.raises(ExprError, match="compares two numbers or two texts"):
        ev(b("<", c("a"), c(2)))


def test_paths_index_records_and_lists() -> None:
    assert ev(r("rec", "nested", "k")) == 1
    assert ev(r("l", "1")) == 2.5
    with pytest.raises(ExprError, match=r"`rec.nested` has no field `z` \(its fields: k\)"):
        ev(r("rec", "nested", "z"))
    with pytest.raises(ExprError, match="`t` is text, not a record"):
        ev(r("t", "x"))
    with pytest.raises(ExprError, match="has 3 items"):
        ev(r("l", "9"))


def test_list_expression() -> None:
    assert ev(ir.ListExpr(items=(r("i"), c("a")))) == [3, "a"]
