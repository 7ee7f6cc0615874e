"""Issue 21 §4: the per-step table keeps apart steps that bind the same name, and a resumed
evaluation's progress shows the whole evaluation's score and tokens, not the new rows' alone."""

from __future__ import annotations

import io
import re
from pathlib import Path

from treadle.eval.evaluate import evaluate
from treadle.eval.options import RunConfig
from treadle.eval.progress import PlainProgress
from treadle.runtime.models.scripted import ScriptedBackend

REBINDS = """workflow f(q: text) -> draft: text
  draft = generate from "first {q}"
  repeat up to 2 times
    draft = generate from "again {draft}"
  until draft != ""
  draft = generate from "last {draft}"
end
"""
ANSWER = """workflow f(q: text) -> a: text
  a = generate from q
end
"""


async def test_steps_binding_the_same_name_are_kept_apart(tmp_path: Path) -> None:
    (tmp_path / "f.flow").write_text(REBINDS)
    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "a", "target": "x"}\n{"q": "b", "target": "x"}\n')
    model = ScriptedBackend({"first": "one two", "again": "three", "last": "four five six"})
    report = await evaluate(
        tmp_path / "f.flow", data, run=RunConfig(model=model, cache=False, traces=False),
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    steps = report.steps
    assert set(steps) == {"draft", "repeat1", "repeat1 turn 1", "repeat1.draft", "draft#2"}
    # each keeps its own calls: the scripted model counts a reply's words as its tokens
    assert [steps[k].tokens_out for k in ("draft", "repeat1.draft", "draft#2")] == [4, 2, 6]
    assert all(steps[k].runs == 2 for k in steps)


def _last_status(text: str) -> tuple[str, int]:
    line = [x for x in text.splitlines() if x.startswith("eval ")][-1]
    m = re.search(r"score (\S+) .* tokens (\d+)", line)
    assert m, line
    return m.group(1), int(m.group(2))


async def test_a_resumed_progress_line_counts_the_resumed_rows(tmp_path: Path) -> None:
    (tmp_path / "f.flow").write_text(ANSWER)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"q": "q{i}", "target": "yes"}}\n' for i in range(4)))
    model = ScriptedBackend(lambda m: "yes" if m[-1].content in ("q0", "q1") else "no")
    run = RunConfig(model=model, cache=False, traces=False)
    full_out = io.StringIO()
    await evaluate(
        tmp_path / "f.flow", data, run=run, results=tmp_path / "full.jsonl",
        display=PlainProgress(every=1, stream=full_out),
    )  # fmt: skip
    # the first two rows (both right) are in the file; the resume runs the two wrong ones
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "part.jsonl").write_text("".join(lines[:3]))
    out = io.StringIO()
    await evaluate(
        tmp_path / "f.flow", data, run=run, resume=tmp_path / "part.jsonl",
        display=PlainProgress(every=1, stream=out),
    )  # fmt: skip
    assert "resuming: 2 of 4 row-epochs" in out.getvalue()
    assert _last_status(out.getvalue()) == _last_status(full_out.getvalue()) == ("0.500", 8)
