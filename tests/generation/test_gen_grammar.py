"""The per-request grammars: llguidance accepts every one, and anything they allow (sampled at
random, as a model might) parses and never has an undefined name (E101), an unknown operator,
preposition or option (E201/E202/E205) or an unknown template name (E401)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from grammar_sampler import sample

from treadle.compiler import check_source
from treadle.generation.decoding.scope_grammar import program_grammar
from treadle.generation.decoding.vocabulary import load_capabilities, vocabulary
from treadle.generation.decoding.writer import ProgramWriter

LIB = Path(__file__).parents[2] / "examples" / "lib" / "capabilities.flow"
FORBIDDEN = {"E001", "E002", "E101", "E201", "E202", "E205", "E401"}


def _write(vocab: dict, rng: random.Random, max_statements: int = 6) -> tuple[str, list]:
    writer = ProgramWriter(vocab, max_statements=max_statements)
    grammars = []
    while (g := writer.grammar()) is not None:
        grammars.append(g)
        writer.advance(sample(g, rng))
    return writer.text, grammars


@pytest.mark.parametrize("with_library", [False, True])
def test_sampled_programs_never_have_scope_errors(with_library: bool) -> None:
    caps = load_capabilities([LIB]) if with_library else []
    vocab = vocabulary(caps)
    use = f'use "{LIB}"\n' if with_library else ""
    codes: dict[str, int] = {}
    for seed in range(60):
        text, _ = _write(vocab, random.Random(seed))
        diags = [d for d in check_source(use + text, "<sampled>") if d.is_error]
        for d in diags:
            codes[d.code] = codes.get(d.code, 0) + 1
        assert not {d.code for d in diags} & FORBIDDEN, (text, [d.render() for d in diags])
    # type fit is carried as far as the grammar can; what is left is rare
    assert sum(codes.values()) <= 6, codes


def test_end_only_once_outputs_are_bound_and_the_bound_holds() -> None:
    vocab = vocabulary()
    for seed in range(30):
        text, _grammars = _write(vocab, random.Random(seed), max_statements=3)
        body = text.splitlines()[1:]
        assert body[-1] == "end" and len(body) - 1 <= 3
        assert not [d for d in check_source(text) if d.code == "E601"]


def test_llguidance_accepts_every_grammar() -> None:
    import llguidance

    vocab = vocabulary(load_capabilities([LIB]))
    grammars = []
    for seed in range(5):
        grammars += _write(vocab, random.Random(seed))[1]
    grammars.append(program_grammar(vocab, [str(LIB)]))
    for g in grammars:
        err = llguidance.LLMatcher.validate_grammar(
            llguidance.LLMatcher.grammar_from_lark(g.lark())
        )
        assert err == "" or err.startswith("WARNING"), (err, g.lark()[:2000])


def test_program_grammar_samples_parse() -> None:
    vocab = vocabulary()
    g = program_grammar(vocab, [])
    for seed in range(30):
        text = sample(g, random.Random(seed))
        codes = {d.code for d in check_source(text) if d.is_error}
        assert not codes & {"E001", "E002", "E201", "E202", "E205"}, text
