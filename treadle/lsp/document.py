"""One open `.flow` file as the editor sees it: compiled once per edit, then asked about points.

Everything comes from the compiler: its diagnostics, its syntax tree (symbols, formatting) and
the bindings it recorded at every statement (`ScopeMark`), which give the names in scope at a
point with their types and binding sites. Which references fit where is constrained
generation's `Scope.refs` (names and record fields of a wanted type), and an operator's or
workflow's call shape is its `Callee` from the generation vocabulary, so an editor is offered
exactly what the generator may write. Positions here are 1-based (the compiler's); the server
converts from the protocol's 0-based ones.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treadle.compiler import ast as A
from treadle.compiler.diagnostics import Diagnostic
from treadle.compiler.driver import CompiledFile, Compiler
from treadle.compiler.formatter import format_module
from treadle.compiler.parsing import parse
from treadle.compiler.scope import Binding, Env, ScopeMark
from treadle.generation.decoding.scope_grammar import KEYWORDS, Scope
from treadle.generation.decoding.vocabulary import Callee, Capability, from_operator
from treadle.runtime.ir import SourceSpan
from treadle.runtime.types import Type
from treadle.stdlib_ops.registry import COMMON_OPTIONS

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?")
_STEP = re.compile(r"^(\s*)([a-z_][a-z0-9_]*)(\s*=\s*)")
_FOR_EACH = re.compile(r"for each ([a-z_][a-z0-9_]*) in ([A-Za-z0-9_.]+):\s*")
_MEANT = re.compile(r"did you mean `([^`]+)`\?")
_WORDS = frozenset(KEYWORDS) | {"text", "number", "boolean", "code", "json", "null"}


@dataclass(frozen=True)
class Site:
    """Where something is defined: a file (None: this one) and a span in it."""

    path: Path | None
    span: SourceSpan


@dataclass(frozen=True)
class Offer:
    """A completion: the text that replaces columns [start, end) of the line, 1-based."""

    label: str
    insert: str
    start: int
    end: int
    kind: str  # "operator" | "workflow" | "name" | "field" | "preposition" | "option"
    detail: str


@dataclass(frozen=True)
class WorkflowInfo:
    """A callable workflow: its call shape, header line, doc comment and where it is."""

    callee: Callee
    header: str
    doc: str
    site: Site


def _doc(wf: A.Workflow) -> str:
    return " ".join(c.lstrip("#").strip() for c in wf.comments if c.strip())


def _workflow_infos(cf: CompiledFile, path: Path | None) -> dict[str, WorkflowInfo]:
    """This file's workflows and those of the files it uses, by the name a step calls."""
    out: dict[str, WorkflowInfo] = {}
    sources = [(path, cf)] + [(_used_path(path, use), sub) for use, sub in cf.used.items()]
    for where, f in sources:
        for wf in f.module.workflows:
            sig = f.sigs.get(wf.name)
            if sig is None or wf.name in out:
                continue
            cap = Capability(wf.name, sig.inputs, sig.outputs, _doc(wf), str(where or ""), "")
            out[wf.name] = WorkflowInfo(cap.callee(), cap.header(), cap.doc, Site(where, wf.span))
    return out


def _used_path(path: Path | None, use: str) -> Path:
    here = path.parent if path is not None else Path.cwd()
    return (here / use).resolve()


class FlowDocument:
    """A compiled snapshot of one file's text."""

    def __init__(self, text: str, path: Path | None, operators: Mapping[str, Any]) -> None:
        self.text = text
        self.path = path
        self.lines = text.splitlines()
        root = path.parent if path is not None else Path.cwd()
        paused = gc.isenabled()
        gc.disable()  # the compiler's many small acyclic objects: see compiler._compile
        try:
            self.compiled = Compiler(operators, root, record_scopes=True).compile(
                text, str(path) if path else None, path
            )
        finally:
            if paused:
                gc.enable()
        self.operators = operators
        self.workflows = _workflow_infos(self.compiled, path)
        self._callees: dict[str, Callee] | None = None
        self._rest_after = ""

    # ------------------------------------------------------------ what the file says

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.compiled.diags

    def related(self, d: Diagnostic) -> list[tuple[Site, str]]:
        """Other places a diagnostic is about: a used file's own errors (E703), the binding
        site of the name a did-you-mean proposes."""
        out: list[tuple[Site, str]] = []
        if d.code == "E703":
            for e in self.compiled.imported:
                span = SourceSpan(e.line, e.column, e.end_line, e.end_column)
                out.append((Site(Path(e.file).resolve() if e.file else None, span), e.message))
        meant = _MEANT.search(d.hint or "")
        if meant:
            b = self.scope_at(d.line, d.column).get(meant.group(1))
            if b is not None and b.span.line > 0:
                out.append((Site(None, b.span), f"`{meant.group(1)}` is bound here"))
        return out

    def quick_fix(self, d: Diagnostic) -> tuple[SourceSpan, str] | None:
        """The did-you-mean as an edit: the misspelt word (the first backticked word of the
        message found in the span) replaced by the suggestion."""
        meant = _MEANT.search(d.hint or "")
        wrong = re.search(r"`([^`]+)`", d.message)
        if not meant or not wrong or d.line != d.end_line or not 1 <= d.line <= len(self.lines):
            return None
        line = self.lines[d.line - 1]
        at = line.find(wrong.group(1), d.column - 1, max(d.end_column - 1, d.column))
        if at < 0:
            return None
        span = SourceSpan(d.line, at + 1, d.line, at + 1 + len(wrong.group(1)))
        return span, meant.group(1)

    def formatted(self) -> str | None:
        """`treadle fmt`'s text for this file; None when it does not parse."""
        module, diags = parse(self.text, None)
        if any(d.is_error for d in diags):
            return None
        return format_module(module)

    def symbols(self) -> list[tuple[A.Workflow, list[A.Step]]]:
        """Each workflow with its steps (nested blocks included), in order."""
        return [(wf, list(_steps(wf.body))) for wf in self.compiled.module.workflows]

    # ------------------------------------------------------------ scope at a point

    def workflow_at(self, line: int) -> A.Workflow | None:
        return next(
            (w for w in self.compiled.module.workflows if w.span.line <= line <= w.span.end_line),
            None,
        )

    def scope_at(self, line: int, column: int) -> Env:
        """The readable bindings at (line, column): the last scope mark at or before it."""
        wf = self.workflow_at(line)
        if wf is None:
            return {}
        best: ScopeMark | None = None
        for m in self.compiled.scopes.get(wf.name, ()):
            seen = m.line < line if m.after else (m.line, m.column) <= (line, column)
            if seen and (best is None or (m.line, m.column) >= (best.line, best.column)):
                best = m
        env = best.env if best is not None else {}
        return {n: b for n, b in env.items() if not b.partial and not b.quiet}

    @property
    def callees(self) -> dict[str, Callee]:
        """Operators and callable workflows, by the name a step writes."""
        if self._callees is None:
            calls = {n: from_operator(op) for n, op in self.operators.items()}
            calls.update({n: w.callee for n, w in self.workflows.items()})
            self._callees = calls
        return self._callees

    # ------------------------------------------------------------ reading a line

    def word_at(self, line: int, column: int) -> tuple[int, int, str]:
        """The (dotted) word touching column `column` of `line`: start, end (1-based, end
        exclusive) and text; ("", column, column) when none touches it."""
        text = self.lines[line - 1] if 1 <= line <= len(self.lines) else ""
        for m in _WORD.finditer(text):
            if m.start() + 1 <= column <= m.end() + 1:
                return m.start() + 1, m.end() + 1, m.group()
        return column, column, ""

    def call_at(self, line: int) -> tuple[int, Callee | None, int] | None:
        """On a step's line: the 1-based column where its command starts, the operator or
        workflow it calls (longest name match) and the column after that name."""
        text = self.lines[line - 1] if 1 <= line <= len(self.lines) else ""
        m = _STEP.match(text)
        if m is None:
            return None
        start = m.end()
        fe = _FOR_EACH.match(text, start)
        if fe is not None:
            start = fe.end()
        rest = text[start:]
        best = None
        for name, c in self.callees.items():
            if (rest == name or rest.startswith(name + " ")) and (
                best is None or len(name) > len(best.name)
            ):
                best = c
        return start + 1, best, start + 1 + (len(best.name) if best else 0)

    # ------------------------------------------------------------ hover and definition

    def hover(self, line: int, column: int) -> str | None:
        """Markdown about what is at the point: an operator or workflow call, or a name."""
        start, _, word = self.word_at(line, column)
        call = self.call_at(line)
        if call is not None and call[1] is not None and call[0] <= column < call[2]:
            return self.describe(call[1])
        if word in self.workflows:
            return self.describe(self.callees[word])
        name = word.split(".")[0]
        b = self.scope_at(line, start).get(name)
        if b is None:
            after = self.scope_at(line + 1, 1).get(name)  # the name a step binds, on its line
            b = after if after is not None and after.span.line == line else None
        if b is None:
            return None
        t: Type | None = b.type
        for f in word.split(".")[1:]:
            t = t.field(f) if t is not None and f else t
        return f"`{word}`: `{t}`, bound on line {b.span.line}" + (
            "" if b.span.line != line else " (here)"
        )

    def describe(self, c: Callee) -> str:
        """An operator's or workflow's signature, prepositions, options and purpose."""
        out = [f"```\n{c.usage()}\n```", c.summary]
        wf = self.workflows.get(c.name)
        if wf is not None and c.kind == "workflow":
            out = [f"```\n{wf.header}\n```", wf.doc]
        op = self._operator(c)
        if op is not None:
            sig = op.signature
            for p in sig.params:
                where = "subject" if p.prep is None else f"`{p.prep}`"
                need = "" if p.required else ", optional"
                out.append(f"- {where} `{p.name}`: `{p.type}`{need}: {p.description}")
            for o in (*sig.options, *COMMON_OPTIONS):
                out.append(f"- `with {o.name}` `{o.type}` = `{o.default!r}`: {o.description}")
        return "\n\n".join(x for x in out if x)

    def definition(self, line: int, column: int) -> Site | None:
        start, _, word = self.word_at(line, column)
        call = self.call_at(line)
        if call is not None and call[1] is not None and call[0] <= column < call[2]:
            info = self.workflows.get(call[1].name)
            return info.site if info is not None else None
        if word in self.workflows:
            return self.workflows[word].site
        b = self.scope_at(line, start).get(word.split(".")[0])
        return Site(None, b.span) if b is not None else None

    # ------------------------------------------------------------ completion

    def complete(self, line: int, column: int) -> list[Offer]:
        """What may be written at the point, each offer valid there as inserted."""
        text = self.lines[line - 1] if 1 <= line <= len(self.lines) else ""
        before = text[: column - 1]
        self._rest_after = text[self.word_at(line, column)[1] - 1 :]
        scope = Scope({n: b.type for n, b in self.scope_at(line, column).items()})
        if _in_string(before):
            m = re.search(r"\{([A-Za-z0-9_.]*)$", before)
            if m is None:
                return []
            end = column + len(re.match(r"[A-Za-z0-9_.]*", text[column - 1 :]).group())  # type: ignore[union-attr]
            return self._names(scope.refs(None), column - len(m.group(1)), end, scope)
        step = _STEP.match(text)
        if step is not None and column <= step.end():
            return []  # the name a step binds, or before it
        start, end, word = self.word_at(line, column)
        call = self.call_at(line)
        if call is not None:
            cmd, callee, after_name = call
            if column < cmd:
                return self._refs_here(scope, start, end, word, None)  # `for each x in LIST`
            rest = text[cmd - 1 :]
            if callee is None or column < after_name:
                first = rest.split(" ", 1)[0]
                typing = (
                    not text[column - 1 :].strip()
                    and re.fullmatch(r"[a-z_ ]*", rest)
                    and first not in _WORDS  # `for each x in xs` opens a block
                )
                if typing:  # a new step's command: a whole call, or a plain reference
                    here = self.workflow_at(line)
                    calls = self._calls(scope, cmd, len(text) + 1, here.name if here else None)
                    return calls + self._names(scope.refs(None), cmd, len(text) + 1, scope)
                if callee is None and re.fullmatch(r"[A-Za-z0-9_.]+", rest.strip()):
                    return self._refs_here(scope, start, end, word, None)
                return []
            return self._in_call(scope, callee, text, column, (start, end, word))
        return self._refs_here(scope, start, end, word, None)

    def _refs_here(
        self, scope: Scope, start: int, end: int, word: str, want: Type | None
    ) -> list[Offer]:
        """Names replacing a reference that is already there (never a keyword's place)."""
        if not word or word.split(".")[0] in _WORDS or word.split(".")[0] in self.callees:
            return []
        line_rest = self._rest_after
        if word.split(".")[0] not in scope.names and line_rest.strip():
            return []  # not a reference the checker accepted: maybe a word of an operator
        return self._names(scope.refs(want), start, end, scope)

    def _names(self, refs: list[str], start: int, end: int, scope: Scope) -> list[Offer]:
        out = []
        for r in refs:
            name, _, field = r.partition(".")
            t = scope.names[name] if not field else scope.names[name].field(field)
            kind = "field" if field else "name"
            out.append(Offer(r, r, start, end, kind, str(t)))
        return out

    def _value(self, scope: Scope, want: Type, default: Any = None) -> str | None:
        """A value of type `want` to fill a slot with: a fitting name, else a literal."""
        if default is not None and not isinstance(default, dict | list):
            if isinstance(default, bool):
                return "true" if default else "false"
            if isinstance(default, int | float):
                return repr(default)
        refs = [r for r in scope.refs(want) if "." not in r] or scope.refs(want)
        if refs:
            return refs[0]
        if want.kind in ("text", "json", "any"):
            return '""'
        return None

    def _operator(self, c: Callee) -> Any:
        """The registry operator behind a callee (None for a workflow, even one that shares
        an operator's name: a `use`d workflow wins)."""
        return self.operators.get(c.name) if c.kind == "operator" else None

    def _constant(self, scope: Scope, want: Type, default: Any) -> str | None:
        """An option's value: options are read at compile time, so numbers and booleans are
        constants (the default where there is one); text may be a name or a string."""
        if isinstance(default, bool) or (default is None and want.kind == "boolean"):
            return "true" if default else "false"
        if isinstance(default, int | float):
            return repr(default)
        if want.kind == "choice" and want.choices:
            return str(default) if default in want.choices else want.choices[0]
        if want.kind in ("text", "code"):
            return self._value(scope, want)
        return None

    def _calls(self, scope: Scope, start: int, end: int, caller: str | None) -> list[Offer]:
        """Each operator and workflow (but the one being written: no recursion) as a whole
        call, its required arguments filled."""
        out = []
        for name, c in sorted(self.callees.items()):
            if name == caller:
                continue
            parts = [name]
            for p in c.params:
                if not p.required:
                    continue
                v = self._value(scope, p.type)
                if v is None:
                    break
                parts.append(v if p.prep is None else f"{p.prep} {v}")
            else:
                required = [o for o in c.options if o.required]
                values = [self._value(scope, o.type) for o in required]
                if any(v is None for v in values):
                    continue
                if required:
                    opts = ", ".join(f"{o.name} {v}" for o, v in zip(required, values, strict=True))
                    parts.append(f"with {opts}")
                out.append(Offer(name, " ".join(parts), start, end, c.kind, c.usage()))
        return out

    def _in_call(
        self, scope: Scope, c: Callee, text: str, column: int, word: tuple[int, int, str]
    ) -> list[Offer]:
        """After an operator's name: its prepositions and options in order, or the names that
        fit the argument the cursor is in."""
        start, end, w = word
        before = text[: column - 1]
        at_end = text[column - 1 :].strip() == ""
        options = before.rsplit(" with ", 1)[1] if " with " in before else None
        if at_end and (before.endswith(" ") or w == "") and w == "":
            if options is not None:
                if not (before.endswith(", ") or before.endswith("with ")):
                    return self._options(scope, c, options, column, ", ")
                return self._options(scope, c, options, column, "")
            used = set(re.findall(r"\b([a-z]+)\b", before))
            out = []
            for p in c.params:
                if p.prep is None or p.prep in used:
                    continue
                v = self._value(scope, p.type)
                if v is not None:
                    out.append(
                        Offer(p.prep, f"{p.prep} {v}", column, column, "preposition", str(p.type))
                    )
            return out + self._options(scope, c, "", column, "with ")
        if not w or (re.search(r"(?: with |, )$", before[: start - 1]) and options is not None):
            return []  # nothing to replace, or an option's name
        want = self._slot_type(c, before[: start - 1])
        return self._refs_here(scope, start, end, w, want)

    def _options(self, scope: Scope, c: Callee, given: str, column: int, lead: str) -> list[Offer]:
        op = self._operator(c)
        specs = (
            [(o.name, o.type, o.default) for o in (*op.signature.options, *COMMON_OPTIONS)]
            if op is not None
            else [(o.name, o.type, None) for o in c.options]
        )
        named = set(re.findall(r"(?:^|, )([a-z_][a-z0-9_]*) ", given))
        out = []
        for name, t, default in specs:
            if name in named or (op is None and name in named):
                continue
            v = self._constant(scope, t, default)
            if v is not None:
                out.append(Offer(name, f"{lead}{name} {v}", column, column, "option", str(t)))
        return out

    def _slot_type(self, c: Callee, before: str) -> Type | None:
        """The type of the argument or option whose value starts after `before`."""
        words = before.split()
        last = words[-1] if words else ""
        for p in c.params:
            if p.prep == last:
                return p.type
        op = self._operator(c)
        if op is not None:
            o = op.signature.option(last)
            if o is not None:
                return o.type
        o2 = next((o for o in c.options if o.name == last), None)
        if o2 is not None:
            return o2.type
        subject = next((p for p in c.params if p.prep is None), None)
        return subject.type if subject is not None else None


def _in_string(before: str) -> bool:
    """Whether the text before the cursor ends inside a one-line string."""
    return len(re.findall(r'(?<!\\)"', before)) % 2 == 1


def _steps(body: tuple[A.Statement, ...]) -> Iterator[A.Step]:
    for s in body:
        if isinstance(s, A.Step):
            yield s
            if isinstance(s.value, A.ForEach) and s.value.body:
                yield from _steps(s.value.body)
        elif isinstance(s, A.If):
            for arm in s.arms:
                yield from _steps(arm.body)
        elif isinstance(s, A.Repeat):
            yield from _steps(s.body)


__all__ = ["Binding", "FlowDocument", "Offer", "Site"]
