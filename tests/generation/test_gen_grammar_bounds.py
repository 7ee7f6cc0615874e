"""Issue 21 §4: the generation grammars bound what can run on, so constrained decoding always
ends in a program: a prompt string is made to close after `STRING_CHARS` characters, and an
`entry_point` is an identifier, never prose. Checked with llguidance itself, on bytes."""

from __future__ import annotations

import llguidance
import pytest

from treadle.generation.decoding.grammar_ir import Grammar
from treadle.generation.decoding.scope_grammar import (
    STRING_CHARS,
    Scope,
    program_grammar,
    statement_grammar,
)
from treadle.generation.decoding.vocabulary import vocabulary
from treadle.runtime.types import Type

TEXT, CODE = Type(kind="text"), Type(kind="code")
BYTES = llguidance.LLTokenizer("byte")


def _matcher(g: Grammar) -> llguidance.LLMatcher:
    return llguidance.LLMatcher(BYTES, llguidance.LLMatcher.grammar_from_lark(g.lark()))


def _accepted(g: Grammar, text: str) -> int:
    """How many bytes of `text` the grammar lets through."""
    tokens = BYTES.tokenize_str(text)
    return int(_matcher(g).try_consume_tokens(tokens))


STEP = statement_grammar(vocabulary(), Scope({"problem": TEXT}), {"answer": TEXT}, remaining=3)


@pytest.mark.parametrize("g", [STEP, program_grammar(vocabulary(), [])], ids=["step", "program"])
def test_a_long_run_of_string_characters_is_forced_to_close(g: Grammar) -> None:
    head = (
        '  answer = generate from "'
        if g is STEP
        else 'workflow w(q: text) -> a: text\n  a = generate from "'
    )
    m = _matcher(g)
    assert m.consume_tokens(BYTES.tokenize_str(head + "a" * (STRING_CHARS - 1)))
    assert not m.compute_ff_bytes()  # the string may still go on...
    m.consume_tokens(BYTES.tokenize_str("a"))
    assert m.compute_ff_bytes().startswith(b'"')  # ...until it must close
    assert _accepted(g, head + "a" * (STRING_CHARS + 1)) == len(head) + STRING_CHARS


def test_an_entry_point_is_an_identifier() -> None:
    g = statement_grammar(vocabulary(), Scope({"problem": TEXT}), {"solution": CODE}, remaining=3)
    head = "  solution = write code for problem with entry_point "
    assert _accepted(g, head + '"is_prime"\n') == len(head) + len('"is_prime"\n')
    prose = head + '"is prime, a function that'
    assert _accepted(g, prose) == len(head) + len('"is')
    # an input of the workflow may still give it
    g = statement_grammar(
        vocabulary(), Scope({"problem": TEXT, "fn": TEXT}), {"solution": CODE}, remaining=3
    )
    assert _accepted(g, head + "fn\n") == len(head) + 3
