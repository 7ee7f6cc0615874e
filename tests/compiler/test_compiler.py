"""The compiler end to end: grammar invariants, lowering shapes, imports, recovery, examples."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flow_ops import OPS

from treadle.compiler import CompileError, check_source, compile_file, compile_source, parse
from treadle.compiler import ast as A
from treadle.compiler.render_graph import to_dot, to_mermaid
from treadle.grammar import grammar_text
from treadle.runtime import ir
from treadle.stdlib_ops.registry import PREPOSITIONS

ROOT = Path(__file__).resolve().parents[2]
MY_EXAMPLES = [
    "answer.flow",
    "solve_math.flow",
    "solve_code.flow",
    "review_loop.flow",
    "map_reduce.flow",
    "uses_library.flow",
    "lib/checks.flow",
]


def codes(text: str) -> list[str]:
    return [d.code for d in check_source(text, operators=OPS)]


def build(text: str) -> ir.Program:
    return compile_source(text, "t.flow", operators=OPS)


def nodes(g: ir.Graph) -> dict[str, ir.Node]:
    return {n.id: n for n in g.nodes}


# ---------------------------------------------------------------- grammar


def test_grammar_prepositions_match_the_registry() -> None:
    rule = re.search(r"!prep:(.*?)\n\n", grammar_text(), re.S)
    assert rule is not None
    assert set(re.findall(r'"(\w+)"', rule.group(1))) == set(PREPOSITIONS)


def test_grammar_has_no_lalr_conflicts() -> None:
    import interegular  # noqa: F401 - Lark's strict mode needs it; a dev dependency, never skipped
    from lark import Lark

    Lark(grammar_text(), parser="lalr", lexer="contextual", strict=True)


def test_llguidance_accepts_the_grammar() -> None:
    import llguidance

    grammar = llguidance.grammar_from("lark", grammar_text())
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""


def test_llguidance_rejects_what_it_should() -> None:
    """The acceptance test can fail: a lookaround (outside the subset) is refused."""
    import llguidance

    bad = grammar_text().replace(r"NAME: /[A-Za-z_]", r"NAME: /(?=[a-z])[A-Za-z_]")
    assert llguidance.LLMatcher.validate_grammar(llguidance.grammar_from("lark", bad)) != ""


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("name", MY_EXAMPLES)
def test_examples_compile_against_the_stdlib(name: str) -> None:
    program = compile_file(ROOT / "examples" / name)
    again = ir.Program.model_validate_json(program.model_dump_json())
    assert again == program
    assert again.content_hash() == program.content_hash()
    assert to_mermaid(program).startswith("flowchart TD")
    assert to_dot(program).startswith("digraph")


def _constructs(node: object, found: set[str]) -> None:
    """Every construct a parsed tree uses, by the name the language reference gives it."""
    if isinstance(node, tuple | list):
        for item in node:
            _constructs(item, found)
        return
    if not isinstance(node, A.Node):
        return
    kind = type(node).__name__
    if isinstance(node, A.If):
        found.add("if")
        found.update("else" if a.cond is None else "else if" for a in node.arms[1:])
    elif isinstance(node, A.Repeat):
        found.add("repeat up to" if node.bound is not None else "repeat")
    elif isinstance(node, A.ForEach):
        found.add("for each:" if node.command is not None else "for each block")
    elif isinstance(node, A.BinaryOp | A.UnaryOp):
        found.add(node.op)
    elif isinstance(node, A.Num):
        found.add(f"{type(node.value).__name__} literal")
    elif isinstance(node, A.Command):
        found.update(["options"] * bool(node.options) + ["prepositions"] * bool(node.args))
    elif isinstance(node, A.Use | A.Return | A.Str | A.Interp | A.ListLit | A.Bool):
        found.add(kind)
    if getattr(node, "comments", ()) or getattr(node, "trailing", None):
        found.add("comment")
    for value in vars(node).values():
        _constructs(value, found)


def test_examples_cover_every_construct() -> None:
    found: set[str] = set()
    for name in MY_EXAMPLES:
        module, diags = parse((ROOT / "examples" / name).read_text(), name)
        assert diags == [], name
        _constructs(module, found)
    wanted = {
        "Use", "if", "else if", "else", "repeat up to", "Return", "for each:", "for each block",
        "comment", "Str", "Interp", "ListLit", "and", "or", "not", "==", ">", "int literal",
        "float literal", "options", "prepositions",
    }  # fmt: skip
    assert wanted - found == set()


def test_the_construct_walk_can_fail() -> None:
    """The walk above sees what a file has, not what it wishes for."""
    found: set[str] = set()
    module, _ = parse("workflow f(q: text) -> a: text\n  a = generate from q\nend\n")
    _constructs(module, found)
    assert found == {"prepositions"}


# ---------------------------------------------------------------- lowering


SOLVE = """
workflow solve(problem: text) -> answer: number
  drafts = for each i in [1, 2, 3]: generate from "Solve {problem}" with temperature 0.7
  numbers = for each d in drafts: extract number from d
  voted = vote numbers
  r = review problem
  if r.approved and voted is not 0 then
    answer = voted
  else
    answer = 1
  end
end
"""


def test_lowering_ids_maps_and_branches() -> None:
    p = build(SOLVE)
    g = p.workflows["solve"].graph
    ns = nodes(g)
    assert list(ns) == ["solve.drafts", "solve.numbers", "solve.voted", "solve.r", "solve.if1"]
    m = ns["solve.numbers"]
    assert isinstance(m, ir.Map) and m.var == "d" and m.body.params == ("d",)
    assert m.over == ir.Ref(name="solve.drafts")
    (inner,) = m.body.nodes
    assert (
        isinstance(inner, ir.Step)
        and inner.op == "extract number"
        and inner.id == "solve.numbers.each"
    )
    assert m.body.outputs == {"$item": ir.Ref(name="solve.numbers.each")}
    gen = nodes(ns["solve.drafts"].body)["solve.drafts.each"]  # type: ignore[union-attr]
    assert isinstance(gen, ir.Step)
    assert gen.args["prompt"] == ir.Template(parts=("Solve ", ir.Ref(name="problem")))
    assert gen.options == {"temperature": ir.Const(value=0.7)}
    b = ns["solve.if1"]
    assert isinstance(b, ir.Branch) and b.outputs == ("answer",)
    assert b.arms[1].when is None
    assert b.arms[0].body.outputs == {"answer": ir.Ref(name="solve.voted")}
    assert b.arms[0].when == ir.Binary(
        op="and",
        left=ir.Ref(name="solve.r", path=("approved",)),
        right=ir.Binary(op="!=", left=ir.Ref(name="solve.voted"), right=ir.Const(value=0)),
    )
    assert g.outputs == {"answer": ir.Ref(name="solve.if1", path=("answer",))}


LOOP = """
workflow fix(task: text) -> text: text
  text = generate from task
  repeat up to 3 times
    r = review text for task
    text = generate from "Fix: {text}\\n{r.feedback}" with timeout 30, retries 2
  until r.approved
end
"""


def test_lowering_loop_carries_names() -> None:
    p = build(LOOP)
    loop = nodes(p.workflows["fix"].graph)["fix.repeat1"]
    assert isinstance(loop, ir.Loop) and loop.max_iters == 3
    assert loop.init == {"text": ir.Ref(name="fix.text")}
    assert loop.body.params == ("text",)
    assert set(loop.body.outputs) == {"r", "text", "$until"}
    assert loop.body.outputs["$until"] == ir.Ref(name="fix.repeat1.r", path=("approved",))
    step = nodes(loop.body)["fix.repeat1.text"]
    assert isinstance(step, ir.Step) and step.timeout_s == 30 and step.retries == 2
    assert step.options == {}
    assert p.workflows["fix"].graph.outputs == {"text": ir.Ref(name="fix.repeat1", path=("text",))}


def test_loop_param_that_would_shadow_an_input_is_renamed() -> None:
    p = build(
        "workflow f(t: text) -> t: text\n  repeat up to 2 times\n    t = generate from t\n"
        '  until t == "x"\nend\n'
    )
    loop = p.workflows["f"].graph.nodes[0]
    assert isinstance(loop, ir.Loop)
    assert loop.body.params == ("t@f.repeat1",)
    assert loop.init == {"t@f.repeat1": ir.Ref(name="t")}


def test_return_is_lowered_into_a_branch() -> None:
    p = build(
        """
workflow f(q: text) -> a: text
  r = review q
  if r.approved then
    a = q
    return
  end
  a = generate from q
end
"""
    )
    g = p.workflows["f"].graph
    b = g.nodes[-1]
    assert isinstance(b, ir.Branch) and len(b.arms) == 2 and b.outputs == ("a",)
    assert b.arms[0].body.outputs == {"a": ir.Ref(name="q")}
    (late,) = b.arms[1].body.nodes
    assert late.id == "f.if1.else.a"
    assert g.outputs == {"a": ir.Ref(name="f.if1", path=("a",))}


def test_return_value_binds_the_single_output() -> None:
    p = build("workflow f(q: text) -> a: text\n  return q\nend\n")
    assert p.workflows["f"].graph.outputs == {"a": ir.Ref(name="q")}


def test_workflow_calls_bind_inputs() -> None:
    p = build(
        """
workflow main(q: text, ctx: text) -> a: text, both: json
  x = helper q with extra ctx
  y = pair for q
  a = x
  both = y
end

workflow helper(question: text, extra: text) -> answer: text
  answer = generate from question given extra
end

workflow pair(q: text) -> left: text, right: text
  left = q
  right = q
end
"""
    )
    assert p.entry == "main"
    ns = nodes(p.workflows["main"].graph)
    call = ns["main.x"]
    assert isinstance(call, ir.Call) and call.workflow == "helper"
    assert call.args == {"question": ir.Ref(name="q"), "extra": ir.Ref(name="ctx")}
    assert p.workflows["main"].graph.outputs["a"] == ir.Ref(name="main.x", path=("answer",))
    assert p.workflows["main"].graph.outputs["both"] == ir.Ref(name="main.y")


def test_choice_words_become_constants() -> None:
    p = build("workflow f(xs: list of text) -> a: text\n  a = pick fast from xs\nend\n")
    step = p.workflows["f"].graph.nodes[0]
    assert isinstance(step, ir.Step) and step.args["mode"] == ir.Const(value="fast")


def test_use_namespaces_imported_workflows(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "m.flow").write_text(
        "workflow helper(q: text) -> a: text\n  a = generate from q\nend\n"
    )
    main = tmp_path / "main.flow"
    main.write_text(
        'use "lib/m.flow"\n\nworkflow helper2(q: text) -> a: text\n  a = helper q\nend\n'
    )
    p = compile_file(main, operators=OPS)
    assert set(p.workflows) == {"helper2", "lib/m.helper"}
    call = p.workflows["helper2"].graph.nodes[0]
    assert isinstance(call, ir.Call) and call.workflow == "lib/m.helper"
    assert p.workflows["lib/m.helper"].graph.nodes[0].id == "lib/m.helper.a"


def test_content_hash_ignores_spans_and_files() -> None:
    a = build(SOLVE)
    b = compile_source("\n\n" + SOLVE.replace("  ", "    "), "other.flow", operators=OPS)
    assert a != b
    assert a.content_hash() == b.content_hash()
    c = build(SOLVE.replace("0.7", "0.8"))
    assert c.content_hash() != a.content_hash()


# ---------------------------------------------------------------- checks


def test_every_error_of_a_file_is_reported() -> None:
    text = """
workflow f(q: text) -> a: text
  x = generate from
  if q = 1 then
    a = q
  end
  y = vote [q] with nope 1
  z = undefined_name
  a = generate from q
end
"""
    found = codes(text)
    assert found.count("E001") == 2
    assert "E205" in found and "E101" in found


def test_names_bound_on_every_arm_are_readable_after_if() -> None:
    ok = (
        "workflow f(c: boolean) -> a: text\n"
        '  if c then\n    a = "1"\n  else\n    a = "2"\n  end\nend\n'
    )
    assert codes(ok) == []
    bad = ok.replace('  else\n    a = "2"\n', "")
    assert codes(bad) == ["E601"]


def test_compile_error_carries_diagnostics() -> None:
    with pytest.raises(CompileError) as e:
        build("workflow f(q: text) -> a: text\n  a = nope q\nend\n")
    assert [d.code for d in e.value.diagnostics] == ["E201"]  # type: ignore[attr-defined]
    assert "E201" in e.value.message


def test_spans_are_exact() -> None:
    (d,) = check_source(
        "workflow f(q: text) -> a: text\n  a = generate from qq\nend\n", operators=OPS
    )
    assert (d.line, d.column, d.end_line, d.end_column) == (2, 21, 2, 23)
    assert d.hint == "did you mean `q`?"
    assert d.excerpt.splitlines()[1].endswith("^^")


def test_parse_keeps_comments() -> None:
    module, diags = parse(
        '# doc\nworkflow f() -> a: text  # head\n  # lead\n  a = "x"  # tail\nend\n'
    )
    assert diags == []
    (wf,) = module.workflows
    assert wf.comments == ("# doc",) and wf.trailing == "# head"
    assert wf.body[0].comments == ("# lead",) and wf.body[0].trailing == "# tail"


def test_samples_makes_a_list() -> None:
    p = build(
        "workflow f(q: text) -> a: json\n  d = generate from q with samples 3\n  a = vote d\nend\n"
    )
    step = p.workflows["f"].graph.nodes[0]
    assert isinstance(step, ir.Step) and step.samples == 3 and step.options == {}
    assert codes("workflow f(q: text) -> a: text\n  a = generate from q with samples 0\nend\n") == [
        "E206"
    ]


# ---------------------------------------------------------------- CLI


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from treadle.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_check_compile_fmt(tmp_path: Path) -> None:
    ok = _cli("check", *(str(ROOT / "examples" / n) for n in MY_EXAMPLES))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.flow"
    bad.write_text("workflow f(q: text) -> a: text\n  a = genrate from q\nend\n")
    r = _cli("check", str(bad), "--format", "json")
    assert r.returncode == 1
    (d,) = json.loads(r.stdout)
    assert d["code"] == "E201" and d["line"] == 2 and d["hint"] == "did you mean `generate`?"
    r = _cli("compile", str(ROOT / "examples" / "solve_code.flow"))
    assert r.returncode == 0 and ir.Program.model_validate_json(r.stdout).entry == "solve_code"
    for emit, head in (("mermaid", "flowchart TD"), ("dot", "digraph")):
        r = _cli("compile", str(ROOT / "examples" / "solve_code.flow"), "--emit", emit)
        assert r.returncode == 0 and r.stdout.startswith(head)
    assert _cli("compile", str(bad)).returncode == 1
    messy = tmp_path / "messy.flow"
    messy.write_text("workflow f(q:text)->a:text\n        a=generate  from q   # hi\nend")
    assert _cli("fmt", "--check", str(messy)).returncode == 1
    assert _cli("fmt", str(messy)).returncode == 0
    assert messy.read_text() == (
        "workflow f(q: text) -> a: text\n  a = generate from q  # hi\nend\n"
    )
    assert _cli("fmt", "--check", str(messy)).returncode == 0
    assert _cli("check", str(tmp_path / "missing.flow")).returncode == 2


def test_the_fast_commands_output_arrives_whole(tmp_path: Path) -> None:
    """check, compile and fmt end without interpreter teardown (`cli._hard_exit`): what they
    print or write must still arrive whole, beyond a pipe's buffer and a file's first block."""
    bad = tmp_path / "bad.flow"
    body = "".join(f"  a{i} = genrate from q\n" for i in range(1500))
    bad.write_text(f"workflow f(q: text) -> a: text\n{body}  a = q\nend\n")
    r = _cli("check", str(bad), "--format", "json")
    assert r.returncode == 1 and len(r.stdout) > 200_000
    assert [d["code"] for d in json.loads(r.stdout)].count("E201") == 1500
    big = tmp_path / "big.flow"
    steps = "".join(f"  a{i} = generate from q\n" for i in range(1500))
    big.write_text(f"workflow f(q: text) -> a: text\n{steps}  a = a1499\nend\n")
    out = tmp_path / "big.json"
    assert _cli("compile", str(big), "-o", str(out)).returncode == 0
    assert len(ir.Program.model_validate_json(out.read_text()).workflows["f"].graph.nodes) == 1500


def test_examples_are_formatted() -> None:
    files = sorted(str(p) for p in (ROOT / "examples").rglob("*.flow"))
    assert any("/lib/" in f for f in files)
    r = _cli("fmt", "--check", *files)
    assert r.returncode == 0, r.stdout
