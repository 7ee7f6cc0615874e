"""What a syntax error says: the terminals named as a reader knows them, the expected ones
listed briefly, and a hint for the mistakes people make most."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from treadle.compiler.diagnostics import Diagnostic, did_you_mean, make
from treadle.compiler.parsing._lark_internals import MissingInternal, literal_terminals
from treadle.compiler.parsing.lalr import lark_parser
from treadle.compiler.parsing.transformer import token_span
from treadle.runtime.ir import SourceSpan

_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "BLOCK_STRING": "a string",
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
    known = mistake(text, tok, file)
    if known is not None:
        return known
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


#: a statement's first word: keywords of other languages, and this language's own
_LINE = re.compile(r"(?P<indent>[ \t]*)(?P<word>[A-Za-z_]\w*)(?P<rest>.*)")
_KEYWORDS = ("if", "else", "end", "repeat", "until", "return", "workflow", "use")
#: `with NAME` (after any earlier `NAME VALUE,` options) right before a `=` or `:`
_OPTION_SIGN = re.compile(r".*\bwith[ \t]+(?:[^\n]*,[ \t]*)?(?P<name>[A-Za-z_]\w*)[ \t]*$")


@dataclass(frozen=True)
class _Line:
    """The line a bad token stands on, as the targeted messages read it."""

    text: str
    number: int
    tok: Token
    #: the token's column offset in `text`
    at: int

    def first_word(self) -> tuple[str, str, SourceSpan] | None:
        """The line's first word, the text after it, and the word's span."""
        m = _LINE.match(self.text)
        if m is None:
            return None
        column = len(m.group("indent")) + 1
        word = m.group("word")
        span = SourceSpan(self.number, column, self.number, column + len(word))
        return word, m.group("rest"), span


def mistake(text: str, tok: Token, file: str | None) -> Diagnostic | None:
    """A targeted message for a mistake people make (another language's keyword, `=` in an
    option, a misspelt keyword), read from the line the bad token stands on; None for any
    other error."""
    start = text.rfind("\n", 0, tok.start_pos or 0) + 1
    end = text.find("\n", start)
    line = _Line(
        text[start : end if end >= 0 else len(text)].rstrip("\r"),
        tok.line or 1,
        tok,
        (tok.start_pos or 0) - start,
    )
    for check in (_option_sign, _other_keyword, _block_colon, _repeat_bound, _unbound_each):
        found = check(line)
        if found is not None:
            message, span, hint = found
            return make("E001", message, span, file=file, hint=hint)
    return None


_Found = tuple[str, SourceSpan, str] | None


def _other_keyword(line: _Line) -> _Found:
    """`elif`, `while`, or a misspelt keyword (`iff`) at the start of a statement."""
    first = line.first_word()
    if first is None or line.tok.type == "EQUAL":
        return None
    word, rest, span = first
    if line.text[span.end_column - 1 : line.at].strip() or line.at < span.end_column - 1:
        return None  # the parser stumbled after the word's neighbour, or on the word itself
    if word in ("elif", "elsif", "elseif"):
        fixed = f"else if {rest.strip()}"
        fixed = fixed if fixed.endswith(" then") else f"{fixed} then"
        return f"`{word}` is not a keyword; use `else if`", span, f"write `{fixed}`"
    if word in ("while", "loop"):
        return (
            f"there is no `{word}` loop; loops are `repeat up to N times … until CONDITION`",
            span,
            "write `repeat up to 5 times`, the body, then `until CONDITION` where `end` is "
            "(every loop has a bound, so every program ends)",
        )
    close = did_you_mean(word, _KEYWORDS) if word not in _KEYWORDS else None
    if close is not None and len(word) > 1:
        return f"unknown keyword `{word}`", span, close
    return None


def _option_sign(line: _Line) -> _Found:
    """`with temperature=0.7` or `with temperature: 0.7`."""
    m = _OPTION_SIGN.match(line.text[: max(line.at, 0)])
    if m is None or line.tok.type not in ("EQUAL", "COLON"):
        return None
    name = m.group("name")
    value = line.text[line.at + len(str(line.tok)) :].split(",")[0].strip() or "VALUE"
    return (
        f"options are `with name value`: no `{line.tok}` between `{name}` and its value",
        token_span(line.tok),
        f"write `with {name} {value}`",
    )


def _block_colon(line: _Line) -> _Found:
    """`else:` or `if x > 1:`, a block opened as Python opens it."""
    first = line.first_word()
    if first is None or line.tok.type != "COLON" or first[0] not in ("if", "else", "repeat"):
        return None
    if line.text[line.at + 1 :].strip():
        return None
    opener = {"if": "end the condition with `then`", "else": "write `else` alone on its line"}
    return (
        "a block opens without `:`",
        token_span(line.tok),
        opener.get(first[0], "write `repeat up to N times` alone on its line"),
    )


def _repeat_bound(line: _Line) -> _Found:
    """`repeat 3 times`: the bound is written `up to`."""
    first = line.first_word()
    if first is None or first[0] != "repeat" or line.tok.type != "NUMBER":
        return None
    return (
        "a loop's bound is written `up to N times`",
        token_span(line.tok),
        f"write `repeat up to {line.tok} times`",
    )


def _unbound_each(line: _Line) -> _Found:
    """`for each x in xs` as a statement: a `for each` block is the value of a step."""
    first = line.first_word()
    if first is None or first[0] != "for" or line.tok.type != "EACH":
        return None
    return (
        "a `for each` block gives its results a name",
        first[2],
        f"write `results = {line.text.strip()}`; the block's last step gives each item",
    )


def _hint(tok: Token, expected: set[str]) -> str | None:
    if expected == {"THEN"} or ("THEN" in expected and tok.type == "_NL"):
        return "end the condition with `then`"
    if tok.type == "EQUAL" and "__ANON_0" in expected:
        return "compare with `==` (a single `=` binds a name)"
    if tok.type == "_NL" and expected & {"NAME", "STRING", "NUMBER"}:
        return "the line ends too early: a value is missing"
    return None
