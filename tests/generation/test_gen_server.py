"""The OpenAI-compatible path against llama-cpp-python's own server on 127.0.0.1: with
`?grammar=gbnf` the one-piece program grammar goes with the request, so the reply parses and
names only known operators, prepositions and options."""

from __future__ import annotations

import pytest

from treadle.compiler import check_source
from treadle.generation import generate

pytestmark = [pytest.mark.slow, pytest.mark.model]


async def test_server_grammar_path(gen_llama_server: str) -> None:
    spec = f"openai:{gen_llama_server}#smollm2?grammar=gbnf"
    result = await generate(
        "Answer a math word problem with a single number", model=spec, repairs=0,
        max_statements=4, max_tokens=200,
    )  # fmt: skip
    assert result.path == "server-gbnf"
    cand = result.candidates[0]
    codes = {d.code for d in check_source(cand.text) if d.is_error}
    assert not codes & {"E001", "E002", "E201", "E202", "E205"}, (cand.text, codes)
    assert cand.text.startswith("workflow ")
