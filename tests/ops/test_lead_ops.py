"""generate, extract and vote, and the reply readers they share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from treadle.stdlib_ops import _text
from treadle.stdlib_ops.vote import majority

if TYPE_CHECKING:
    from tests.ops.conftest import Call, Scripted


async def test_generate_sends_instruction_input_and_system(call: Call, scripted: Scripted) -> None:
    ctx = scripted("  the reply \n")
    got = await call(
        "generate", ctx, {"prompt": "Summarize.", "input": "long text"}, {"system": "Be brief."}
    )
    assert got == "the reply"
    (c,) = ctx.backend.calls
    assert [(m.role, m.content) for m in c.messages] == [
        ("system", "Be brief."),
        ("user", "Summarize.\n\nlong text"),
    ]


async def test_generate_derives_a_seed_per_sample(call: Call, scripted: Scripted) -> None:
    seeds = []
    for sample in range(3):
        ctx = scripted("x")
        ctx.seed, ctx.sample = 100, sample
        await call("generate", ctx, {"prompt": "p"}, {"temperature": 0.7})
        seeds.append(ctx.backend.calls[0].params.seed)
    assert seeds == [100, 101, 102]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("So she pays $1,234.50 in total.\nAnswer: $1,234.50", 1234.5),
        ("3 + 4 = 7", 7),
        ("The answer is \\boxed{3/4}", 0.75),
        ("Answer: -2", -2),
        ("no digits", None),
    ],
)
def test_number_in(text: str, number: float | None) -> None:
    assert _text.number_in(text) == number


async def test_extract_operators(call: Call, scripted: Scripted) -> None:
    ctx = scripted()
    reply = 'Sure.\n```python\ndef f():\n    return 1\n```\n{"a": [1, 2]}\nAnswer: 18'
    assert await call("extract number", ctx, {"text": reply}) == 18
    assert await call("extract code", ctx, {"text": reply}) == "def f():\n    return 1\n"
    assert await call("extract json", ctx, {"text": reply}) == {"a": [1, 2]}
    assert await call("extract answer", ctx, {"text": reply}) == "18"
    assert ctx.backend.calls == []


def test_normalize_equates_equal_answers() -> None:
    n = _text.normalize
    assert n(7) == n(7.0) == n("7") == n("7.")
    assert n("Paris") == n("  paris ")
    assert n("def f(x):\n    return x+1") == n("def f(x):\n    # c\n    return x + 1\n")
    assert n("def f(x):\n    return x+1") != n("def f(x):\n    return x-1")
    assert n(None) is None


def test_majority_first_seen_wins_ties_and_nulls_are_ignored() -> None:
    assert majority([None, 3, "3.0", 4]) == 3
    assert majority(["b", "a", "a", "b"]) == "b"
    assert majority([None, None]) is None
    assert majority(["Answer: 5", "5"], "number") == "Answer: 5"


async def test_vote_operator(call: Call, scripted: Scripted) -> None:
    ctx = scripted()
    assert await call("vote", ctx, {"values": [1, 2, 2.0]}) == 2
    assert (
        await call("vote", ctx, {"values": ["x = 1\n", "x=1", "y = 2\n"]}, {"compare": "code"})
        == "x = 1\n"
    )
