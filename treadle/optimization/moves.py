"""Deterministic moves: changes the loop makes itself, without the optimizer model, each the
shape AFlow and its successors found to pay on some task family. Each is a rewrite of the
canonical text of the entry workflow; what it writes still goes through the same gate as a
model's proposal (compile, de-duplication, dry run, cost bound).

- `self_consistency`: the answering `generate` step sampled 5 times, then `vote`;
- `review`: a review → revise pass after it;
- `program_check`: a numeric answer cross-checked by a `program` (its value wins when it ran);
- `test_revise`: code tested against the row's tests and revised, up to 3 times.
`prune` (removing steps whose attribution is ≤ 0) goes through `attribute --prune` and lives in
the loop, since it needs evaluations.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from treadle.runtime.ir import Workflow

_STEP = re.compile(r"^(?P<pad>  )(?P<name>\w+) = (?P<op>[a-z]+(?: [a-z]+)?) (?P<rest>.*)$")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SAMPLES = 5


def _fresh(text: str, base: str) -> str:
    name, i = base, 2
    while re.search(rf"\b{re.escape(name)}\b", text):
        name, i = f"{base}{i}", i + 1
    return name


def _entry_lines(text: str, wf: Workflow) -> tuple[list[str], int, int] | None:
    """The text's lines and the entry workflow's body range [start, end)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith(f"workflow {wf.name}(")), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i] == "end"), None)
    return (lines, start + 1, end) if end is not None else None


def _answer_step(lines: list[str], lo: int, hi: int, wf: Workflow, op: str) -> int | None:
    """The top-level `op` step binding the first output, else the last top-level one."""
    first = wf.outputs[0].name if wf.outputs else None
    found = None
    for i in range(lo, hi):
        m = _STEP.match(lines[i])
        if m and m.group("op") == op:
            if m.group("name") == first:
                return i
            found = i
    return found


def _first_text_input(wf: Workflow) -> str | None:
    return next((f.name for f in wf.inputs if f.type == "text"), None)


def self_consistency(text: str, wf: Workflow) -> str | None:
    got = _entry_lines(text, wf)
    if got is None:
        return None
    lines, lo, hi = got
    i = _answer_step(lines, lo, hi, wf, "generate from")
    if i is None or "samples" in lines[i]:
        return None
    m = _STEP.match(lines[i])
    assert m is not None
    name = m.group("name")
    drafts = _fresh(text, f"{name}_drafts")
    rest = m.group("rest")
    opts = f"samples {SAMPLES}" + ("" if "temperature" in rest else ", temperature 0.7")
    bare = _STRING.sub('""', rest)  # a `with` inside a prompt is not the options clause
    rest = f"{rest}, {opts}" if " with " in f" {bare}" else f"{rest} with {opts}"
    lines[i : i + 1] = [f"  {drafts} = generate from {rest}", f"  {name} = vote {drafts}"]
    return "\n".join(lines) + "\n"


def review(text: str, wf: Workflow) -> str | None:
    got = _entry_lines(text, wf)
    problem = _first_text_input(wf)
    if got is None or problem is None:
        return None
    lines, lo, hi = got
    i = _answer_step(lines, lo, hi, wf, "generate from")
    if i is None or "samples" in lines[i]:
        return None  # a sampled step's value is a list: a review reads one text
    m = _STEP.match(lines[i])
    assert m is not None
    name = m.group("name")
    draft, verdict = _fresh(text, f"{name}_draft"), _fresh(text, f"{name}_review")
    lines[i : i + 1] = [
        f"  {draft} = generate from {m.group('rest')}",
        f"  {verdict} = review {draft} for {problem}",
        f"  {name} = revise {draft} using {verdict}.feedback for {problem}",
    ]
    return "\n".join(lines) + "\n"


def program_check(text: str, wf: Workflow) -> str | None:
    got = _entry_lines(text, wf)
    problem = _first_text_input(wf)
    numeric = [f.name for f in wf.outputs if f.type == "number"]
    if got is None or problem is None or not numeric or "program for" in text:
        return None
    lines, lo, hi = got
    i = _answer_step(lines, lo, hi, wf, "extract number")
    if i is None:
        return None
    m = _STEP.match(lines[i])
    assert m is not None
    name = m.group("name")
    if name not in numeric:
        return None
    voted, check = _fresh(text, f"{name}_voted"), _fresh(text, f"{name}_program")
    lines[i : i + 1] = [
        f"  {voted} = extract number {m.group('rest')}",
        f"  {check} = program for {problem}",
        f"  if {check}.ok then",
        f"    {name} = {check}.value",
        "  else",
        f"    {name} = {voted}",
        "  end",
    ]
    return "\n".join(lines) + "\n"


def test_revise(text: str, wf: Workflow) -> str | None:
    got = _entry_lines(text, wf)
    code = [f.name for f in wf.outputs if f.type == "code"]
    tests = next((f.name for f in wf.inputs if f.name in ("tests", "test")), None)
    if got is None or not code or tests is None or "repeat up to" in text:
        return None
    lines, _lo, hi = got
    name = code[0]
    report = _fresh(text, "report")
    lines[hi:hi] = [
        "  repeat up to 3 times",
        f"    {report} = test {name} against {tests}",
        f"    {name} = revise {name} using {report}.feedback",
        f"  until {report}.passed",
    ]
    return "\n".join(lines) + "\n"


#: the text moves, in the order the loop tries them
TEXT_MOVES: dict[str, Callable[[str, Workflow], str | None]] = {
    "self_consistency": self_consistency,
    "review": review,
    "program_check": program_check,
    "test_revise": test_revise,
}

__all__ = ["TEXT_MOVES", "program_check", "review", "self_consistency", "test_revise"]
