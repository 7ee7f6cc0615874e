"""Every `.flow` snippet of README.md and docs/*.md is a tested example: it compiles without a
diagnostic (a `use` resolves against examples/), and the README's HumanEval shape returns code
that was tested: it revises only a try that failed (issue 21 §4).

A snippet is a fenced block without a language tag (or tagged `flow`) holding a `workflow`
line; a syntax schema is tagged `text`, a shell transcript starts with `$`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from treadle.compiler import check_source
from treadle.flow import Flow
from treadle.runtime.models.scripted import ScriptedBackend

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.S | re.M)


def snippets() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            tag, body = m.group(1), m.group(2)
            if tag not in ("", "flow") or not re.search(r"^\s*workflow \w", body, re.M):
                continue
            if body.lstrip().startswith("$"):
                continue
            line = text.count("\n", 0, m.start()) + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", body))
    return found


SNIPPETS = snippets()


def test_the_snippets_are_found() -> None:
    where = {w.split(":")[0] for w, _ in SNIPPETS}
    assert {"README.md", "docs/language.md"} <= where and len(SNIPPETS) >= 3


@pytest.mark.parametrize(("where", "body"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_every_snippet_compiles_cleanly(where: str, body: str) -> None:
    diags = check_source(body, where, base_dir=ROOT / "examples")
    assert diags == [], "\n\n".join(d.render() for d in diags)


PASSING = "```python\ndef add(a, b):\n    return a + b\n```"
FAILING = "```python\ndef add(a, b):\n    return a - b\n```"
TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


@pytest.mark.parametrize(
    ("replies", "revisions"),
    [([PASSING], 0), ([FAILING, PASSING], 1)],
    ids=["first try passes", "one revision"],
)
def test_the_humaneval_shape_returns_the_code_it_tested(replies: list[str], revisions: int) -> None:
    [body] = [b for w, b in SNIPPETS if w.startswith("README") and "workflow solve_code(" in b]
    model = ScriptedBackend(replies)
    inputs = {"problem": "Add two numbers.", "entry_point": "add", "tests": TESTS}
    out = Flow.from_source(body).run_sync(inputs, model=model, cache=False, sandbox="process")
    prompts = [c.prompt for c in model.calls]
    assert len(prompts) == 1 + revisions  # write code, then a revision per failed test only
    assert "return a + b" in out.outputs["solution"]
