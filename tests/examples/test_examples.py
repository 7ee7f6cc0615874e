"""Every example compiles, and runs on the scripted model through the real scheduler along
exactly the path its script steers it to: which steps ran, which were skipped, loop turns,
branch arms, and the events operators recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from example_paths import EXAMPLES, run_example

from treadle.compiler import check_file, compile_file
from treadle.compiler.formatter import format_source
from treadle.runtime.models.base import Message

FLOWS = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.flow"))
MINE = [
    "gsm8k_self_consistency.flow",
    "math_revise.flow",
    "gsm8k_cross_check.flow",
    "humaneval_repair.flow",
    "autoflow_decision.flow",
    "lib/capabilities.flow",
    "use_capabilities.flow",
]


@pytest.mark.parametrize("name", FLOWS)
def test_every_example_compiles_without_warnings(name: str) -> None:
    assert check_file(EXAMPLES / name) == []
    compile_file(EXAMPLES / name)


@pytest.mark.parametrize("name", FLOWS)
def test_every_example_is_formatted(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    assert format_source(text, name) == text, f"`treadle fmt examples/{name}` would change it"


def test_the_examples_are_found_recursively() -> None:
    assert "lib/capabilities.flow" in FLOWS and "lib/checks.flow" in FLOWS


def test_every_example_is_listed_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for name in MINE:
        assert (EXAMPLES / name).is_file(), name
        assert f"`{name}`" in readme, f"examples/README.md does not describe {name}"


def test_readme_lines_point_at_existing_files() -> None:
    import re

    readme = (EXAMPLES / "README.md").read_text()
    for name in re.findall(r"`([\w/]+\.flow)`", readme):
        assert Path(EXAMPLES / name).is_file(), name


# ---------------------------------------------------------------- 1. GSM8K self-consistency

APPLES = {"problem": "Tom has 3 apples and buys 4 more. How many apples does he have?"}


def _self_consistency_script(drafts: list[str], pick: str) -> Callable[[list[Message]], str]:
    """Drafts in call order for the sampled step, then the ensemble's pick."""
    queue = iter(drafts)

    def reply(messages: list[Message]) -> str:
        if "Several solutions were written" in messages[-1].content:
            return pick
        return next(queue)

    return reply


async def test_self_consistency_samples_three_drafts_and_the_model_picks_one() -> None:
    script = _self_consistency_script(["Answer: 7", "Answer: 8", "So 7.\nAnswer: 7"], "Choice: C")
    result, path, model = await run_example("gsm8k_self_consistency.flow", APPLES, script)
    assert path.ran == ["drafts", "solution", "answer"]
    assert path.counts == {"drafts": 1, "solution": 1, "answer": 1}
    assert path.events == [("solution", "ensemble.choice", {"chosen": "C"})]
    drafts = next(s.outputs["value"] for s in result.spans if s.name == "drafts")
    assert sorted(drafts) == ["Answer: 7", "Answer: 8", "So 7.\nAnswer: 7"]
    assert result.outputs == {"answer": 7, "solution": drafts[2]}
    # three samples at temperature 0.7, each with its own seed, then one ensemble call
    samples = [c.params for c in model.calls[:3]]
    assert [p.temperature for p in samples] == [0.7, 0.7, 0.7]
    assert sorted(p.seed for p in samples) == [1, 2, 3]
    assert len(model.calls) == 4


async def test_self_consistency_invalid_pick_falls_back_to_the_majority() -> None:
    script = _self_consistency_script(["Answer: 8", "Answer: 7", "Answer: 7.0"], "Choice: F")
    result, path, _ = await run_example("gsm8k_self_consistency.flow", APPLES, script)
    assert path.ran == ["drafts", "solution", "answer"]
    ((step, event, attrs),) = path.events
    assert (step, event) == ("solution", "ensemble.fallback")
    assert attrs["reason"] == "choice 'F' is not one of A-C"
    assert result.outputs["answer"] == 7


# ---------------------------------------------------------------- 2. MATH revise chain


async def test_math_revise_model_picks_the_revision() -> None:
    result, path, model = await run_example(
        "math_revise.flow",
        {"problem": "What is 2 + 2?"},
        ["2 + 2 = 5\nAnswer: 5", "2 + 2 is 4, not 5.\nAnswer: 4", "B is right.\nChoice: B"],
    )
    assert path.ran == ["first", "second", "solution", "answer"]
    assert path.events == [("solution", "ensemble.choice", {"chosen": "B"})]
    assert result.outputs == {"answer": "4", "solution": "2 + 2 is 4, not 5.\nAnswer: 4"}
    # the revision saw the first solution
    assert "2 + 2 = 5" in model.prompts[1]


async def test_math_revise_unreadable_pick_falls_back_to_the_vote() -> None:
    result, path, _ = await run_example(
        "math_revise.flow",
        {"problem": "What is 2 + 2?"},
        ["Answer: 4", "Answer: 4.0", "Both look fine to me."],
    )
    assert path.ran == ["first", "second", "solution", "answer"]
    assert path.events == [
        (
            "solution",
            "ensemble.fallback",
            {"reason": "the reply names no choice", "chosen": "A", "method": "majority vote"},
        )
    ]
    assert result.outputs["answer"] == "4"


# ---------------------------------------------------------------- 5. AutoFlow decision flow

PENS = {"question": "A pen costs 3 dollars. How much do 4 pens cost?"}


def _support_script(route: str, verdict: str) -> dict[str, str]:
    return {
        "Restate": "The cost of 4 pens at 3 dollars each.",
        "need a calculation": route,
        "Solve the problem": "Thought: 4 * 3 = 12\nAnswer: 12",
        "Review the solution": f"Verdict: {verdict}\nFeedback: 4 * 3 is 12.",
        "Improve the solution": "12 dollars",
        "final answer as briefly": "12",
        "Answer the question briefly": "Pens are cheap.",
    }


async def test_autoflow_calculation_approved_takes_steps_1_to_5() -> None:
    result, path, _ = await run_example(
        "autoflow_decision.flow", PENS, _support_script("yes", "approve")
    )
    assert path.ran == ["task", "route", "worked", "check", "reply"]
    assert path.skipped == ["direct", "result"]
    assert path.arms == {"support_answer.if1": 0, "support_answer.if1.then.if1": 0}
    assert result.outputs == {"reply": "12"}


async def test_autoflow_rejected_review_revises_before_the_terminal_step() -> None:
    result, path, model = await run_example(
        "autoflow_decision.flow", PENS, _support_script("yes", "reject")
    )
    assert path.ran == ["task", "route", "worked", "check", "result", "reply"]
    assert path.skipped == ["direct"]
    assert path.arms == {"support_answer.if1": 0, "support_answer.if1.then.if1": 1}
    assert "4 * 3 is 12." in model.prompts[4]  # the review's feedback reached `revise`
    assert result.outputs == {"reply": "12"}


async def test_autoflow_no_calculation_answers_directly() -> None:
    result, path, model = await run_example(
        "autoflow_decision.flow", PENS, _support_script("no", "approve")
    )
    assert path.ran == ["task", "route", "direct"]
    assert path.skipped == ["worked", "check", "result", "reply"]
    assert path.arms == {"support_answer.if1": 1}
    assert len(model.calls) == 3
    assert result.outputs == {"reply": "Pens are cheap."}
