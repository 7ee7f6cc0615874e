"""`treadle generate` on a scripted model (free decoding): the repair loop fixes diagnostics
it is shown, candidates are de-duplicated by IR hash, each gets a cost bound, the dry run runs
them, and a library's capabilities reach the prompt and the output's `use` line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from treadle.compiler import compile_source
from treadle.generation import generate
from treadle.runtime.models.scripted import ScriptedBackend

DATA = Path(__file__).parent / "data"

BAD = """```flow
workflow solve(problem: text) -> answer: number
  draft = generate from "Solve: {problem}"
  answer = extract number from drafts
end
```"""
GOOD = """workflow solve(problem: text) -> answer: number
  draft = generate from "Solve: {problem}"
  answer = extract number from draft
end
"""
# the same program, laid out differently and commented
GOOD_AGAIN = """Here it is:
workflow solve(problem: text) -> answer: number
  # first a draft
  draft = generate from "Solve: {problem}"
  answer = extract number from draft
end
"""
OTHER = """workflow solve(problem: text) -> answer: number
  drafts = generate from "Solve: {problem}" with samples 3
  numbers = for each item in drafts: extract number from item
  answer = vote numbers
end
"""


async def test_repair_fixes_the_diagnostics_it_is_shown() -> None:
    model = ScriptedBackend([BAD, GOOD])
    result = await generate("Solve a math problem", model=model, repairs=1)
    cand = result.candidates[0]
    assert result.path == "free"
    assert cand.status == "compiled" and cand.repairs == 1
    assert [a.codes for a in cand.attempts] == [["E101"], []]
    repair_turn = model.calls[1].messages[-1].content
    assert '"code": "E101"' in repair_turn and "drafts" in repair_turn
    assert model.calls[1].messages[-2].role == "assistant"
    assert result.flow == GOOD


async def test_without_repairs_the_error_stays() -> None:
    result = await generate("Solve a math problem", model=ScriptedBackend([BAD]), repairs=0)
    assert result.candidates[0].status == "errors"
    assert result.chosen is None and result.flow is None
    assert {d["code"] for d in result.candidates[0].diagnostics} == {"E101"}


async def test_dedupe_cost_and_dry_run() -> None:
    model = ScriptedBackend([GOOD, GOOD_AGAIN, OTHER])
    result = await generate("Solve a math problem", model=model, n=3, dry_run_candidates=True)
    a, b, c = result.candidates
    assert a.ir_hash == b.ir_hash != c.ir_hash
    assert b.duplicate_of == 0 and a.duplicate_of is None and c.duplicate_of is None
    assert a.cost_text == "≤ 1 model call, ≤ 0 sandbox runs"
    assert c.cost is not None and c.cost.bound() == (3, 0)
    assert a.dry_run is not None and a.dry_run.ok and a.dry_run.model_calls == 1
    assert c.dry_run is not None and c.dry_run.ok and c.dry_run.model_calls == 3
    assert b.dry_run is None  # a duplicate is not run again
    assert result.chosen == 0  # fewest repairs, then the cheapest bound


async def test_library_capabilities_in_prompt_and_use_line(tmp_path: Path) -> None:
    flow = """workflow solve(problem: text) -> answer: number
  worked = answer for problem
  claimed = extract number from worked.answer
  answer = verify_number problem with claimed claimed
end
"""
    model = ScriptedBackend([flow])
    result = await generate(
        "Solve a grade-school math problem and double-check it with code",
        model=model,
        library=[DATA / "library.flow"],
        base_dir=DATA,
    )
    assert result.capabilities[0] == "verify_number"
    system = model.calls[0].messages[0].content
    assert "verify_number <problem: text> with claimed <number> -> number" in system
    assert "extract number from <text: text> -> number" in system  # from the registry
    assert result.flow is not None and result.flow.startswith('use "library.flow"\n')
    compile_source(result.flow, base_dir=DATA)


def test_cli_json(tmp_path: Path) -> None:
    import treadle.cli

    out = tmp_path / "solve.flow"
    spec = "scripted:" + json.dumps([GOOD, OTHER])
    res = CliRunner().invoke(
        treadle.cli.app,
        ["generate", "Solve a math problem", "--model", spec, "-n", "2", "--dry-run",
         "--format", "json", "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [c["status"] for c in data["candidates"]] == ["compiled", "compiled"]
    assert all(c["dry_run"]["ok"] for c in data["candidates"])
    assert out.read_text() == GOOD


def test_cli_text_reports_each_candidate() -> None:
    import treadle.cli

    spec = "scripted:" + json.dumps([BAD, BAD])
    res = CliRunner().invoke(treadle.cli.app, ["generate", "Solve", "--model", spec])
    assert res.exit_code == 1
    assert "# decoding: free" in res.stderr
    assert "# candidate 1: errors (E101), 1 repair(s)" in res.stderr
