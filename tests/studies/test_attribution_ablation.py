"""Every operator declares how attribution removes it (issue 10): never guessed at run time."""

from __future__ import annotations

import typing

from pydantic import BaseModel, TypeAdapter

from treadle.stdlib_ops import registry


def test_every_operator_declares_its_ablation() -> None:
    missing = [name for name, op in registry.operators().items() if op.ablation is None]
    assert not missing, f"declare `ablation=` (passes/first_of/constant/not_removable): {missing}"


def test_declared_ablations_name_real_parameters_and_fit_the_output() -> None:
    for name, op in registry.operators().items():
        a = op.ablation
        assert a is not None
        params = {p.name: p for p in op.signature.params}
        if a.kind in ("pass", "first"):
            assert a.param in params, f"{name}: no parameter {a.param!r}"
        elif a.kind == "constant":
            value = dict(a.value) if isinstance(a.value, dict) else a.value
            for field, arg in a.fields_from:
                assert arg in params, f"{name}: no parameter {arg!r}"
                value[field] = None
            out = op.output
            if isinstance(out, type) and issubclass(out, BaseModel):
                # the stand-in is a record of the operator's type: every field, nothing else
                fields = out.model_fields
                assert set(value) <= set(fields), f"{name}: {set(value) - set(fields)}"
                required = {f for f, info in fields.items() if info.is_required()}
                assert required <= set(value), f"{name}: missing {required - set(value)}"
            else:
                TypeAdapter(typing.cast(typing.Any, out)).validate_python(value)
        else:
            assert a.kind == "keep" and a.reason, f"{name}: say why it cannot be removed"


def test_ablations_the_issue_names() -> None:
    ops = registry.operators()

    def abl(n: str) -> registry.Ablation:
        a = ops[n].ablation
        assert a is not None
        return a

    assert (abl("revise").kind, abl("revise").param) == ("pass", "solution")
    assert (abl("format").kind, abl("format").param) == ("pass", "solution")
    assert (abl("ensemble").kind, abl("ensemble").param) == ("first", "candidates")
    assert (abl("vote").kind, abl("vote").param) == ("first", "values")
    assert abl("review").value == {"approved": True, "feedback": ""}
    assert abl("test").value["passed"] is True
    assert not abl("generate").removable
