"""Comments and the blank lines between them survive formatting.

Property: a file laid out canonically (comment blocks separated by one blank line, before
workflows, statements, arms, `end`, `until` and the end of the file) formats to itself, and the
same file with its blank lines multiplied and its indentation scrambled formats to it too, so
formatting keeps the layout and is idempotent.
"""

from __future__ import annotations

from flow_ops import OPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.compiler import compile_source
from treadle.compiler.formatter import format_source
from treadle.compiler.parsing import parse

comment = st.sampled_from(["#", "# note", "## twice", "# end", '# "quoted" # and more', "#x"])
block = st.lists(comment, min_size=1, max_size=3)
#: comment blocks; between two of them one blank line
blocks = st.lists(block, max_size=3)


def _blocks(found: list[list[str]], pad: str) -> list[str]:
    lines: list[str] = []
    for i, b in enumerate(found):
        if i:
            lines.append("")
        lines += [pad + c for c in b]
    return lines


@st.composite
def lead(draw: st.DrawFn, pad: str) -> list[str]:
    """Comments above a statement or workflow: blocks, then maybe a blank line."""
    lines = _blocks(draw(blocks), pad)
    if lines and draw(st.booleans()):
        lines.append("")
    return lines


@st.composite
def statements(draw: st.DrawFn, depth: int, names: list[str]) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        head = lead(pad)
        before = draw(head)
        if i and draw(st.booleans()):  # a blank line before a statement (not the first)
            lines.append("")
        lines += before
        kind = draw(st.sampled_from(["step", "step", "if", "repeat"] if depth < 3 else ["step"]))
        trail = draw(st.none() | comment)
        end = f"  {trail}" if trail else ""
        if kind == "step":
            lines.append(f"{pad}{names[0]} = generate from q{end}")
        elif kind == "if":
            lines.append(f"{pad}if q == q then{end}")
            lines += draw(statements(depth + 1, names))
            lines += _blocks(draw(blocks), pad + "  ")
            if draw(st.booleans()):
                lines.append(f"{pad}else")
                lines += draw(statements(depth + 1, names))
                lines += _blocks(draw(blocks), pad + "  ")
            lines.append(f"{pad}end")
        else:
            lines.append(f"{pad}repeat up to 2 times{end}")
            lines += draw(statements(depth + 1, names))
            lines += _blocks(draw(blocks), pad + "  ")
            lines.append(f"{pad}until q == q")
    return lines


@st.composite
def files(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        if i:
            lines.append("")
        lines += draw(lead(""))
        lines.append(f"workflow w{i}(q: text) -> a: text")
        lines += draw(statements(1, ["a"]))
        lines += _blocks(draw(blocks), "  ")
        lines.append("end")
    tail = _blocks(draw(blocks), "")
    if tail:
        lines += ["", *tail]
    return "\n".join(lines) + "\n"


def scramble(text: str, blanks: list[int], indents: list[int]) -> str:
    """The same program with every blank line repeated and every line indented anew."""
    out = []
    for i, line in enumerate(text.splitlines()):
        if not line:
            out += [" " * indents[i % len(indents)]] * blanks[i % len(blanks)]
        else:
            out.append(" " * indents[i % len(indents)] + line.strip())
    return "\n".join(out) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=files(),
    blanks=st.lists(st.integers(1, 3), min_size=1, max_size=5),
    indents=st.lists(st.integers(0, 5), min_size=1, max_size=5),
)
def test_formatting_keeps_comment_layouts(text: str, blanks: list[int], indents: list[int]) -> None:
    assert parse(text)[1] == []
    assert format_source(text) == text
    assert format_source(scramble(text, blanks, indents)) == text


CAPABILITIES_HEAD = """\
# A capability library: reusable workflows.

# Verify a number: the doc of the first workflow.
workflow verify(problem: text) -> answer: text
  answer = generate from problem
end

# A file header that is no workflow's doc.

workflow other(problem: text) -> answer: text
  answer = generate from problem
end
"""


def test_a_header_comment_stays_apart_from_a_doc_comment() -> None:
    assert format_source(CAPABILITIES_HEAD) == CAPABILITIES_HEAD
    wf = parse(CAPABILITIES_HEAD)[0].workflows[0]
    assert wf.comments == ("# A capability library: reusable workflows.", "", wf.comments[-1])
    program = compile_source(CAPABILITIES_HEAD, operators=OPS)
    docs = {w.name: w.doc for w in program.workflows.values()}
    assert docs == {"verify": "Verify a number: the doc of the first workflow.", "other": None}


def test_many_blank_lines_become_one() -> None:
    text = "# a\n\n\n\n# b\nworkflow f() -> a: text\n  # c\n\n\n  # d\n\n\n  a = f\nend\n"
    assert format_source(text) == (
        "# a\n\n# b\nworkflow f() -> a: text\n  # c\n\n  # d\n\n  a = f\nend\n"
    )
