"""The CLI's rough edges a newcomer hit (issue 21 §4), each reproduced as they met it: outputs
into folders that do not exist yet, folders given to check and fmt, a corpus with nothing
recurring, drawings of workflows sharing an input name, and what `trace show` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_runner import treadle

from treadle.compiler import compile_source
from treadle.compiler.render_graph import to_dot
from treadle.errors import EXIT_FAILED, EXIT_OK

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "examples" / "core" / "draft_check_loop.core"

GOOD = """workflow solve(problem: text) -> answer: number
  draft = generate from "Solve: {problem}"
  answer = extract number from draft
end
"""

CALLS = """workflow outer(question: text) -> reply: text
  first = inner(question)
  reply = generate from "Again: {first}"
end

workflow inner(question: text) -> answer: text
  answer = generate from question
end
"""


def test_outputs_go_into_folders_made_for_them(tmp_path: Path) -> None:
    ir_json = tmp_path / "missing" / "dir" / "x.json"
    res = treadle(
        "compile", str(ROOT / "examples" / "answer.flow"), "-o", str(ir_json), cwd=tmp_path
    )
    assert res.returncode == EXIT_OK, res.stderr
    assert json.loads(ir_json.read_text())["entry"] == "answer"

    flow = tmp_path / "missing" / "core" / "x.flow"
    res = treadle("import", "core", str(CORE), "-o", str(flow), cwd=tmp_path)
    assert res.returncode == EXIT_OK, res.stderr
    assert compile_source(flow.read_text()).entry == "draft_check_loop"

    # the generation finished: its work must reach the file, not a traceback
    chosen = tmp_path / "missing" / "gen" / "g.flow"
    spec = "scripted:" + json.dumps([GOOD])
    res = treadle(
        "generate", "Solve a math problem", "--model", spec, "-o", str(chosen), cwd=tmp_path
    )
    assert res.returncode == EXIT_OK, res.stderr
    assert chosen.read_text() == GOOD and f"# wrote {chosen}" in res.stderr


def test_check_and_fmt_take_folders_recursively(tmp_path: Path) -> None:
    corpus = tmp_path / "flows"
    (corpus / "deep" / "er").mkdir(parents=True)
    (corpus / "a.flow").write_text(GOOD)
    (corpus / "deep" / "er" / "bad.flow").write_text(
        "workflow f(q: text) -> a: text\n  a = genrate from q\nend\n"
    )
    (corpus / "deep" / "notes.txt").write_text("not a flow")
    res = treadle("check", str(corpus), cwd=tmp_path)
    assert res.returncode == EXIT_FAILED, res.stderr
    assert "bad.flow:2:7: error[E201]" in res.stdout and "2 files" in res.stderr

    (corpus / "deep" / "er" / "bad.flow").write_text("workflow f(q:text)->a:text\n  a=q\nend\n")
    res = treadle("fmt", "--check", str(corpus), cwd=tmp_path)
    assert (
        res.returncode == EXIT_FAILED
        and res.stdout == f"would reformat {corpus}/deep/er/bad.flow\n"
    )
    assert treadle("fmt", str(corpus), cwd=tmp_path).returncode == EXIT_OK
    assert treadle("check", str(corpus), cwd=tmp_path).returncode == EXIT_OK


def test_mining_nothing_recurring_says_so_and_writes_nothing(tmp_path: Path) -> None:
    one = tmp_path / "one.flow"
    one.write_text(GOOD)
    lib = tmp_path / "lib.flow"
    res = treadle("library", "mine", str(one), "-o", str(lib), cwd=tmp_path)
    assert res.returncode == EXIT_FAILED, res.stderr
    assert "no recurring sub-graph found" in res.stderr and "E105" not in res.stderr
    assert not lib.exists()


def test_dot_keeps_inputs_of_the_same_name_apart() -> None:
    dot = to_dot(compile_source(CALLS))
    inputs = re.findall(r'^\s*("[^"]*") \[shape=ellipse, label="question"\];$', dot, re.M)
    assert len(inputs) == 2 and len(set(inputs)) == 2, dot  # one node per workflow's input
    for node in inputs:  # each read by its own workflow's step
        assert sum(1 for line in dot.splitlines() if line.strip().startswith(f"{node} ->")) == 1


def test_trace_show_names_the_callee_and_prints_values_as_json(tmp_path: Path) -> None:
    (tmp_path / "calls.flow").write_text(CALLS)
    trace = tmp_path / "t.jsonl"
    res = treadle(
        "run", "calls.flow", "-i", "question=hi", "--model", 'scripted:"ok"',
        "--trace", str(trace), cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == EXIT_OK, res.stderr
    shown = treadle("trace", "show", str(trace), "--values", cwd=tmp_path)
    assert shown.returncode == EXIT_OK, shown.stderr
    assert "first (call inner)" in shown.stdout
    assert '→ {"reply": "ok"}' in shown.stdout  # the workflow's outputs, as JSON
    assert '→ "ok"' in shown.stdout and "{'" not in shown.stdout
