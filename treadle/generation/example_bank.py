# ruff: noqa: E501  (the flows keep their one-statement-a-line layout)
"""Worked examples for the generator's prompt: a task and the workflow that does it.

A few are chosen per request by similarity to the task (`selection.select_examples`). They are
written in the canonical layout with the statement forms the constrained decoder can produce,
so what the model is shown is what it is allowed to write. A test compiles every one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    task: str
    flow: str
    tags: tuple[str, ...] = ()


EXAMPLES: tuple[Example, ...] = (
    Example(
        "Answer a grade-school math word problem with a number.",
        """workflow solve_math(problem: text) -> answer: number
  worked = answer for problem
  answer = extract number from worked.answer
end
""",
        ("math",),
    ),
    Example(
        "Solve a math problem by sampling three solutions and taking the majority answer.",
        """workflow vote_math(problem: text) -> answer: number
  drafts = generate from "Solve step by step. End with 'Answer: <number>'.\\n{problem}" with samples 3, temperature 0.7
  numbers = for each item in drafts: extract number from item
  answer = vote numbers
end
""",
        ("math", "ensemble"),
    ),
    Example(
        "Compute the answer to a math problem with a program and check it against a direct solution.",
        """workflow cross_check(problem: text) -> answer: number
  direct = answer for problem
  claimed = extract number from direct.answer
  computed = program for problem
  answer = vote [claimed, computed.value]
end
""",
        ("math", "code"),
    ),
    Example(
        "Write a Python function for a programming problem and make it pass the given tests.",
        """workflow solve_code(problem: text, entry_point: text, tests: text) -> solution: code
  draft = write code for problem with entry_point entry_point
  report = test draft against tests
  solution = revise draft using report.feedback for problem
end
""",
        ("code",),
    ),
    Example(
        "Answer a factual question in one short sentence.",
        """workflow short_answer(question: text) -> reply: text
  draft = generate from "Answer briefly and factually.\\n\\nQuestion: {question}"
  reply = format draft for question
end
""",
        ("qa",),
    ),
    Example(
        "Answer a question, have the answer reviewed, and revise it with the review's feedback.",
        """workflow reviewed_answer(question: text) -> reply: text
  draft = generate from "Answer the question.\\n\\n{question}"
  check = review draft for question
  reply = revise draft using check.feedback for question
end
""",
        ("qa", "review"),
    ),
    Example(
        "Extract the names, dates and amounts mentioned in a document as JSON.",
        """workflow extract_fields(document: text) -> fields: json
  reply = generate from "List the names, dates and amounts in this document as a JSON object with the keys names, dates and amounts.\\n\\n{document}"
  fields = extract json from reply
end
""",
        ("extraction",),
    ),
    Example(
        "Summarise each of several documents, then combine the summaries into one.",
        """workflow summarise_all(documents: list of text) -> summary: text
  parts = for each item in documents: generate from "Summarise in two sentences:\\n{item}"
  summary = generate from "Combine these summaries into one paragraph:\\n{parts}"
end
""",
        ("agents", "map"),
    ),
    Example(
        "Plan the steps of a task, carry out the plan, and report the result.",
        """workflow plan_and_do(task: text) -> report: text
  plan = generate from "Write a numbered plan of at most 4 steps for this task.\\n\\n{task}"
  work = generate from "Carry out this plan and show the result of each step.\\n\\nTask: {task}\\n\\nPlan:\\n{plan}"
  report = format work for task
end
""",
        ("agents",),
    ),
    Example(
        "Write a script for a task, run it in the sandbox and return what it printed.",
        """workflow script_output(task: text) -> output: text
  script = write code for "Write a complete Python script that prints the result: {task}"
  result = run script
  output = result.stdout
end
""",
        ("code", "agents"),
    ),
)
