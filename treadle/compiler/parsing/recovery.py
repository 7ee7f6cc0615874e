"""Error recovery (built on Lark's interactive parser, as its `lalr_interactive_parser` is for
this): the file is parsed again line by line; a line that does not parse is reported, then
replaced by a stand-in of the same shape (an `if` line by `if true then`, a step by
`NAME = $invalid`), so the block structure survives and the rest of the file is still parsed
and checked.

Line-by-line feeding needs Lark's lexer state (`_lark_internals`); a Lark without it gets the
first error only, from Lark's own parse, and an empty tree.
"""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from treadle.compiler import ast as A
from treadle.compiler.diagnostics import Diagnostic
from treadle.compiler.parsing import _lark_internals as internals
from treadle.compiler.parsing._lark_internals import (
    ContextualLexer,
    InteractiveParser,
    LexerState,
    LineCounter,
)
from treadle.compiler.parsing.lalr import lark_parser
from treadle.compiler.parsing.messages import char_error, first_error, token_error, unclosed
from treadle.compiler.parsing.transformer import INVALID

_LINE_KIND = re.compile(
    r"\s*(?:(?P<end>end)\b|(?P<elif>else\s+if|elif|elsif|elseif)\b|(?P<else>else)\b|(?P<if>if)\b"
    r"|(?P<while>while|loop)\b(?!\s*=)|(?P<repeat>repeat)\b|(?P<until>until)\b|(?P<workflow>workflow)\b(?:\s+(?P<wname>[A-Za-z_]\w*))?"
    r"|(?P<return>return)\b|(?P<use>use)\b"
    r"|(?P<step>[A-Za-z_]\w*)\s*=(?P<rhs>.*)"
    r"|(?P<each>for\s+each\s+(?P<var>[A-Za-z_]\w*)\b[^:]*$)"
    r"|(?P<then>.*\bthen\s*(?:#.*)?$))"
)
_BLANK = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_FOR_BLOCK = re.compile(r"\s*for\s+each\b(?:\s+(?P<var>[A-Za-z_]\w*))?[^:]*$")


def _for_block(var: str | None) -> list[tuple[str, str]]:
    """The head of a `for each` block over a stand-in list; its variable kept when it can be
    read, so the body's reads of it are no follow-on errors."""
    names = [("FOR", "for"), ("EACH", "each"), ("NAME", var or INVALID)]
    return [*names, ("IN", "in"), ("NAME", INVALID)]


def recover(
    text: str, file: str | None, error: UnexpectedInput
) -> tuple[A.Module, list[Diagnostic]]:
    """The tree with stand-ins and every syntax error; a workflow whose header did not parse
    is marked `broken`, one with a line that did not parse `damaged`, so the checks keep quiet
    about what the lost text may have said (recovery does not cascade). `error` is where
    Lark's own parse stopped, the one error reported if recovery cannot run."""
    try:
        return _Recovery(text, file).run()
    except internals.MissingInternal:
        return A.new(A.Module), [first_error(text, error, file)]


class _Misplaced(Exception):
    """A token the parser's state cannot take (the contextual lexer would not even read it)."""

    def __init__(self, token: Token, expected: set[str]) -> None:
        super().__init__(str(token))
        self.token, self.expected = token, expected


class _Recovery:
    """Feeds the interactive parser one line at a time, replacing lines that fail."""

    def __init__(self, text: str, file: str | None) -> None:
        self.text = text
        self.file = file
        self.diags: list[Diagnostic] = []
        self.broken: set[int] = set()
        #: the lines that failed to parse (dropped, or replaced by a stand-in)
        self.failed: set[int] = set()
        self.blocks: list[tuple[str, int]] = []

    def run(self) -> tuple[A.Module, list[Diagnostic]]:
        ip = lark_parser().parse_interactive(self.text)
        lexer, state = internals.lexing(ip)
        line_ip = internals.snapshot(ip)
        line_ctr = internals.line_counter(state)
        at_line_start = True
        fed_on_line: list[Token] = []
        while True:
            if at_line_start:
                line_ip = internals.snapshot(ip)
                line_ctr = internals.line_counter(state)
                fed_on_line = []
                at_line_start = False
            try:
                tok = self._next(lexer, state, ip)
            except EOFError:
                break
            except UnexpectedCharacters as e:
                self.diags.append(char_error(self.text, e, self.file))
                ip, at_line_start, fed_on_line = self._recover(
                    line_ip, line_ctr, state, e.pos_in_stream or 0
                )
                continue
            except _Misplaced as m:
                self.diags.append(token_error(self.text, m.token, m.expected, self.file))
                ip, at_line_start, fed_on_line = self._recover(
                    line_ip, line_ctr, state, m.token.start_pos or 0
                )
                continue
            try:
                ip.feed_token(tok)
            except UnexpectedToken as e:
                self.diags.append(token_error(self.text, tok, set(e.expected or ()), self.file))
                ip, at_line_start, fed_on_line = self._recover(
                    line_ip, line_ctr, state, tok.start_pos or 0
                )
                continue
            fed_on_line.append(tok)
            if tok.type == "_NL":
                self._track_blocks(fed_on_line)
                at_line_start = True
        module = self._finish(ip)
        for wf in module.workflows:
            wf.broken = wf.span.line in self.broken
            wf.damaged = any(wf.span.line <= n <= wf.span.end_line for n in self.failed)
        return module, self.diags

    @staticmethod
    def _next(lexer: ContextualLexer, state: LexerState, ip: InteractiveParser) -> Token:
        """The next token as the parser's state reads it; a token the state cannot take is
        still returned (from the lexer of every terminal) so the error names it."""
        try:
            return internals.state_token(lexer, state, ip)
        except UnexpectedCharacters as e:
            saved = internals.line_counter(state)
            try:
                tok = internals.any_token(lexer, state, ip)
            except UnexpectedCharacters:
                internals.resume_at(state, saved, "")
                raise e from None
            raise _Misplaced(tok, set(e.allowed or ())) from None

    def _recover(
        self, line_ip: InteractiveParser, line_ctr: LineCounter, state: LexerState, err_pos: int
    ) -> tuple[InteractiveParser, bool, list[Token]]:
        """Back to the line's start, feed a stand-in for it, and resume after it.

        Returns the parser and whether the next token starts a new line (no stand-in was fed,
        so the line and its newline are skipped)."""
        start = internals.char_pos(line_ctr)
        nl = self.text.find("\n", max(err_pos, start))
        if nl < 0:
            nl = len(self.text)
        line_no, column = internals.line_and_column(line_ctr)
        self.failed.add(line_no)
        ip = internals.snapshot(line_ip)
        fed = self._stand_in(ip, self.text[start:nl], line_no, column)
        if fed is None:
            ip = internals.snapshot(line_ip)
            m = _BLANK.match(self.text, nl)
            resume = m.end() if m else nl
        else:
            resume = nl
        internals.resume_at(state, line_ctr, self.text[start:resume])
        return ip, fed is None, fed or []

    def _stand_in(
        self, ip: InteractiveParser, line: str, line_no: int, col: int
    ) -> list[Token] | None:
        """Feed tokens that parse in the line's place; None when no stand-in fits."""
        m = _LINE_KIND.match(line)
        kind = m.lastgroup if m else None
        if m and m.group("step") is not None:
            kind = "step"
        names: list[tuple[str, str]]
        if kind == "end":
            names = [("END", "end")]
        elif kind == "elif":
            names = [("ELSE", "else"), ("IF", "if"), ("TRUE", "true"), ("THEN", "then")]
        elif kind == "else":
            names = [("ELSE", "else")]
        elif kind in ("if", "while"):  # a `while` block ends in `end`, as an `if` does
            names = [("IF", "if"), ("TRUE", "true"), ("THEN", "then")]
        elif kind == "repeat":
            names = [("REPEAT", "repeat"), ("UP", "up"), ("TO", "to")]
            names += [("NUMBER", "1"), ("TIMES", "times")]
        elif kind == "until":
            names = [("UNTIL", "until"), ("TRUE", "true")]
        elif kind in ("workflow", "wname") and m is not None:
            wname = m.group("wname") or INVALID
            names = [("WORKFLOW", "workflow"), ("NAME", wname), ("LPAR", "("), ("RPAR", ")")]
            self.broken.add(line_no)
        elif kind == "return":
            names = [("RETURN", "return")]
        elif kind == "step" and m is not None:
            names = [("NAME", m.group("step")), ("EQUAL", "=")]
            each = _FOR_BLOCK.match(m.group("rhs") or "")
            if each:
                names += _for_block(each.group("var"))
            else:
                names += [("NAME", INVALID)]
        elif kind == "each" and m is not None:  # a `for each` block that binds no name
            names = [("NAME", INVALID), ("EQUAL", "="), *_for_block(m.group("var"))]
        elif kind == "then":  # an `if` line whose keyword is misspelt
            names = [("IF", "if"), ("TRUE", "true"), ("THEN", "then")]
        else:
            return None
        toks = [
            Token(t, v, 0, line_no, col, line_no, col + len(line.rstrip()), 0) for t, v in names
        ]
        try:
            for t in toks:
                ip.feed_token(t)
        except UnexpectedToken:
            return None
        return toks

    def _track_blocks(self, toks: list[Token]) -> None:
        """Keep the stack of open blocks, to name the one a missing `end` leaves open."""
        types = [t.type for t in toks]
        if not types:
            return
        first = types[0]
        line = toks[0].line or 0
        if first in ("WORKFLOW", "IF", "REPEAT"):
            self.blocks.append((str(toks[0]), line))
        elif first == "NAME" and "FOR" in types and "COLON" not in types:
            self.blocks.append(("for each", line))
        elif first in ("END", "UNTIL") and self.blocks:
            self.blocks.pop()

    def _finish(self, ip: InteractiveParser) -> A.Module:
        """Close every block left open at the end of the file, then build the tree."""
        last_line = self.text.count("\n")
        for _ in range(200):
            try:
                module: A.Module = ip.feed_eof()
                return module
            except UnexpectedToken:
                pass
            kind, opened = self.blocks.pop() if self.blocks else ("block", 0)
            closer = "until true" if kind == "repeat" else "end"
            self.diags.append(unclosed(kind, opened, closer, last_line, self.file))
            self.failed.add(last_line)
            names = [("UNTIL", "until"), ("TRUE", "true")] if kind == "repeat" else [("END", "end")]
            names.append(("_NL", "\n"))
            try:
                for t, v in names:
                    ip.feed_token(Token(t, v, 0, last_line, 1, last_line, 1, 0))
            except UnexpectedToken:
                break
        return A.new(A.Module)
