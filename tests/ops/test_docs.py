"""The operator reference is generated from the registry; these keep it current and complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from treadle.stdlib_ops import docs, registry

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "operators.md"


def test_checked_in_reference_is_current() -> None:
    assert PAGE.read_text() == docs.render_markdown(), (
        "docs/operators.md is stale: regenerate it with "
        "`python -m treadle.stdlib_ops.docs > docs/operators.md`"
    )


def test_every_operator_is_documented_with_an_example() -> None:
    ops = registry.operators()
    page = PAGE.read_text()
    for name, op in ops.items():
        assert f"\n## {name}\n" in page
        assert docs.EXAMPLES.get(name), f"add an example for {name!r} to docs.EXAMPLES"
        assert op.summary.endswith("."), name
        for p in op.signature.params:
            assert p.description, f"{name}.{p.name} has no description"
        for o in op.signature.options:
            assert o.description, f"{name} option {o.name} has no description"
    # examples for operators that do not exist would be stale documentation
    assert set(docs.EXAMPLES) <= set(ops)


def test_usage_line_shows_subject_prepositions_options_and_output() -> None:
    ops = registry.operators()
    assert docs.usage(ops["review"]) == (
        "review <solution: text> [for <problem: text>] [given <context: text>] "
        "[with temperature 0.0, max_tokens 512, model none, seed none] "
        "-> Review {approved: boolean, feedback: text}"
    )
    assert docs.usage(ops["extract number"]) == "extract number from <text: text> -> number"
    assert docs.usage(ops["revise"]).startswith(
        "revise <solution: text> using <feedback: text> [for"
    )


def test_json_lists_every_operator_with_its_signature() -> None:
    data = json.loads(docs.render_json())
    names = [o["name"] for o in data["operators"]]
    assert names == sorted(registry.operators())
    validate = next(o for o in data["operators"] if o["name"] == "validate")
    assert [(p["name"], p["prep"], p["required"]) for p in validate["params"]] == [
        ("value", None, True),
        ("json_schema", "against", True),
    ]
    assert {o["name"]: o["default"] for o in validate["options"]} == {
        "parse": True,
        "max_errors": 10,
    }
    assert [f["name"] for f in validate["output_fields"]] == [
        "valid",
        "errors",
        "feedback",
        "value",
    ]
    assert [o["name"] for o in data["common_options"]] == ["timeout", "retries", "samples"]


def test_docs_module_runs_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from treadle.stdlib_ops import docs\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    docs.main(['markdown'])\n"
        "heavy = {'jsonschema', 'llama_cpp', 'docker', 'httpx', 'lark',\n"
        "         'treadle.runtime.scheduler'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    bad = subprocess.run(
        [sys.executable, "-m", "treadle.stdlib_ops.docs", "html"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "usage:" in bad.stderr


#: the values the documented example lines read, with the types a workflow would give them
_EXAMPLE_INPUTS = {
    "problem": "text",
    "hint": "text",
    "draft": "text",
    "drafts": "list of text",
    "numbers": "list of number",
    "attempts": "list of code",
    "solution": "code",
    "best": "text",
    "check": "text",
    "report": "json",
    "reply": "text",
    "schema": "json",
    "code": "code",
    "script": "code",
    "tests": "text",
    "entry_point": "text",
}


def test_documented_examples_compile() -> None:
    from treadle.compiler import check_source

    for name, lines in docs.EXAMPLES.items():
        for line in lines:
            bound = line.split("=", 1)[0].strip()
            inputs = ", ".join(f"{n}: {t}" for n, t in _EXAMPLE_INPUTS.items() if n != bound)
            source = (
                f"workflow example({inputs}) -> result: json\n  {line}\n  result = {bound}\nend\n"
            )
            errors = [d.message for d in check_source(source) if d.is_error]
            assert errors == [], f"{name}: {line}"
