"""AutoFlow's CoRE programs → `.flow`: the one-step-a-line form made a checked workflow.

CoRE writes `Step Name:::process|decision|terminal:::instruction:::branches`, where a process
step's branches are `next::Step X` (or nothing: the following line), a decision's are
`label::Step X::label::Step Y...`, and a terminal has none. CoRE's own interpreter skips lines
it cannot read; here every malformed or unknown line is an error with its line number, because
a silently dropped step changes what the workflow does.

Translation: process steps → `generate`; a decision → a one-word verdict (`generate ... with
max_tokens 4`) and `if`; a terminal → the `reply` output; a decision that jumps back to an
earlier step → a bounded `repeat` (the bound is an option). A join (two paths reaching the same
step) is written out on each path, so every path ends in its own terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

StepKind = Literal["process", "decision", "terminal"]


class CoreIssue(BaseModel):
    """One problem of a CoRE program, printed `FILE:LINE: severity: message`."""

    line: int
    severity: Literal["error", "warning"]
    message: str

    def render(self, file: str) -> str:
        return f"{file}:{self.line}: {self.severity}: {self.message}"


class CoreImportError(Exception):
    """The program cannot be imported; `issues` holds every error and warning found."""

    def __init__(self, issues: list[CoreIssue], file: str) -> None:
        self.issues = issues
        self.file = file
        super().__init__("\n".join(i.render(file) for i in issues))


@dataclass
class CoreStep:
    name: str
    kind: StepKind
    instruction: str
    #: (label, target step name); process steps have one with label "next"
    branches: list[tuple[str, str]]
    line: int
    var: str = ""


@dataclass
class CoreResult:
    """The `.flow` text and the warnings (unreachable steps) of an import."""

    flow: str
    warnings: list[CoreIssue] = field(default_factory=list)
    steps: int = 0


_KINDS = {"process": "process", "decision": "decision", "terminal": "terminal"}


def parse_core(text: str) -> tuple[list[CoreStep], list[CoreIssue]]:
    """The steps of a CoRE program and every line-level error (nothing is skipped silently)."""
    steps: list[CoreStep] = []
    issues: list[CoreIssue] = []
    seen: dict[str, int] = {}
    #: names of lines that failed later checks: jumps to them are not reported again
    declared: set[str] = set()
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(":::")]
        if len(parts) == 3:
            parts.append("")
        if len(parts) != 4:
            issues.append(
                CoreIssue(
                    line=no,
                    severity="error",
                    message=f"expected `Step Name:::type:::instruction:::branches` (4 fields "
                    f"separated by `:::`), got {len(parts)} field(s)",
                )
            )
            continue
        name, kind_text, instruction, branch_text = parts
        declared.add(name)
        kind = _KINDS.get(kind_text.lower())
        if not name:
            issues.append(CoreIssue(line=no, severity="error", message="the step has no name"))
            continue
        if kind is None:
            issues.append(
                CoreIssue(
                    line=no,
                    severity="error",
                    message=f"unknown step type {kind_text!r}; expected process, decision or "
                    "terminal",
                )
            )
            continue
        if not instruction:
            issues.append(
                CoreIssue(line=no, severity="error", message=f"step {name!r} has no instruction")
            )
            continue
        if name in seen:
            issues.append(
                CoreIssue(
                    line=no,
                    severity="error",
                    message=f"step {name!r} is defined twice (first at line {seen[name]})",
                )
            )
            continue
        branches: list[tuple[str, str]] = []
        if branch_text:
            cells = [c.strip() for c in branch_text.split("::")]
            if len(cells) % 2 or any(not c for c in cells):
                issues.append(
                    CoreIssue(
                        line=no,
                        severity="error",
                        message=f"malformed branches {branch_text!r}: expected "
                        "`label::Step X` pairs separated by `::`",
                    )
                )
                continue
            branches = [(cells[i], cells[i + 1]) for i in range(0, len(cells), 2)]
        seen[name] = no
        steps.append(CoreStep(name, kind, instruction, branches, no))  # type: ignore[arg-type]
    _check_branches(steps, issues, declared)
    issues.sort(key=lambda i: i.line)
    return steps, issues


def _check_branches(steps: list[CoreStep], issues: list[CoreIssue], declared: set[str]) -> None:
    names = {s.name for s in steps} | declared
    for i, s in enumerate(steps):
        if s.kind == "process":
            if not s.branches:
                if i + 1 < len(steps):
                    s.branches = [("next", steps[i + 1].name)]
                else:
                    issues.append(
                        CoreIssue(
                            line=s.line,
                            severity="error",
                            message=f"process step {s.name!r} is the last line and names no "
                            "next step; end the program with a terminal step",
                        )
                    )
            elif len(s.branches) != 1:
                issues.append(
                    CoreIssue(
                        line=s.line,
                        severity="error",
                        message=f"process step {s.name!r} has {len(s.branches)} branches; it "
                        "takes one (`next::Step X`); use a decision step to branch",
                    )
                )
        elif s.kind == "decision":
            labels = [lbl.lower() for lbl, _ in s.branches]
            if len(s.branches) < 2:
                issues.append(
                    CoreIssue(
                        line=s.line,
                        severity="error",
                        message=f"decision step {s.name!r} needs at least two branches "
                        "(`yes::Step X::no::Step Y`)",
                    )
                )
            elif len(set(labels)) != len(labels):
                issues.append(
                    CoreIssue(
                        line=s.line,
                        severity="error",
                        message=f"decision step {s.name!r} repeats a branch label",
                    )
                )
            elif any(not re.fullmatch(r"[a-z][a-z0-9_-]*", lbl) for lbl in labels):
                issues.append(
                    CoreIssue(
                        line=s.line,
                        severity="error",
                        message=f"decision step {s.name!r}: branch labels must be single words",
                    )
                )
        elif s.branches:
            issues.append(
                CoreIssue(
                    line=s.line,
                    severity="error",
                    message=f"terminal step {s.name!r} has branches; a terminal ends the flow",
                )
            )
        for _, target in s.branches:
            if target not in names:
                issues.append(
                    CoreIssue(
                        line=s.line,
                        severity="error",
                        message=f"step {s.name!r} jumps to {target!r}, which no line defines",
                    )
                )


def _var(name: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "step"
    if base[0].isdigit():
        base = "s" + base
    if base in ("end", "if", "else", "then", "for", "each", "in", "repeat", "until", "return"):
        base = "s_" + base
    var, k = base, 2
    while var in used or var in ("task", "reply"):
        var, k = f"{base}_{k}", k + 1
    used.add(var)
    return var


def _text(s: str) -> str:
    """A `.flow` string literal holding `s` (braces escaped, so no template names)."""
    esc = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "{": "{{", "}": "}}"}
    return '"' + "".join(esc.get(c, c) for c in s) + '"'


class _Translator:
    def __init__(self, steps: list[CoreStep], loop_bound: int) -> None:
        self.by_name = {s.name: s for s in steps}
        self.loop_bound = loop_bound
        self.issues: list[CoreIssue] = []
        self.reached: set[str] = set()

    def prompt(self, s: CoreStep, prev: str | None) -> str:
        body = _text(s.instruction)[1:-1] + "\\n\\nTask: {task}"
        if prev:
            body += "\\n\\nSo far: {" + prev + "}"
        if s.kind == "decision":
            words = " or ".join(lbl.lower() for lbl, _ in s.branches)
            body += f"\\n\\nReply with one word: {words}."
        return '"' + body + '"'

    def loop_chain(self, head: CoreStep) -> tuple[list[CoreStep], str] | None:
        """If a decision reached from `head` through process steps jumps back to `head`: the
        chain head..decision and the label of the back jump."""
        chain, cur, seen = [], head, set()
        while cur.name not in seen:
            seen.add(cur.name)
            chain.append(cur)
            if cur.kind == "decision":
                for label, target in cur.branches:
                    if target == head.name:
                        return chain, label.lower()
                return None
            if cur.kind != "process":
                return None
            cur = self.by_name[cur.branches[0][1]]
        return None

    def block(self, name: str, prev: str | None, path: tuple[str, ...], depth: int) -> list[str]:
        pad = "  " * depth
        s = self.by_name[name]
        if name in path:
            self.issues.append(
                CoreIssue(
                    line=s.line,
                    severity="error",
                    message=f"a jump back to {name!r} does not come from a decision right "
                    "after it (a decision reached through process steps only); such a loop "
                    "has no bound and cannot be imported",
                )
            )
            return [f"{pad}reply = {prev or 'task'}"]
        self.reached.add(name)
        looped = self.loop_chain(s)
        if looped is not None:
            chain, back = looped
            lines = [f"{pad}repeat up to {self.loop_bound} times"]
            p = prev
            for c in chain:
                self.reached.add(c.name)
                opts = " with max_tokens 4" if c.kind == "decision" else ""
                lines.append(f"{pad}  {c.var} = generate from {self.prompt(c, p)}{opts}")
                if c.kind == "process":
                    p = c.var
            decision = chain[-1]
            lines.append(f"{pad}until {decision.var} != {_text(back)}")
            rest = [(lbl.lower(), t) for lbl, t in decision.branches if lbl.lower() != back]
            inner = (*path, *(c.name for c in chain))
            lines += self.branches(decision.var, rest, p, inner, depth)
            return lines
        if s.kind == "terminal":
            return [f"{pad}reply = generate from {self.prompt(s, prev)}"]
        if s.kind == "process":
            line = f"{pad}{s.var} = generate from {self.prompt(s, prev)}"
            return [line, *self.block(s.branches[0][1], s.var, (*path, name), depth)]
        lines = [f"{pad}{s.var} = generate from {self.prompt(s, prev)} with max_tokens 4"]
        rest = [(lbl.lower(), t) for lbl, t in s.branches]
        return lines + self.branches(s.var, rest, prev, (*path, name), depth)

    def branches(
        self,
        verdict: str,
        rest: list[tuple[str, str]],
        prev: str | None,
        path: tuple[str, ...],
        depth: int,
    ) -> list[str]:
        pad = "  " * depth
        if len(rest) == 1:
            return self.block(rest[0][1], prev, path, depth)
        lines: list[str] = []
        for i, (label, target) in enumerate(rest):
            if i == 0:
                lines.append(f"{pad}if {verdict} == {_text(label)} then")
            elif i < len(rest) - 1:
                lines.append(f"{pad}else if {verdict} == {_text(label)} then")
            else:
                lines.append(f"{pad}else")
            lines += self.block(target, prev, path, depth + 1)
        lines.append(f"{pad}end")
        return lines


def import_core(
    text: str, *, file: str = "<core>", workflow: str = "core_flow", loop_bound: int = 3
) -> CoreResult:
    """Translate a CoRE program; raises CoreImportError listing every error of the file."""
    steps, issues = parse_core(text)
    if not steps and not issues:
        issues.append(CoreIssue(line=1, severity="error", message="the program has no steps"))
    if any(i.severity == "error" for i in issues):
        raise CoreImportError(issues, file)
    used: set[str] = set()
    for s in steps:
        s.var = _var(s.name, used)
    t = _Translator(steps, loop_bound)
    body = t.block(steps[0].name, None, (), 1)
    warnings = [
        CoreIssue(
            line=s.line,
            severity="warning",
            message=f"step {s.name!r} is unreachable from the first step {steps[0].name!r}",
        )
        for s in steps
        if s.name not in t.reached
    ]
    if t.issues:
        raise CoreImportError(t.issues + warnings, file)
    header = [
        f"# Imported from the CoRE program {Path(file).name} by `treadle import core`.",
        f"workflow {workflow}(task: text) -> reply: text",
    ]
    source = "\n".join([*header, *body, "end"]) + "\n"
    from treadle.compiler import check_source
    from treadle.compiler.formatter import format_source

    errors = [d for d in check_source(source, file) if d.is_error]
    if errors:  # a bug of this translator, never of the input: say so plainly
        raise CoreImportError(
            [
                CoreIssue(line=0, severity="error", message=f"internal: {d.render()}")
                for d in errors
            ],
            file,
        )
    return CoreResult(flow=format_source(source, file), warnings=warnings, steps=len(steps))
