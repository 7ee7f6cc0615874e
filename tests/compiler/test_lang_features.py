"""The language's data features end to end: each parses, checks, formats back to itself and
runs (on a scripted model) with the meaning docs/language.md gives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cli_runner import treadle

from treadle.api import Flow
from treadle.compiler import check_source
from treadle.compiler.formatter import format_source
from treadle.runtime.models.scripted import ScriptedBackend


def run(source: str, inputs: dict[str, Any], replies: Any = ("",)) -> dict[str, Any]:
    """Check the source is clean and formatted, then run it on scripted replies."""
    assert [d.render() for d in check_source(source)] == []
    assert format_source(source) == source
    model = ScriptedBackend(list(replies) if not isinstance(replies, dict) else replies)
    return Flow.from_source(source).run_sync(inputs, model=model, cache=False).outputs


# ---------------------------------------------------------------- null


def test_null_tests_and_the_default() -> None:
    source = """\
workflow f(q: text) -> found: boolean, missing: boolean, n: number
  m = extract number from q
  n = m or else 0
  found = m is not null
  missing = m is null
end
"""
    assert run(source, {"q": "about 42 apples"}) == {"found": True, "missing": False, "n": 42}
    assert run(source, {"q": "no digits"}) == {"found": False, "missing": True, "n": 0}


def test_or_else_is_lazy_and_keeps_a_present_value() -> None:
    source = """\
workflow f() -> a: number, b: number
  a = 1 or else 1 / 0
  b = null or else 2
end
"""
    assert run(source, {}) == {"a": 1, "b": 2}


# ---------------------------------------------------------------- JSON literals


def test_json_objects_and_arrays_are_data_with_names_in_them() -> None:
    source = """\
workflow f(q: text) -> out: json
  schema = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "number"}},
    "required": ["answer"]
  }
  out = {"schema": schema, "q": q, "none": null, "items": [1, 2.5, true, "{q}!"]}
end
"""
    out = run(source, {"q": "hi"})["out"]
    assert out["schema"]["required"] == ["answer"]
    assert out["schema"]["properties"]["score"] == {"type": "number"}
    assert {k: out[k] for k in ("q", "none", "items")} == {
        "q": "hi",
        "none": None,
        "items": [1, 2.5, True, "hi!"],
    }


def test_a_schema_literal_validates_a_reply() -> None:
    source = """\
workflow f(q: text) -> ok: boolean
  reply = generate from q
  schema = {"type": "object", "required": ["answer"]}
  v = validate reply against schema
  ok = v.valid
end
"""
    assert run(source, {"q": "hi"}, ['{"answer": 4}']) == {"ok": True}
    assert run(source, {"q": "hi"}, ['{"other": 4}']) == {"ok": False}


# ---------------------------------------------------------------- input defaults


DEFAULTS = """\
workflow f(q: text, k: number = 3, style: text = "short", tags: list of text = []) -> a: text
  a = "{q} {k} {style} {tags}"
end
"""


def test_a_run_may_leave_out_inputs_with_defaults() -> None:
    assert run(DEFAULTS, {"q": "x"}) == {"a": "x 3 short []"}
    assert run(DEFAULTS, {"q": "x", "k": 5, "tags": ["t"]}) == {"a": 'x 5 short ["t"]'}


def test_an_input_without_a_default_is_still_required() -> None:
    import pytest

    from treadle.errors import InputError

    with pytest.raises(InputError, match=r"missing input q.*k: number = 3"):
        Flow.from_source(DEFAULTS).check_inputs({"k": 1})


def test_a_call_may_leave_out_inputs_with_defaults() -> None:
    source = (
        DEFAULTS.replace("workflow f(", "workflow g(")
        + "\n"
        + (
            """\
workflow main(q: text) -> a: text, b: text
  a = g q
  b = g q with k 9
end
"""
        )
    )
    flow = Flow.from_source(source)
    model = ScriptedBackend([""])
    out = flow.run_sync({"q": "y"}, workflow="main", model=model, cache=False).outputs
    assert out == {"a": "y 3 short []", "b": "y 9 short []"}


def test_the_cli_runs_with_fewer_inputs(tmp_path: Path) -> None:
    (tmp_path / "d.flow").write_text(DEFAULTS)
    done = treadle("run", "d.flow", "-i", "q=z", "--model", 'scripted:"r"', cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "z 3 short []" in done.stdout


# ---------------------------------------------------------------- multi-line strings


BLOCK = '''\
workflow f(q: text) -> a: text
  a = generate from """
    You are a careful solver.
      This line keeps two spaces.
    # a hash is text here; "quotes" and {{braces}} too

    Question: {q}
    """ with temperature 0.5  # a comment after the string
end
'''


def test_a_multi_line_string_loses_the_closing_quotes_indentation() -> None:
    prompt = (
        "You are a careful solver.\n  This line keeps two spaces.\n"
        '# a hash is text here; "quotes" and {braces} too\n\nQuestion: why'
    )
    assert run(BLOCK, {"q": "why"}, {prompt: "ok"}) == {"a": "ok"}


def test_block_strings_dedent_by_their_least_indented_line() -> None:
    from treadle.compiler import parse

    text = 'workflow f() -> a: text\n  a = """\n      x\n    y\n  z"""\nend\n'
    module, _ = parse(text)
    step = module.workflows[0].body[0]
    assert step.value.terms[0].parts == ("    x\n  y\nz",)  # type: ignore[union-attr]
    one, _ = parse('workflow f() -> a: text\n  a = """say "hi" \\""""\nend\n')
    assert one.workflows[0].body[0].value.terms[0].parts == ('say "hi" "',)  # type: ignore[union-attr]
    empty, diags = parse('workflow f() -> a: text\n  a = ""\nend\n')
    assert diags == [] and empty.workflows[0].body[0].value.terms[0].parts == ()  # type: ignore[union-attr]


# ---------------------------------------------------------------- prompt files


def test_a_prompt_file_is_a_template_read_next_to_the_flow(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "solve.txt").write_text("Solve:\n{q}\nUse \\frac{1}{2}.\n")
    path = tmp_path / "f.flow"
    path.write_text(
        'workflow f(q: text) -> a: text\n  a = generate from file "prompts/solve.txt"\nend\n'
    )
    model = ScriptedBackend({"Solve:\nwhy\nUse \\frac{1}{2}.\n": "ok"})
    assert Flow.load(path).run_sync({"q": "why"}, model=model, cache=False).outputs == {"a": "ok"}


# ---------------------------------------------------------------- string tests


def test_contains_starts_with_and_ends_with() -> None:
    source = """\
workflow f(reply: text, tags: list of text) -> a: boolean, b: boolean, c: boolean, d: boolean
  a = reply contains "DONE"
  b = reply starts with "Answer:" and reply ends with "."
  c = tags contains "urgent"
  d = not reply contains "error"
end
"""
    out = run(source, {"reply": "Answer: 4. DONE.", "tags": ["x", "urgent"]})
    assert out == {"a": True, "b": True, "c": True, "d": True}
    out = run(source, {"reply": "error", "tags": []})
    assert out == {"a": False, "b": False, "c": False, "d": False}
