"""What a syntax error says: the terminals named as a reader knows them, the expected ones
listed briefly, and a hint for the mistakes people make most."""

from __future__ import annotations

import functools

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from treadle.compiler.diagnostics import Diagnostic, make
from treadle.compiler.parsing._lark_internals import MissingInternal, literal_terminals
from treadle.compiler.parsing.lalr import lark_parser
from treadle.compiler.parsing.transformer import token_span
from treadle.runtime.ir import SourceSpan

_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "_NL": "the end of the line",
    "$END": "the end of the file",
    "_ARROW": "`->`",
}


@functools.cache
def _terminal_text() -> dict[str, str]:
    """Lark's name of an anonymous terminal → its keyword or punctuation text."""
    try:
        return {name: value for value, name in literal_terminals(lark_parser()).items()}
    except MissingInternal:  # another Lark: terminals keep their grammar names
        return {}


def describe(terminal: str) -> str:
    if terminal in _NAMES:
        return _NAMES[terminal]
    text = _terminal_text().get(terminal)
    return f"`{text}`" if text is not None else terminal.lower()


def _expected(types: set[str]) -> str:
    words = sorted({describe(t) for t in types if t not in ("COMMENT", "WS")})
    if len(words) > 8:
        keep = [w for w in words if not w.startswith("`")] + [w for w in words if w.startswith("`")]
        words = [*keep[:8], "…"]
    return ", ".join(words)


def char_error(text: str, e: UnexpectedCharacters, file: str | None) -> Diagnostic:
    """A character no terminal starts with."""
    pos = e.pos_in_stream or 0
    ch = text[pos] if pos < len(text) else ""
    span = SourceSpan(line=e.line, column=e.column, end_line=e.line, end_column=e.column + 1)
    hint = None
    if ch == '"':
        msg = "unterminated string"
        hint = 'close the string with `"` on the same line; write a line break as `\\n`'
    elif ch == "'":
        msg = "unexpected `'`"
        hint = 'strings use double quotes: "..."'
    elif ch == "\t" or ch == " ":
        msg = "unexpected whitespace"
    else:
        msg = f"unexpected character `{ch}`"
        expected = _expected(set(e.allowed or ()))
        if expected:
            msg += f"; expected {expected}"
    return make("E001", msg, span, file=file, hint=hint)


def token_error(text: str, tok: Token, expected: set[str], file: str | None) -> Diagnostic:
    """A token the parser cannot take where it stands."""
    if tok.type == "_NL":
        line = text.count("\n", 0, tok.start_pos or 0) + 1
        col = len(text.splitlines()[line - 1].rstrip()) + 1
        span = SourceSpan(line=line, column=col, end_line=line, end_column=col + 1)
        what = "unexpected end of line"
    else:
        span = token_span(tok)
        shown = str(tok) if len(str(tok)) <= 30 else str(tok)[:27] + "..."
        what = f"unexpected {describe(tok.type) if tok.type == '$END' else f'`{shown}`'}"
    msg = f"{what}; expected {_expected(expected)}" if expected else what
    return make("E001", msg, span, file=file, hint=_hint(tok, expected))


def first_error(text: str, e: UnexpectedInput, file: str | None) -> Diagnostic:
    """The diagnostic of the error Lark's own parse stopped at."""
    if isinstance(e, UnexpectedCharacters):
        return char_error(text, e, file)
    if isinstance(e, UnexpectedToken):
        return token_error(text, e.token, set(e.expected or ()), file)
    line, col = e.line or 1, e.column or 1
    return make("E001", "syntax error", SourceSpan(line, col, line, col + 1), file=file)


def unclosed(kind: str, opened: int, closer: str, line: int, file: str | None) -> Diagnostic:
    """A block the end of the file leaves open."""
    word = closer.split()[0]
    msg = f"the `{kind}` opened at line {opened} is never closed; expected `{word}`"
    span = SourceSpan(line=line, column=1, end_line=line, end_column=1)
    return make("E002", msg, span, file=file, hint=f"add `{word}`")


def _hint(tok: Token, expected: set[str]) -> str | None:
    if expected == {"THEN"} or ("THEN" in expected and tok.type == "_NL"):
        return "end the condition with `then`"
    if tok.type == "EQUAL" and "__ANON_0" in expected:
        return "compare with `==` (a single `=` binds a name)"
    if tok.type == "NAME" and str(tok) in ("elif", "elsif", "elseif"):
        return "write `else if`"
    if tok.type == "_NL" and expected & {"NAME", "STRING", "NUMBER"}:
        return "the line ends too early: a value is missing"
    return None
