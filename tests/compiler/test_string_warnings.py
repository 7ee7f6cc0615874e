"""W803 and W804 speak only of strings whose text is not what it looks like."""

from __future__ import annotations

import pytest
from flow_ops import OPS

from treadle.compiler import check_source


def codes(prompt: str) -> list[str]:
    source = f'workflow f(q: text) -> a: text\n  a = generate from "{prompt}"\nend\n'
    return [d.code for d in check_source(source, operators=OPS) if d.code in ("W803", "W804")]


@pytest.mark.parametrize(
    "prompt",
    [
        "Answer {q}",
        "Literal {{q.0}} braces",
        'JSON {\\"a\\": {\\"b\\": 1} } for {q}',
        'JSON {{\\"a\\": {{\\"b\\": 1}}}} for {q}',
        "a set {1, 2} and {{}}",
        "{ q }",
    ],
)
def test_strings_that_read_as_they_look_get_no_warning(prompt: str) -> None:
    assert codes(prompt) == []


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Item {q.0}", ["W803"]),
        ("Next {q + 1}", ["W803"]),
        ("Index {q[0]}", ["W803"]),
        ('JSON {\\"a\\": {\\"b\\": 1}} for {q}', ["W804"]),
        ('JSON {{\\"a\\": 1}}}} for {q}', []),  # its raw braces do not pair: no claim made
    ],
)
def test_strings_whose_braces_mislead_are_warned_about(prompt: str, expected: list[str]) -> None:
    assert codes(prompt) == expected
