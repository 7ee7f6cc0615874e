"""The checker is sound: what `treadle check` accepts, runs.

The law, as a property: hypothesis draws well-typed flows over the whole operator registry
(`treadle.generation.synthetic`), each compiles without errors, and each runs to the end on a
scripted model whose replies every operator can read (a final answer, a verdict, a fenced
`solve()`), so no run may fail with a type or argument error. Code runs in the process
sandbox: the only code that runs is the scripted model's own `solve()` and the flows' constant
snippets, which this test wrote, so the isolation of Docker adds nothing to what is checked
here and the test needs no image.

Alongside, the cases the law was written from (issue 21), each once, and the rule itself
(`treadle.runtime.coerce`) against the template rendering it must equal.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.compiler import check_source, compile_source
from treadle.errors import RunError
from treadle.flow import Flow
from treadle.generation.synthetic import synthetic_flow, synthetic_flows
from treadle.runtime.coerce import CoercionError, coerce
from treadle.runtime.expr import render
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.scheduler import RunOptions
from treadle.runtime.types import BOOLEAN, CODE, JSON, NUMBER, TEXT, choice, list_of
from treadle.stdlib_ops.registry import operators

#: replies every operator reads: a thought and an answer, a verdict, a fenced `solve()`; one
#: approves and one rejects, so loops and branches take both ways
REPLIES = (
    "Thought: six sevens.\nAnswer: 42\nVERDICT: approved\n"
    "```python\ndef solve():\n    return 42\n```",
    "Thought: not yet.\nAnswer: 7\nVERDICT: rejected\nFeedback: try again\n"
    "```python\ndef solve():\n    return 7\n```",
)


def reply(messages: list[Message]) -> str:
    digest = hashlib.sha256(messages[-1].content.encode()).digest()
    return REPLIES[digest[0] % len(REPLIES)]


async def run_flow(source: str, inputs: dict[str, Any]) -> dict[str, Any]:
    result = await Flow(compile_source(source, "synthetic.flow")).run(
        inputs,
        model=ScriptedBackend(reply),
        cache=False,
        sandbox="process",
        options=RunOptions(retries=0),
    )
    return result.outputs


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.randoms(use_true_random=False))
def test_what_compiles_runs(rng: random.Random) -> None:
    flow = synthetic_flow(rng)
    errors = [d for d in check_source(flow.source) if d.is_error]
    assert not errors, f"the generator wrote a flow with errors:\n{flow.source}\n{errors}"
    try:
        asyncio.run(run_flow(flow.source, flow.inputs))
    except RunError as e:
        pytest.fail(f"a flow the checker accepts failed:\n{flow.source}\n{e.message}")


def test_the_generator_covers_the_whole_registry() -> None:
    used = {op for f in synthetic_flows(0, 60) for op in f.operators}
    assert used == set(operators())


def test_the_generator_is_reproducible_from_its_seed() -> None:
    first = [f.source for f in synthetic_flows(7, 5)]
    assert first == [f.source for f in synthetic_flows(7, 5)]
    assert first != [f.source for f in synthetic_flows(8, 5)]


# ---------------------------------------------------------------- the cases of issue 21


def test_a_number_reaches_a_text_option_as_a_template_renders_it() -> None:
    source = (
        "workflow f(problem: text, n: number) -> c: code, shown: text\n"
        "  c = write code for problem with entry_point n\n"
        '  shown = "{n}"\n'
        "end\n"
    )
    code = "```python\ndef f430():\n    return 1\n```"

    async def main() -> Backendless:
        backend = ScriptedBackend([code])
        flow = Flow(compile_source(source, "f.flow"))
        result = await flow.run({"problem": "p", "n": 430.0}, model=backend, cache=False)
        return result.outputs, backend.prompts[0]

    outputs, prompt = asyncio.run(main())
    assert outputs["shown"] == "430"
    assert "The function must be named `430`." in prompt


Backendless = tuple[dict[str, Any], str]


def test_a_json_value_reaches_a_text_argument_as_in_a_template() -> None:
    source = (
        "workflow f(form: json) -> out: text, shown: text\n"
        "  out = format form\n"
        '  shown = "{form}"\n'
        "end\n"
    )

    async def main() -> Backendless:
        backend = ScriptedBackend(["Answer: ok"])
        flow = Flow(compile_source(source, "f.flow"))
        result = await flow.run({"form": {"a": [1, 2]}}, model=backend, cache=False)
        return result.outputs, backend.prompts[0]

    outputs, prompt = asyncio.run(main())
    assert outputs["shown"] == '{"a": [1, 2]}'
    assert outputs["shown"] in prompt


@pytest.mark.parametrize(
    ("value", "got"),
    [({"a": 1}, 'a record {"a": 1}'), (None, "null"), ("12", "text '12'")],
)
def test_a_declared_output_of_the_wrong_type_is_a_run_error_naming_it(value: Any, got: str) -> None:
    source = "workflow f(j: json) -> answer1: number\n  answer1 = j\nend\n"
    flow = Flow(compile_source(source, "f.flow"))
    with pytest.raises(RunError) as e:
        asyncio.run(flow.run({"j": value}, model=ScriptedBackend([]), cache=False))
    assert e.value.message == (
        f"The output `answer1` of workflow f is declared number, but the workflow computed {got}."
    )


def test_a_declared_text_output_renders_a_number() -> None:
    source = "workflow f(n: number) -> answer: text\n  answer = n\nend\n"
    flow = Flow(compile_source(source, "f.flow"))
    outputs = asyncio.run(flow.run({"n": 2.0}, model=ScriptedBackend([]), cache=False)).outputs
    assert outputs == {"answer": "2"}


def test_a_call_input_is_converted_to_the_callee_s_declared_type() -> None:
    source = (
        "workflow f(j: json) -> out: number\n"
        "  out = g j\n"
        "end\n"
        "workflow g(n: number) -> m: number\n"
        "  m = n + 1\n"
        "end\n"
    )
    flow = Flow(compile_source(source, "f.flow"))
    assert asyncio.run(flow.run({"j": 1}, model=ScriptedBackend([]))).outputs == {"out": 2}
    with pytest.raises(RunError) as e:
        asyncio.run(flow.run({"j": "one"}, model=ScriptedBackend([])))
    assert "The input `n` of workflow g is declared number, but the call gives text 'one'." in (
        e.value.message
    )


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "value", ["x", 3, 2.0, 2.5, True, False, None, [1, "a"], {"k": [True, None]}]
)
def test_text_takes_any_value_as_a_template_renders_it(value: Any) -> None:
    assert coerce(value, TEXT) == render(value)
    assert coerce(value, CODE) == render(value)


@pytest.mark.parametrize(
    ("value", "t", "expected"),
    [
        (3, NUMBER, 3),
        (True, BOOLEAN, True),
        ([1, 2], list_of(TEXT), ["1", "2"]),
        ({"a": 1}, JSON, {"a": 1}),
        ("code", choice("auto", "code"), "code"),
    ],
)
def test_values_of_the_type_pass(value: Any, t: Any, expected: Any) -> None:
    assert coerce(value, t) == expected


@pytest.mark.parametrize(
    ("value", "t", "message"),
    [
        (True, NUMBER, "expects a number, got a boolean true"),
        ("3", NUMBER, "expects a number, got text '3'"),
        (None, BOOLEAN, "expects a boolean, got null"),
        ({"a": 1}, list_of(NUMBER), 'expects a list of number, got a record {"a": 1}'),
        ([1, "x"], list_of(NUMBER), "expects items of type number, got text 'x' as item 1"),
        ("fast", choice("auto", "code"), "expects one of auto, code, got text 'fast'"),
    ],
)
def test_values_of_another_type_are_refused_with_what_came(
    value: Any, t: Any, message: str
) -> None:
    with pytest.raises(CoercionError) as e:
        coerce(value, t)
    assert str(e.value) == message


def test_null_stays_null_where_the_argument_is_optional() -> None:
    assert coerce(None, TEXT, optional=True) is None
    assert coerce(None, TEXT) == "null"


def _numeric_options() -> list[tuple[str, str]]:
    return [
        (name, o.name)
        for name, op in sorted(operators().items())
        for o in op.signature.options
        if o.range is not None
    ]


@pytest.mark.parametrize(("op_name", "option"), _numeric_options())
def test_a_constant_option_compiles_exactly_when_the_operator_takes_it(
    op_name: str, option: str
) -> None:
    op = operators()[op_name]
    bounds = next(o.range for o in op.signature.options if o.name == option)
    assert bounds is not None
    edges = [b for b in (bounds.low, bounds.high) if b is not None]
    required = [p for p in op.signature.params if p.required]
    for value in {0.0, 0.5, 1.0, 7.0, *edges, *(e + d for e in edges for d in (-0.5, 0.5, 1))}:
        written = render(value)
        values = ((p.prep, "[q]" if p.type.kind == "list" else "q") for p in required)
        args = " ".join(f"{prep} {v}" if prep else v for prep, v in values)
        source = (
            f"workflow f(q: text) -> a: json\n"
            f"  a = {op_name} {args} with {option} {'-' if value < 0 else ''}{render(abs(value))}\n"
            "end\n"
        )
        compiles = not [d for d in check_source(source) if d.is_error]
        try:
            op.options.model_validate({option: value})
            runs = True
        except ValueError:
            runs = False
        assert compiles == runs, f"{op_name} with {option} {written}"
