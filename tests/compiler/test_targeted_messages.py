"""The issue-21 mistakes, checked against the real operator registry (the goldens use the
compiler tests' own small operators): each gets one targeted diagnostic and nothing after it."""

from __future__ import annotations

import pytest

from treadle.compiler import check_source

CASES = [
    (
        "workflow f(problem: text, tests: text) -> draft: code\n"
        "  draft = write code for problem\n"
        "  r = test draft against tests\n"
        "  draft = revise draft usin r.feedback\n"
        "end\n",
        "E202",
        "did you mean `using`?",
    ),
    (
        "workflow f(d: text) -> n: number\n  n = extract numbr from d\nend\n",
        "E201",
        "did you mean `extract number`?",
    ),
    (
        "workflow f(a: text) -> b: text\n  b = generate from a with temperature=0.7\nend\n",
        "E001",
        "write `with temperature 0.7`",
    ),
]


@pytest.mark.parametrize(("text", "code", "hint"), CASES)
def test_one_targeted_diagnostic(text: str, code: str, hint: str) -> None:
    diags = check_source(text)
    assert [(d.code, d.hint) for d in diags] == [(code, hint)]
