"""Issue 21 §4: a candidate that leaves an input unread (W802) loses to one that reads it even
when its cost bound is lower; an empty task is the user's input error, before any model call."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import treadle

from treadle.errors import EXIT_INPUT, InputError
from treadle.generation import generate
from treadle.runtime.models.scripted import ScriptedBackend

# cheap (one model call) but it never reads `context`
IGNORES = """workflow answer(question: text, context: text) -> reply: text
  reply = generate from "Answer: {question}"
end
"""
# dearer (two calls) and it reads both inputs
READS = """workflow answer(question: text, context: text) -> reply: text
  notes = generate from "Read: {context}"
  reply = generate from "Answer {question} from {notes}"
end
"""


async def test_warnings_count_before_cost() -> None:
    model = ScriptedBackend([IGNORES, READS])
    result = await generate("Answer a question from a context", model=model, n=2)
    cheap, dear = result.candidates
    assert cheap.status == dear.status == "compiled"
    assert [d["code"] for d in cheap.diagnostics] == ["W802"] and cheap.warnings == 1
    assert dear.warnings == 0
    assert cheap.cost and dear.cost and cheap.cost.bound() < dear.cost.bound()
    assert result.chosen == 1 and result.flow == READS


@pytest.mark.parametrize("task", ["", "   \n"])
async def test_an_empty_task_is_an_input_error(task: str) -> None:
    model = ScriptedBackend([READS])
    with pytest.raises(InputError, match="The task is empty"):
        await generate(task, model=model)
    assert model.calls == []


def test_the_cli_refuses_an_empty_task(tmp_path: Path) -> None:
    res = treadle("generate", "", "--model", 'scripted:["x"]', cwd=tmp_path)
    assert res.returncode == EXIT_INPUT and "The task is empty" in res.stderr
    assert "Traceback" not in res.stderr
