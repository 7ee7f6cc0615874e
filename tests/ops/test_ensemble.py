from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from treadle.errors import StepError
from treadle.stdlib_ops.ensemble import fallback, labels, parse_choice

if TYPE_CHECKING:
    from tests.ops.conftest import Call, Scripted

DRAFTS = [
    "3 + 4 = 7, so 7 apples.\nAnswer: 7",
    "She has 3 and buys 5: 8.\nAnswer: 8",
    "3 apples and 4 more make 7.\nAnswer: 7",
]


@pytest.mark.parametrize(
    ("reply", "index"),
    [
        ("B", 1),
        ("(c)", 2),
        ("A and C agree on 7.\nChoice: C", 2),
        ("**Choice:** (A)", 0),
        ("Choice: 2", 1),
        ("I pick solution B because it is clear.", 1),
        ("Solution A says 7. Solution C says 7.\nChoice: A", 0),
    ],
)
def test_parse_choice_reads_valid_labels(reply: str, index: int) -> None:
    assert parse_choice(reply, 3) == (index, "")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("The most common answer is 7.", "the reply names no choice"),
        ("Choice: D", "choice 'D' is not one of A-C"),
        ("Choice: 7", "choice 7 is not one of 1-3"),
        ("", "the reply names no choice"),
    ],
)
def test_parse_choice_explains_invalid_choices(reply: str, reason: str) -> None:
    assert parse_choice(reply, 3) == (None, reason)


def test_labels_switch_to_numbers_past_z() -> None:
    assert labels(3) == ["A", "B", "C"]
    assert labels(27)[:2] == ["1", "2"] and labels(27)[-1] == "27"


def test_fallback_votes_on_final_answers_of_prose() -> None:
    # the texts all differ; their answers 8, 7, 7 make the second one the majority
    assert fallback(["Answer: 8", "so 7\nAnswer: 7", "Answer: 7.0"], "auto") == 1


def test_fallback_compares_code_by_syntax_tree() -> None:
    a = "def f(x):\n    return x+1\n"
    b = "def f(x):\n    return x - 1\n"
    c = "def f(x):\n    # same as a\n    return x + 1\n"
    assert fallback([b, a, c], "auto") == 1


async def test_ensemble_returns_the_chosen_candidate(call: Call, scripted: Scripted) -> None:
    ctx = scripted("A and C both give 7.\nChoice: C")
    got = await call("ensemble", ctx, {"candidates": DRAFTS, "problem": "How many apples?"})
    assert got == DRAFTS[2]
    assert ctx.events == [("ensemble.choice", {"chosen": "C"})]
    (prompt,) = ctx.backend.prompts
    assert "How many apples?" in prompt
    assert "A.\n3 + 4 = 7" in prompt and "C.\n3 apples" in prompt and "A, B, C" in prompt


async def test_invalid_choice_falls_back_to_majority_and_says_so(
    call: Call, scripted: Scripted
) -> None:
    ctx = scripted("Choice: E")
    got = await call("ensemble", ctx, {"candidates": [DRAFTS[1], DRAFTS[0], DRAFTS[2]]})
    assert got == DRAFTS[0]  # 7 is the majority; its first candidate is the second one
    assert ctx.events == [
        (
            "ensemble.fallback",
            {"reason": "choice 'E' is not one of A-C", "chosen": "B", "method": "majority vote"},
        )
    ]


async def test_unreadable_reply_falls_back_too(call: Call, scripted: Scripted) -> None:
    ctx = scripted("They are all fine solutions.")
    got = await call("ensemble", ctx, {"candidates": [12, 12.0, 13]})
    assert got == 12
    assert ctx.event_names() == ["ensemble.fallback"]
    assert ctx.events[0][1]["reason"] == "the reply names no choice"


async def test_single_candidate_needs_no_model_and_empty_list_fails(
    call: Call, scripted: Scripted
) -> None:
    ctx = scripted()
    assert await call("ensemble", ctx, {"candidates": [None, "only"]}) == "only"
    assert ctx.backend.calls == [] and ctx.event_names() == ["ensemble.single"]
    with pytest.raises(StepError, match="at least one candidate"):
        await call("ensemble", scripted(), {"candidates": [None]})


async def test_non_text_candidates_are_shown_as_json(call: Call, scripted: Scripted) -> None:
    ctx = scripted("Choice: B")
    got = await call("ensemble", ctx, {"candidates": [{"a": 1}, {"a": 2}]})
    assert got == {"a": 2}
    assert 'B.\n{"a": 2}' in ctx.backend.prompts[0]
