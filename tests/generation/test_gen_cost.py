"""The static cost bound against the calls a scripted run really makes."""

from __future__ import annotations

import pytest

from treadle.compiler import compile_source
from treadle.generation.cost import cost_bound
from treadle.generation.dry_run import dry_run
from treadle.generation.example_bank import EXAMPLES

STRAIGHT = """workflow s(problem: text) -> answer: number
  drafts = generate from "Solve: {problem}" with samples 3
  best = ensemble drafts for problem
  check = review best for problem with retries 1
  answer = extract number from best
end
"""

LOOP = """workflow l(problem: text, tests: text) -> solution: code
  solution = write code for problem
  repeat up to 3 times
    report = test solution against tests
    solution = revise solution using report.feedback
  until report.passed
end
"""

BRANCH = """workflow b(question: text) -> reply: text
  route = generate from "yes or no? {question}" with max_tokens 4
  if route == "yes" then
    worked = answer for question
    reply = format worked.answer for question
  else
    reply = generate from "Answer: {question}"
  end
end
"""

MAP = """workflow m(docs: list of text) -> summary: text
  parts = for each item in docs: generate from "Summarise: {item}"
  numbers = for each p in parts: extract number from p
  summary = generate from "Combine: {parts}"
end
"""


def test_bound_counts_samples_retries_loops_and_arms() -> None:
    assert cost_bound(compile_source(STRAIGHT)).bound() == (3 + 1 + 2, 0)
    assert cost_bound(compile_source(LOOP)).bound() == (1 + 3, 3)
    assert cost_bound(compile_source(BRANCH)).bound() == (3, 0)
    m = cost_bound(compile_source(MAP))
    assert m.bound() == (1, 0) and m.bound({"parts": 4}) == (5, 0)
    assert m.describe() == (
        "≤ 1 model call, ≤ 0 sandbox runs (+ 1 model call, 0 sandbox runs per item of parts)"
    )


@pytest.mark.parametrize("source", [STRAIGHT, BRANCH, MAP] + [e.flow for e in EXAMPLES])
async def test_counted_calls_stay_within_the_bound(source: str) -> None:
    program = compile_source(source)
    bound = cost_bound(program)
    run = await dry_run(program)
    assert run.ok, run.error
    calls, runs = bound.bound(run.map_items)
    assert run.model_calls <= calls and run.sandbox_runs <= runs
    if source in (STRAIGHT, MAP):  # no branch, loop, retry or early success: exactly the bound
        exact = cost_bound(compile_source(source.replace(" with retries 1", "")))
        assert (run.model_calls, run.sandbox_runs) == exact.bound(run.map_items)
