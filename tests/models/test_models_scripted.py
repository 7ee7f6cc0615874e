"""The scripted backend: replays answers for control-flow tests and records the calls."""

from __future__ import annotations

import pytest

from treadle.errors import ModelError
from treadle.runtime.models import GenParams, Message, load_model
from treadle.runtime.models.scripted import ScriptedBackend

P = GenParams(max_tokens=16)


def user(text: str) -> list[Message]:
    return [Message(role="system", content="sys"), Message(role="user", content=text)]


async def test_replays_in_order_and_records_calls() -> None:
    model = ScriptedBackend(["one", "two"])
    assert (await model.complete(user("a"), P)).text == "one"
    second = await model.complete(user("b"), GenParams(temperature=0.5))
    assert second.text == "two"
    assert second.usage.output_tokens == 1 and second.usage.input_tokens == 2
    assert model.prompts == ["a", "b"]
    assert model.calls[1].params.temperature == 0.5


async def test_running_out_is_a_clear_error() -> None:
    model = ScriptedBackend(["only"])
    await model.complete(user("first"), P)
    with pytest.raises(ModelError, match=r"ran out of answers: call 2 .* only 1") as info:
        await model.complete(user("second prompt"), P)
    assert "second prompt" in info.value.message
    assert not info.value.retryable


async def test_default_answer_after_the_list() -> None:
    model = ScriptedBackend(["x"], default="d")
    assert [(await model.complete(user(str(i)), P)).text for i in range(3)] == ["x", "d", "d"]


async def test_dict_keyed_by_substring_of_last_user_message() -> None:
    model = ScriptedBackend({"capital of France": "Paris", "2+2": "4"})
    assert (await model.complete(user("What is the capital of France?"), P)).text == "Paris"
    assert (await model.complete(user("Compute 2+2."), P)).text == "4"
    with pytest.raises(ModelError, match="no answer for the prompt 'hello'"):
        await model.complete(user("hello"), P)


async def test_function_and_scripted_failures() -> None:
    model = ScriptedBackend(lambda messages: messages[-1].content.upper())
    assert (await model.complete(user("shout"), P)).text == "SHOUT"
    failing = ScriptedBackend([ModelError("boom", retryable=True), "after"])
    with pytest.raises(ModelError, match="boom"):
        await failing.complete(user("x"), P)
    assert (await failing.complete(user("x"), P)).text == "after"


async def test_spec_string() -> None:
    model = load_model('scripted:["a", "b"]')
    assert model.backend == "scripted"
    assert [(await model.complete(user("q"), P)).text for _ in range(2)] == ["a", "b"]
    constant = load_model("scripted:always this")
    assert (await constant.complete(user("q"), P)).text == "always this"
    keyed = load_model('scripted:{"red": "stop"}')
    assert (await keyed.complete(user("light is red"), P)).text == "stop"


async def test_a_grammar_is_refused_not_ignored() -> None:
    """A scripted reply is not constrained: a call that asks for a grammar must not get one
    that merely looks constrained."""
    model = ScriptedBackend(["0.5"])
    assert model.takes_grammar is False
    with pytest.raises(ModelError, match="cannot constrain"):
        await model.complete([Message(role="user", content="p?")], GenParams(grammar="root ::= x"))
    assert model.calls == []
