"""The VS Code extension's TextMate grammar scopes every keyword and string of the examples.

The grammar's regular expressions are written in the subset Python's `re` shares with
Oniguruma, so this test applies them: each keyword token the real lexer finds in
`examples/*.flow` must be matched, exactly, by one keyword rule, and each string token must be
opened by a string rule's `begin` and closed by its `end` exactly where the token ends (escapes
skipped as TextMate skips them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from treadle.compiler.parsing.lalr import lark_parser

ROOT = Path(__file__).resolve().parents[2]
GRAMMAR = json.loads(
    (ROOT / "editors" / "vscode" / "syntaxes" / "flow.tmLanguage.json").read_text()
)
REPO = GRAMMAR["repository"]
EXAMPLES = sorted((ROOT / "examples").rglob("*.flow"))
LARK = (ROOT / "treadle" / "grammar" / "flow.lark").read_text()


def keyword_rules() -> list[re.Pattern[str]]:
    rules = [p["match"] for p in REPO["keywords"]["patterns"]]
    rules += [REPO["constants"]["match"], REPO["types"]["match"]]
    return [re.compile(r) for r in rules]


def keyword_at(text: str, start: int, end: int) -> bool:
    return any((m := r.match(text, start)) is not None and m.end() == end for r in keyword_rules())


def string_end(text: str, start: int, rule: str) -> int | None:
    """Where the string rule `rule` opened at `start` closes, as TextMate reads it: at each
    point the earliest match of the end pattern or an escape wins (the end on a tie)."""
    begin = re.compile(REPO[rule]["begin"]).match(text, start)
    if begin is None:
        return None
    end_rx, escape = re.compile(REPO[rule]["end"]), re.compile(REPO["escape"]["match"])
    pos = begin.end()
    while True:
        e, x = end_rx.search(text, pos), escape.search(text, pos)
        if e is None:
            return None
        if x is not None and x.start() < e.start():
            pos = x.end()
            continue
        return e.end()


def test_every_keyword_of_the_grammar_has_a_rule() -> None:
    words = set(re.findall(r'"([a-z]+)"', LARK))
    assert words, "no keyword literals found in flow.lark"
    missing = [w for w in sorted(words) if not keyword_at(w, 0, len(w))]
    assert missing == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_every_keyword_and_string_of_an_example_is_scoped(path: Path) -> None:
    text = path.read_text()
    keywords = strings = 0
    for tok in lark_parser().lex(text):
        start, end = tok.start_pos, tok.end_pos
        assert start is not None and end is not None
        if tok.type == "STRING":
            strings += 1
            assert string_end(text, start, "string") == end, (tok.line, tok.value)
        elif tok.value.isalpha() and tok.type == tok.value.upper():
            keywords += 1
            assert keyword_at(text, start, end), (tok.line, tok.value)
    assert keywords > 0


def test_triple_quoted_strings_span_lines_and_win_over_plain_ones() -> None:
    text = 'x = generate from """Solve:\n  "{problem}" \\""" not yet\n"""\n'
    start = text.index('"""')
    end = string_end(text, start, "triple-string")
    assert end == len(text) - 1  # the closing `"""`, past the quote and the escaped quotes
    order = [p["include"] for p in GRAMMAR["patterns"]]
    assert order.index("#triple-string") < order.index("#string")


def test_comments_numbers_and_interpolations() -> None:
    assert re.compile(REPO["comment"]["match"]).fullmatch("# a comment")
    assert re.compile(REPO["number"]["match"]).fullmatch("0.7")
    interp = re.compile(REPO["interpolation"]["match"])
    assert interp.fullmatch("{report.feedback}") and not interp.fullmatch("{1}")
    line = '  s = generate from "a {b} c"'
    assert string_end(line, line.index('"'), "string") == len(line)
