from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from treadle.stdlib_ops.format_answer import short_answer
from treadle.stdlib_ops.review import Review, parse_review

if TYPE_CHECKING:
    from tests.ops.conftest import Call, Scripted


@pytest.mark.parametrize(
    ("reply", "approved", "feedback", "readable"),
    [
        ("Verdict: approve\nFeedback: Each step checks out.", True, "Each step checks out.", True),
        (
            "**Verdict:** REJECT\n**Feedback:** 3*4 is 12, not 14.",
            False,
            "3*4 is 12, not 14.",
            True,
        ),
        ("Verdict: incorrect\nFeedback: off by one", False, "off by one", True),
        ("Correct. The sum is right.", True, "Correct. The sum is right.", True),
        ("Hmm, hard to say.\nFeedback: check line 2", False, "check line 2", False),
    ],
)
def test_parse_review(reply: str, approved: bool, feedback: str, readable: bool) -> None:
    assert parse_review(reply) == (Review(approved=approved, feedback=feedback), readable)


async def test_review_record_and_prompt(call: Call, scripted: Scripted) -> None:
    ctx = scripted("Verdict: reject\nFeedback: the program says 18, not 16.")
    got = await call(
        "review", ctx, {"solution": "Answer: 16", "problem": "eggs?", "context": "program: 18"}
    )
    assert got == Review(approved=False, feedback="the program says 18, not 16.")
    assert ctx.events == []
    prompt = ctx.backend.prompts[0]
    assert "Answer: 16" in prompt and "eggs?" in prompt and "program: 18" in prompt


async def test_unreadable_review_is_not_approved_and_is_traced(
    call: Call, scripted: Scripted
) -> None:
    ctx = scripted("I like it.")
    got = await call("review", ctx, {"solution": "x"})
    assert got.approved is False
    assert ctx.event_names() == ["review.unreadable"]


async def test_revise_text(call: Call, scripted: Scripted) -> None:
    ctx = scripted("  12 * 3 = 36, so the answer is 36.  ")
    got = await call(
        "revise",
        ctx,
        {"solution": "12 * 3 = 34", "feedback": "12*3 is 36", "problem": "12 boxes of 3"},
    )
    assert got == "12 * 3 = 36, so the answer is 36."
    prompt = ctx.backend.prompts[0]
    assert "12 * 3 = 34" in prompt and "12*3 is 36" in prompt and "12 boxes of 3" in prompt
    assert "```python" not in prompt


async def test_revise_keeps_code_as_code(call: Call, scripted: Scripted) -> None:
    ctx = scripted("Fixed:\n```python\ndef inc(x):\n    return x + 1\n\nprint(inc(1))\n```")
    got = await call(
        "revise", ctx, {"solution": "def inc(x):\n    return x - 1\n", "feedback": "inc(1) gave 0"}
    )
    assert got == "def inc(x):\n    return x + 1\n"
    assert "```python" in ctx.backend.prompts[0]


async def test_revise_keeps_a_script_whole(call: Call, scripted: Scripted) -> None:
    ctx = scripted("```python\nprint(sum(range(1, 11)))\n```")
    got = await call(
        "revise",
        ctx,
        {"solution": "print(sum(range(1, 11)) / 0)\n", "feedback": "ZeroDivisionError"},
    )
    assert got == "print(sum(range(1, 11)))\n"


async def test_revise_kind_option_overrides_detection(call: Call, scripted: Scripted) -> None:
    ctx = scripted("```python\nx = 1\n```")
    got = await call("revise", ctx, {"solution": "set x to one", "feedback": "f"}, {"kind": "code"})
    assert got == "x = 1\n"


@pytest.mark.parametrize(
    ("reply", "short"),
    [
        ("42", "42"),
        ("Answer: 42.", "42"),
        ("**Final answer:** $\\frac{1}{2}$", "$\\frac{1}{2}$"),
        ("\\boxed{3\\sqrt{2}}", "3\\sqrt{2}"),
        ("\n\nThe answer is Paris.\nBecause it is the capital.", "Paris"),
        ("Answers vary", "Answers vary"),
        ("3.5", "3.5"),
        ("", ""),
    ],
)
def test_short_answer(reply: str, short: str) -> None:
    assert short_answer(reply) == short


async def test_format_asks_for_a_short_answer(call: Call, scripted: Scripted) -> None:
    ctx = scripted("Answer: 18\nExplanation: ...")
    got = await call(
        "format", ctx, {"solution": "long working ... 18 dollars", "problem": "how much?"}
    )
    assert got == "18"
    assert ctx.backend.calls[0].params.max_tokens == 64
    assert "long working" in ctx.backend.prompts[0]
