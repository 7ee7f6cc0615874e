"""Counterfactual attribution on a scripted model: effects, shares, cache accounting and prune
all have exact, hand-computed values (the model's answers depend on known steps only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from treadle.compiler import compile_file
from treadle.compiler.ablate import AblationError, ablate, list_units
from treadle.runtime.cache import ModelCache
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session
from treadle.studies.attribution import attribute, attribute_library

FLOW = """\
workflow solve(question: text) -> answer: text
  draft = generate from "Draft an answer: {question}"
  fixed = revise draft using "check every step" for question
  answer = format fixed for question
end
"""

ROWS = [
    {"id": f"q{i}", "question": f"question {i}" + (" fixable" if i < 3 else ""), "target": "right"}
    for i in range(4)
]


def model(messages: list[Message]) -> str:
    """generate → "wrong"; revise → "right" when the problem is fixable; format → the solution
    unchanged (so `format` carries nothing and `revise` carries every success)."""
    prompt = messages[-1].content
    if prompt.startswith("Draft an answer"):
        return "wrong"
    if prompt.startswith("Improve the solution"):
        return "right" if "fixable" in prompt else "wrong"
    m = re.search(r"Solution:\n(.*?)\n\nFinal answer", prompt, re.S)
    assert m, prompt
    return m.group(1).strip()


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    p = tmp_path / "solve.flow"
    p.write_text(FLOW)
    return p


async def test_effects_shares_and_cache_accounting(flow: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(model)
    async with Session(model=backend, cache=ModelCache(tmp_path / "cache")) as s:
        rep = await attribute(
            flow, ROWS, scorer="exact", session=s, work_dir=tmp_path / "work",
            report=tmp_path / "attr.json",
        )  # fmt: skip
    assert rep.baseline == pytest.approx(0.75)
    by_unit = {u.unit: u for u in rep.units}
    assert set(by_unit) == {"solve.draft", "solve.fixed", "solve.answer"}
    draft, fixed, answer = by_unit["solve.draft"], by_unit["solve.fixed"], by_unit["solve.answer"]
    assert not draft.removable and "source" in draft.reason and draft.effect is None
    # without revise the draft "wrong" passes through: the 3 fixable rows are lost
    assert fixed.effect == pytest.approx(0.75)
    assert fixed.share == pytest.approx(1.0)
    assert fixed.sign == "helps" and fixed.ci_low is not None and fixed.ci_low > 0
    assert fixed.rank == 1
    assert answer.effect == pytest.approx(0.0) and answer.sign == "none" and answer.share == 0.0
    assert rep.cumulative[0].share == pytest.approx(1.0)
    # calls: baseline 4 rows × 3; without revise, generate is cached and format misses on the 3
    # rows whose solution changed; without format, both upstream calls are cached
    assert rep.model_calls == 12 + 3 + 0
    assert rep.model_calls_naive == 12 + 8 + 8
    assert len(backend.calls) == rep.model_calls
    data = json.loads((tmp_path / "attr.json").read_text())
    for key in ("units", "baseline", "model_calls", "model_calls_naive"):
        assert key in data
    for key in ("unit", "kind", "removable", "reason", "effect", "ci_low", "ci_high", "share"):
        assert key in data["units"][0]


async def test_prune_removes_the_useless_step_and_keeps_the_useful_one(
    flow: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pruned.flow"
    async with Session(model=ScriptedBackend(model), cache=ModelCache(tmp_path / "c")) as s:
        rep = await attribute(flow, ROWS, session=s, work_dir=tmp_path / "work", prune=out)
    assert rep.prune is not None
    assert rep.prune.removed == ["solve.answer"]
    text = out.read_text()
    assert "answer = fixed" in text and "revise" in text and "format" not in text
    compile_file(out)
    assert rep.prune.score == pytest.approx(0.75) == rep.prune.baseline
    assert rep.prune.model_calls == 8 < rep.prune.model_calls_baseline == 12


def test_ill_typed_removal_is_reported_not_run(tmp_path: Path) -> None:
    p = tmp_path / "n.flow"
    p.write_text(
        "workflow n(q: text) -> answer: number\n"
        '  reply = generate from "{q}"\n'
        "  answer = extract number from reply\n"
        "end\n"
    )
    program = compile_file(p)
    units = list_units(program, p.read_text())
    extract = next(u for u in units if u.target == "extract number")
    assert extract.removable  # declared removable: its text passes through ...
    with pytest.raises(AblationError, match="ill-typed"):  # ... but text is not a number
        ablate(program, p.read_text(), extract.nodes, path=p)


def test_constant_and_first_item_stand_ins_rewrite_the_graph() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "gsm8k_self_consistency.flow"
    text = path.read_text()
    program = compile_file(path)
    units = {u.target: u for u in list_units(program, text)}
    ab = ablate(program, text, units["ensemble"].nodes, path=path)
    assert ab.text is None  # a named list's first item has no .flow syntax: a Graph IR rewrite
    dumped = ab.program.model_dump_json()
    assert '"ensemble"' not in dumped and '"path":["0"]' in dumped.replace(" ", "")


def test_call_units_follow_the_same_name_and_type_rule() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "use_capabilities.flow"
    units = list_units(compile_file(path), path.read_text(), by="call")
    assert {u.unit for u in units} == {"verify_number", "json_answer", "run_and_fix"}
    assert all(not u.removable and "same name and type" in u.reason for u in units)


async def test_by_operator_removes_every_step_of_it(flow: Path, tmp_path: Path) -> None:
    async with Session(model=ScriptedBackend(model), cache=ModelCache(tmp_path / "c")) as s:
        rep = await attribute(flow, ROWS, by="operator", session=s, work_dir=tmp_path / "w")
    units = {u.unit: u for u in rep.units}
    assert set(units) == {"generate", "revise", "format"}
    assert units["revise"].effect == pytest.approx(0.75) and units["format"].effect == 0.0
    assert not units["generate"].removable


LIB = """\
workflow fix(answer: text, question: text) -> answer: text
  answer = revise answer using "check every step" for question
end

workflow tidy(answer: text, question: text) -> answer: text
  answer = format answer for question
end
"""


async def test_library_credits_each_capability_across_flows(tmp_path: Path) -> None:
    (tmp_path / "lib.flow").write_text(LIB)
    one = tmp_path / "one.flow"
    one.write_text(
        'use "lib.flow"\n\nworkflow one(question: text) -> answer: text\n'
        '  draft = generate from "Draft an answer: {question}"\n'
        "  fixed = fix draft with question question\n"
        "  answer = tidy fixed with question question\n"
        "end\n"
    )
    two = tmp_path / "two.flow"
    two.write_text(
        'use "lib.flow"\n\nworkflow two(question: text) -> answer: text\n'
        '  draft = generate from "Draft an answer: {question}"\n'
        "  answer = tidy draft with question question\n"
        "end\n"
    )
    async with Session(model=ScriptedBackend(model), cache=ModelCache(tmp_path / "c")) as s:
        rep = await attribute_library(
            tmp_path / "lib.flow", [one, two], ROWS, session=s, work_dir=tmp_path / "w"
        )
    units = {u.unit: u for u in rep.units}
    assert set(units) == {"fix", "tidy"}
    # fix is called by one flow only (its 3 successes depend on it); tidy by both, and
    # removing it changes nothing (format passes the answer through unchanged)
    assert units["fix"].flows == [str(one)] and units["fix"].rows == 4
    assert units["fix"].effect == pytest.approx(0.75) and units["fix"].share == 1.0
    assert units["tidy"].flows == [str(one), str(two)] and units["tidy"].rows == 8
    assert units["tidy"].effect == 0.0
    assert rep.baseline == pytest.approx((0.75 + 0.0) / 2)
    assert rep.model_calls < rep.model_calls_naive
