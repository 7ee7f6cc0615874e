"""The examples that run code: their programs and tests run in the real Docker sandbox, the
model is scripted, and each test asserts the exact path the run took."""

from __future__ import annotations

import pytest
from example_paths import run_example

pytestmark = pytest.mark.docker


def program(value: str) -> str:
    """A model reply holding a program whose `solve()` returns `value`."""
    return f"```python\ndef solve():\n    return {value}\n```"


# ---------------------------------------------------------------- 3. GSM8K cross-check

EGGS = {
    "problem": "Janet's ducks lay 16 eggs a day. She eats 3 and bakes with 4. "
    "She sells the rest at $2 each. How much does she make?"
}


def _cross_check_script(
    drafts: tuple[str, str, str], first: str, second: str, pick: str
) -> dict[str, str]:
    """Three drafts, the two programs' return expressions, and the ensemble's pick."""
    direct, listed, backward = drafts
    return {
        "A reviewer's notes on it": program(second),
        "Write a Python program": program(first),
        "Several solutions were written": f"Choice: {pick}",
        "Review the solution below": "Verdict: approve\nFeedback: 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.",
        "First list every quantity": listed,
        "working backwards": backward,
        "Solve this math word problem": direct,
    }


async def test_cross_check_agreeing_program_keeps_the_ensemble_answer() -> None:
    drafts = ("Answer: 18", "Answer: 18", "Answer: 17")
    script = _cross_check_script(drafts, "(16 - 3 - 4) * 2", "18", "A")
    result, path, model = await run_example("gsm8k_cross_check.flow", EGGS, script)
    assert path.ran == [
        *("direct", "listed", "backward", "coded"),
        *("solution", "voted", "verdict", "recheck", "checked"),
    ]
    assert path.skipped == []
    assert path.arms == {"cross_check.if1": 3}  # else: the ensemble's number stands
    assert result.outputs == {"answer": 18, "solution": "Answer: 18"}
    # the ensemble saw the program's number as a fourth candidate
    ensemble_prompt = next(p for p in model.prompts if "Several solutions" in p)
    assert "D.\nThe program computed: 18" in ensemble_prompt
    # the second program was written with the review in hand
    recheck_prompt = next(p for p in model.prompts if "A reviewer's notes" in p)
    assert "9 * 2 = 18" in recheck_prompt


async def test_cross_check_prefers_the_program_when_they_disagree_by_over_0_1_percent() -> None:
    script = _cross_check_script(("Answer: 16", "Answer: 16", "Answer: 18"), "18", "9 * 2", "A")
    result, path, _ = await run_example("gsm8k_cross_check.flow", EGGS, script)
    assert path.arms == {"cross_check.if1": 2}
    assert result.outputs["answer"] == 18
    assert result.outputs["solution"] == "Answer: 16"


async def test_cross_check_ignores_a_difference_under_0_1_percent() -> None:
    script = _cross_check_script(("Answer: 18", "Answer: 18", "Answer: 18"), "18", "18.01", "B")
    result, path, _ = await run_example("gsm8k_cross_check.flow", EGGS, script)
    assert path.arms == {"cross_check.if1": 3}
    assert result.outputs["answer"] == 18


async def test_cross_check_keeps_the_ensemble_answer_when_the_program_returns_nothing() -> None:
    script = _cross_check_script(("Answer: 18", "Answer: 18", "Answer: 17"), "18", "None", "A")
    result, path, _ = await run_example("gsm8k_cross_check.flow", EGGS, script)
    assert path.arms == {"cross_check.if1": 0}
    assert result.outputs["answer"] == 18


async def test_cross_check_takes_the_program_when_the_solution_has_no_number() -> None:
    script = _cross_check_script(("no idea", "no idea", "no idea"), "18", "18", "A")
    result, path, _ = await run_example("gsm8k_cross_check.flow", EGGS, script)
    assert path.arms == {"cross_check.if1": 1}
    assert result.outputs["answer"] == 18


# ---------------------------------------------------------------- 4. HumanEval repair

ADD = {
    "problem": 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n',
    "entry_point": "add",
    "tests": "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    "    assert candidate(-1, 1) == 0\n",
}
WRONG = "```python\ndef add(a, b):\n    return a - b\n```"
ALSO_WRONG = "```python\ndef add(a, b):\n    return a * b\n```"
RIGHT = "```python\ndef add(a, b):\n    return a + b\n```"


async def test_humaneval_stops_at_the_first_passing_attempt() -> None:
    script = {"first attempt": WRONG, "failed its tests": RIGHT}
    result, path, model = await run_example("humaneval_repair.flow", ADD, script)
    assert path.turns == {"humaneval.repeat1": 2}
    assert path.counts == {"attempt": 2, "report": 2}
    assert path.arms == {"humaneval.if1": 0}
    assert path.skipped == ["solution"]  # the ensemble of the else arm
    assert [e[2]["passed"] for e in path.events if e[1] == "test.result"] == [False, True]
    assert result.outputs == {"solution": "def add(a, b):\n    return a + b\n"}
    # the second try was told which test failed
    assert "failed its tests" in model.prompts[1] and "candidate(1, 2) == 3" in model.prompts[1]


async def test_humaneval_passing_first_try_makes_one_turn() -> None:
    _, path, model = await run_example("humaneval_repair.flow", ADD, {"first attempt": RIGHT})
    assert path.turns == {"humaneval.repeat1": 1}
    assert path.counts == {"attempt": 1, "report": 1}
    assert path.arms == {"humaneval.if1": 0}
    assert len(model.calls) == 1


async def test_humaneval_without_a_pass_ensembles_the_three_attempts() -> None:
    script = {
        "Several solutions were written": "Choice: B",
        "first attempt": WRONG,
        "failed its tests": ALSO_WRONG,
    }
    result, path, model = await run_example("humaneval_repair.flow", ADD, script)
    assert path.turns == {"humaneval.repeat1": 3}
    assert path.counts == {"attempt": 3, "report": 3, "solution": 1}
    assert path.arms == {"humaneval.if1": 1}
    assert path.events[-1] == ("solution", "ensemble.choice", {"chosen": "B"})
    assert result.outputs == {"solution": "def add(a, b):\n    return a * b\n"}
    assert model.prompts[-1].count("def add(a, b):") == 3


# ---------------------------------------------------------------- 6. capability library

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "number"},
        "steps": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["answer", "steps"],
}
GOOD_JSON = '{"answer": 18, "steps": ["16 - 3 - 4 = 9", "9 * 2 = 18"]}'


async def test_capabilities_verified_and_valid_first_time() -> None:
    script = {
        "Write a Python program": program("(16 - 3 - 4) * 2"),
        "Reply with JSON only.": GOOD_JSON,
        "Think step by step": "Thought: 9 eggs left, 9 * 2 = 18\nAnswer: 18",
    }
    inputs = {**EGGS, "schema": SCHEMA}
    result, path, _ = await run_example("use_capabilities.flow", inputs, script)
    assert path.calls == [
        ("check", "lib/capabilities.verify_number"),
        ("summary", "lib/capabilities.json_answer"),
    ]
    assert path.ran == ["worked", "claimed", "computed", "checked", "reply", "check"]
    assert path.skipped == ["fixed", "recheck"]
    assert sorted(path.arms.values()) == [0, 3]  # json: valid (then); verify: agreed (else)
    assert result.outputs == {
        "answer": 18,
        "report": {"answer": 18, "steps": ["16 - 3 - 4 = 9", "9 * 2 = 18"]},
        "verified": True,
    }


async def test_capabilities_program_overrules_and_json_is_repaired_once() -> None:
    script = {
        "Write a Python program": program("18"),
        "Improve the solution below": GOOD_JSON,
        "Reply with JSON only.": '{"answer": "eighteen"}',
        "Think step by step": "Thought: 16 - 3 = 13, 13 * 2 = 26\nAnswer: 26",
    }
    inputs = {**EGGS, "schema": SCHEMA}
    result, path, model = await run_example("use_capabilities.flow", inputs, script)
    assert path.ran == [
        *("worked", "claimed", "computed", "checked"),
        *("reply", "check", "fixed", "recheck"),
    ]
    assert sorted(path.arms.values()) == [1, 2]  # json: repaired; verify: they disagree
    assert result.outputs["answer"] == 18
    assert result.outputs["verified"] is False  # the claim was overruled
    revise_prompt = next(p for p in model.prompts if "Improve the solution" in p)
    assert "$.answer: 'eighteen' is not of type 'number'" in revise_prompt
    assert "$: 'steps' is a required property" in revise_prompt


async def test_run_and_fix_revises_a_crashing_script_until_it_runs() -> None:
    script = {
        "Improve the solution below": "```python\nprint(sum(range(1, 11)))\n```",
        "Write a Python function": "```python\nprint(sum(range(1, 11)) / 0)\n```",
    }
    result, path, model = await run_example(
        "use_capabilities.flow", {"task": "add the numbers 1 to 10"}, script, workflow="script"
    )
    assert path.calls == [("fixed", "lib/capabilities.run_and_fix")]
    assert list(path.turns.values()) == [2]
    assert path.counts == {"draft": 1, "result": 2, "current": 1}
    assert result.outputs == {
        "code": "print(sum(range(1, 11)))\n",
        "output": "55\n",
        "ok": True,
    }
    assert "ZeroDivisionError" in model.prompts[1]
