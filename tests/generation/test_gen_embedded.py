"""Constrained, scope-aware generation on the embedded SmolLM2 (llguidance masks llama.cpp's
logits): over several tasks and seeds every candidate decodes to the end and parses, and none
has an undefined name, unknown operator/preposition/option or unknown template name. The
done-when command prints a compiled flow."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from treadle.compiler import check_source, compile_source
from treadle.generation import generate
from treadle.runtime.models.spec import load_model

pytestmark = [pytest.mark.slow, pytest.mark.model]

TASKS = [
    "Answer a math word problem with a single number",
    "Summarise each of several documents and combine the summaries",
]
NEVER = {"E001", "E002", "E101", "E201", "E202", "E205", "E401"}


async def test_constrained_output_always_parses_and_stays_in_scope() -> None:
    backend = load_model(None, n_threads=1)  # as `generate` loads it (GENERATION_THREADS)
    try:
        for task in TASKS:
            result = await generate(task, model=backend, n=2, repairs=0, seed=11, max_statements=4)
            assert result.path == "llguidance-scoped"
            for c in result.candidates:
                assert c.attempts[0].codes != ["undecoded"], c.diagnostics
                codes = {d.code for d in check_source(c.text) if d.is_error}
                assert not codes & NEVER, (c.text, codes)
                assert c.grammars >= 4 and c.mask_seconds > 0
    finally:
        await backend.aclose()


def test_done_when_command_prints_a_compiled_flow() -> None:
    import treadle.cli

    task = "Solve a grade-school math problem and double-check it with code"
    res = CliRunner().invoke(treadle.cli.app, ["generate", task])
    assert res.exit_code == 0, res.output
    program = compile_source(res.stdout)
    assert program.entry
    assert "# decoding: llguidance-scoped" in res.stderr
