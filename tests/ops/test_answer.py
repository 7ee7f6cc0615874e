from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from treadle.stdlib_ops.answer import Answer, parse_answer

if TYPE_CHECKING:
    from tests.ops.conftest import Call, Scripted


@pytest.mark.parametrize(
    ("reply", "thought", "answer"),
    [
        ("Thought: 3 apples plus 4 is 7.\nAnswer: 7", "3 apples plus 4 is 7.", "7"),
        ("**Thought:** add them\n**Answer:** 42", "add them", "42"),
        ("<thought>half of 10</thought>\n<answer>5</answer>", "half of 10", "5"),
        ("We add.\nFinal answer: x = 2\nThat's it.", "We add.", "x = 2"),
        (
            "Step 1: 2*3=6.\nThe answer is \\boxed{6}.",
            "Step 1: 2*3=6.\nThe answer is \\boxed{6}.",
            "6",
        ),
        ("Two plus two.\nFour", "Two plus two.", "Four"),
        ("", "", ""),
    ],
)
def test_parse_answer(reply: str, thought: str, answer: str) -> None:
    assert parse_answer(reply) == Answer(thought=thought, answer=answer)


def test_answer_label_inside_a_sentence_is_not_the_answer() -> None:
    # "answer" mid-sentence is prose; the line-leading label wins
    got = parse_answer("I think the answer: maybe 3?\nAnswer: 4")
    assert got.answer == "4"


async def test_answer_runs_the_prompt_and_returns_a_record(call: Call, scripted: Scripted) -> None:
    ctx = scripted("Thought: 12 / 4 = 3\nAnswer: 3")
    got = await call(
        "answer", ctx, {"problem": "Split 12 eggs among 4.", "context": "hint: divide"}
    )
    assert got == Answer(thought="12 / 4 = 3", answer="3")
    (prompt,) = ctx.backend.prompts
    assert "Split 12 eggs among 4." in prompt and "hint: divide" in prompt
    assert "Answer:" in prompt


async def test_answer_passes_sampling_options_and_model(call: Call, scripted: Scripted) -> None:
    ctx = scripted("Answer: 1")
    ctx.seed, ctx.sample = 10, 2
    await call("answer", ctx, {"problem": "p"}, {"temperature": 0.7, "model": "scripted:x"})
    (c,) = ctx.backend.calls
    assert c.params.temperature == 0.7 and c.params.seed == 12
    assert ctx.models == ["scripted:x"]
