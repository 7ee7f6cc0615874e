"""Diagnostics: what the compiler tells the writer of a `.flow` file, human or model.

Generators repair programs from these, so each one says what was expected, where (a span and a
source excerpt with a caret), and how to fix it when there is an obvious fix. Every code is in
`CODES`; a golden test pins each one's exact rendering.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from treadle.compiler.ast import NO_SPAN
from treadle.runtime.ir import SourceSpan

Severity = Literal["error", "warning"]

#: code -> (slug, severity, what it means); docs/language.md lists the same table
CODES: dict[str, tuple[str, Severity, str]] = {
    "E001": ("syntax", "error", "the text does not follow the grammar"),
    "E002": (
        "unclosed-block",
        "error",
        "a block (`workflow`, `if`, `for each`, `repeat`) is not closed",
    ),
    "E101": ("undefined-name", "error", "a name is read before anything binds it"),
    "E102": ("maybe-unbound", "error", "a name read after an `if` is not bound on every path"),
    "E103": ("duplicate-name", "error", "two workflows, inputs or outputs share a name"),
    "E104": ("shadowing", "error", "`for each` would rebind a name of the enclosing scope"),
    "E105": ("no-workflow", "error", "the file defines no workflow"),
    "E201": ("unknown-operator", "error", "no operator or workflow has this name"),
    "E202": (
        "unknown-preposition",
        "error",
        "the operator takes no argument with this preposition",
    ),
    "E203": ("missing-argument", "error", "a required argument is missing"),
    "E204": ("duplicate-argument", "error", "the same argument or option is given twice"),
    "E205": ("unknown-option", "error", "the operator has no option of this name"),
    "E206": (
        "option-type",
        "error",
        "an option's value has the wrong type, or a constant is out of its bounds",
    ),
    "E207": ("bad-subject", "error", "the words after the operator do not form one subject"),
    "E208": ("bad-choice", "error", "a word is not one of the choices the parameter accepts"),
    "E301": ("type-mismatch", "error", "a value's type does not fit where it flows"),
    "E302": ("unknown-field", "error", "a record has no field of this name"),
    "E303": ("unknown-type", "error", "a declared type is not a type of the language"),
    "E304": (
        "operand-type",
        "error",
        "an operator of an expression gets a value of the wrong type",
    ),
    "E305": ("input-default", "error", "an input's default is not a constant"),
    "E401": ("template-name", "error", "a string template interpolates an unknown name"),
    "E501": ("unbounded-loop", "error", "a `repeat` has no `up to N times` bound"),
    "E502": ("loop-bound", "error", "a loop bound is not a whole-number constant in range"),
    "E503": ("unreachable", "error", "code after `return` can never run"),
    "E504": ("return-in-loop", "error", "`return` inside `repeat` or `for each`"),
    "E505": ("return-value", "error", "`return VALUE` needs a workflow with exactly one output"),
    "E506": ("for-each-block", "error", "a `for each` block must end with a step giving the item"),
    "E601": ("output-unbound", "error", "a declared output is not bound on every path"),
    "E701": ("missing-file", "error", "a `use`d or prompt file does not exist or cannot be read"),
    "E702": ("import-cycle", "error", "files `use` each other in a cycle"),
    "E703": ("import-errors", "error", "a `use`d file has errors"),
    "E704": ("ambiguous-workflow", "error", "two files give a workflow of the same name"),
    "E705": (
        "recursive-call",
        "error",
        "workflows call each other in a cycle, which might never end",
    ),
    "W801": ("unused-step", "warning", "a step's value is never used"),
    "W802": ("unused-input", "warning", "a workflow input is never used"),
    "W803": (
        "literal-braces",
        "warning",
        "a `{...}` that looks like an interpolation stays literal text",
    ),
    "W804": (
        "brace-escape",
        "warning",
        "`{{`/`}}` escapes make a string's JSON-looking braces no longer pair up",
    ),
}


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    code: str
    severity: Severity
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    file: str | None = None
    hint: str | None = None
    #: the source lines of the span with a caret line under them (filled from the source)
    excerpt: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def render(self) -> str:
        """`file:line:col: error[E101]: message`, the excerpt, then the hint."""
        where = f"{self.file or '<input>'}:{self.line}:{self.column}"
        out = [f"{where}: {self.severity}[{self.code}]: {self.message}"]
        if self.excerpt:
            out.append(self.excerpt)
        if self.hint:
            out.append(f"  = hint: {self.hint}")
        return "\n".join(out)


def make(
    code: str,
    message: str,
    span: SourceSpan | None,
    *,
    hint: str | None = None,
    file: str | None = None,
) -> Diagnostic:
    s = span or NO_SPAN
    return Diagnostic.model_construct(
        code=code,
        severity=CODES[code][1],
        message=message,
        line=s.line,
        column=s.column,
        end_line=s.end_line,
        end_column=s.end_column,
        file=file,
        hint=hint,
        excerpt="",
    )


def excerpt(lines: list[str], d: Diagnostic) -> str:
    """The first line of the span with carets under the spanned columns."""
    if not 1 <= d.line <= len(lines):
        return ""
    text = lines[d.line - 1].rstrip("\r\n").expandtabs(1)
    start = max(d.column, 1)
    end = d.end_column if d.end_line == d.line else len(text) + 1
    width = max(1, min(end, len(text) + 1) - start)
    gutter = str(d.line)
    pad = " " * len(gutter)
    return f" {gutter} | {text}\n {pad} | {' ' * (start - 1)}{'^' * width}"


def finish(diags: Iterable[Diagnostic], text: str, file: str | None) -> list[Diagnostic]:
    """Deduplicate, sort by position, and attach file names and excerpts."""
    lines = text.splitlines()
    seen: set[tuple[object, ...]] = set()
    out = []
    for d in diags:
        key = (d.file or file, d.line, d.column, d.end_line, d.end_column, d.code, d.message)
        if key in seen:
            continue
        seen.add(key)
        if d.file is None or d.file == file:
            d = d.model_copy(update={"file": file, "excerpt": d.excerpt or excerpt(lines, d)})
        out.append(d)
    out.sort(key=lambda d: (d.file != file, d.line, d.column, d.code))
    return out


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` most likely misspells, or None when nothing is close."""
    names = sorted(set(candidates))
    match = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not match:
        lowered = {n.lower(): n for n in names}
        if word.lower() in lowered:
            match = [lowered[word.lower()]]
    return match[0] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate, as a hint, or None when nothing is close."""
    match = closest(word, candidates)
    return f"did you mean `{match}`?" if match else None


def to_json(diags: list[Diagnostic]) -> str:
    return json.dumps([d.model_dump(mode="json") for d in diags], indent=2)


def render_all(diags: list[Diagnostic]) -> str:
    return "\n\n".join(d.render() for d in diags)


def summary(diags: list[Diagnostic]) -> str:
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
