"""Analysis that never misreports (issue 16, item 6), on scripted models whose every reply is
known: `--prune` never writes a flow that scores below the original on the measured rows, a
removal that makes rows fail "breaks the flow" (with its failed and error counts) instead of
being credited an effect computed from zeros, and one flow's failure in `rank` is that flow's
error, not the ranking's end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from treadle.cli.attribute_cmds import render as render_attribution
from treadle.cli.rank_cmds import render as render_ranking
from treadle.errors import ModelError
from treadle.eval.evaluate import evaluate
from treadle.eval.options import RunConfig
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session
from treadle.studies.attribution import AttributionReport, attribute
from treadle.studies.ranking import RankSettings, rank

PROCESS = "process"

# ---------------------------------------------------------------- prune

SOLVE = """\
workflow solve(question: text) -> answer: text
  draft = generate from "Draft an answer: {question}"
  fixed = revise draft using "check every step" for question
  answer = format fixed for question
end
"""

#: the draft a question's tag makes, and which later step turns it into "right"
DRAFTS = {"hopeless": "wrong", "needs-fix": "fixme", "needs-format": "formatme",
          "needs-either": "eitherme"}  # fmt: skip
FIXED_BY_REVISE = {"fixme", "eitherme"}
FIXED_BY_FORMAT = {"formatme", "eitherme"}


def solver(messages: list[Message]) -> str:
    """generate drafts by the question's tag; revise and format fix the drafts they fix and
    pass everything else through unchanged."""
    prompt = messages[-1].content
    if prompt.startswith("Draft an answer"):
        tag = prompt.rsplit(" ", 1)[-1]
        return DRAFTS.get(tag, "right")
    if prompt.startswith("Improve the solution"):
        m = re.search(r"Current solution:\n(.*?)\n\nFeedback", prompt, re.S)
        assert m, prompt
        return "right" if m.group(1) in FIXED_BY_REVISE else m.group(1)
    m = re.search(r"Solution:\n(.*?)\n\nFinal answer", prompt, re.S)
    assert m, prompt
    return "right" if m.group(1) in FIXED_BY_FORMAT else m.group(1)


def questions(*tags: str) -> list[dict[str, str]]:
    """Eight rows: the given tags first, plain questions (drafted right) after."""
    padded = [*tags, *["plain"] * (8 - len(tags))]
    return [{"id": f"q{i}", "question": f"question {i} {t}", "target": "right"}
            for i, t in enumerate(padded)]  # fmt: skip


async def _prune(
    tmp_path: Path, rows: list[dict[str, str]]
) -> tuple[Path, Path, AttributionReport]:
    flow = tmp_path / "solve.flow"
    flow.write_text(SOLVE)
    out = tmp_path / "pruned.flow"
    async with Session(model=ScriptedBackend(solver), cache=False, sandbox=PROCESS) as session:
        rep = await attribute(
            flow, rows, scorer="exact", session=session, work_dir=tmp_path / "work", prune=out,
            run=RunConfig(traces=False),
        )  # fmt: skip
    return flow, out, rep


async def _score(flow: Path, rows: list[dict[str, str]]) -> float | None:
    async with Session(model=ScriptedBackend(solver), cache=False, sandbox=PROCESS) as session:
        rep = await evaluate(flow, rows, scorer="exact", session=session,
                             run=RunConfig(traces=False))  # fmt: skip
    return rep.mean


async def test_prune_backs_off_every_removal_that_lowers_the_score(tmp_path: Path) -> None:
    """revise alone carries one row, format alone another: each looks dispensable (its
    interval includes 0), together they cost two of the seven successes. Before the back-off
    the written flow scored 0.625 against the original's 0.875."""
    rows = questions("hopeless", "needs-fix", "needs-format")
    flow, out, rep = await _prune(tmp_path, rows)
    assert rep.baseline == pytest.approx(0.875)
    units = {u.unit: u for u in rep.units}
    for name in ("solve.fixed", "solve.answer"):  # each a candidate: its interval includes 0
        low = units[name].ci_low
        assert units[name].effect == pytest.approx(0.125) and low is not None and low <= 0
    prune = rep.prune
    assert prune is not None
    assert prune.removed == []
    assert list(prune.backed_off) == ["solve.answer", "solve.fixed"]  # the latest first
    assert "0.625 against the original's 0.875" in prune.backed_off["solve.answer"]
    assert "0.750 against the original's 0.875" in prune.backed_off["solve.fixed"]
    assert out.read_text() == flow.read_text()  # in the end the original itself
    assert prune.score == pytest.approx(0.875) == prune.baseline
    # the written flow, scored afresh on the same rows, does not score lower
    assert await _score(out, rows) == pytest.approx(0.875)
    text = render_attribution(rep)
    assert "backed off solve.answer: the pruned flow scored 0.625" in text


async def test_prune_backs_off_only_the_latest_removal_when_that_suffices(
    tmp_path: Path,
) -> None:
    """revise and format both fix the same row: either goes alone, not both together."""
    rows = questions("hopeless", "needs-either")
    _flow, out, rep = await _prune(tmp_path, rows)
    prune = rep.prune
    assert prune is not None
    assert prune.removed == ["solve.fixed"]
    assert list(prune.backed_off) == ["solve.answer"]
    text = out.read_text()
    assert "fixed = draft" in text and "format" in text and "revise" not in text
    assert prune.score == pytest.approx(0.875) == prune.baseline
    assert await _score(out, rows) == pytest.approx(0.875)


# ---------------------------------------------------------------- breaking the flow

CHECK = """\
workflow check(q: text) -> answer: bool
  draft = generate from "Write a JSON Schema for: {q}"
  schema = revise draft using "make it valid JSON" for q
  verdict = validate q against schema
  answer = verdict.valid
end
"""


def schema_writer(messages: list[Message]) -> str:
    """A draft that is no JSON (validate fails the step on it); revise makes it a schema."""
    if messages[-1].content.startswith("Write a JSON Schema"):
        return "a string"
    return '{"type": "string"}'


async def test_a_removal_that_makes_every_row_fail_breaks_the_flow(tmp_path: Path) -> None:
    """Without revise, validate gets a schema that is no JSON and fails every row. Before, the
    report said "helps +0.750, share 100%" from the four zeros."""
    flow = tmp_path / "check.flow"
    flow.write_text(CHECK)
    rows = [{"id": f"r{i}", "q": json.dumps("s") if i < 3 else "5", "target": True}
            for i in range(4)]  # fmt: skip
    async with Session(model=ScriptedBackend(schema_writer), cache=False, sandbox=PROCESS) as s:
        rep = await attribute(flow, rows, scorer="exact", session=s, work_dir=tmp_path / "w",
                              run=RunConfig(traces=False))  # fmt: skip
    assert rep.baseline == pytest.approx(0.75)
    schema = next(u for u in rep.units if u.unit == "check.schema")
    assert schema.sign == "breaks"  # before: "helps", effect +0.750, share 100%
    assert (schema.failed, schema.errors) == (4, 0)
    assert schema.effect is None and schema.share is None and schema.rank is None
    assert all(c.share < 1.0 for c in rep.cumulative)  # it carries no share it did not earn
    verdict = next(u for u in rep.units if u.unit == "check.verdict")
    assert (verdict.sign, verdict.failed, verdict.rank) == ("none", 0, 1)
    text = render_attribution(rep)
    header = next(line for line in text.splitlines() if line.startswith("rank"))
    assert header.split()[-2:] == ["failed", "errors"]
    row = next(line for line in text.splitlines() if line.split()[1:2] == ["check.schema"])
    assert row.split()[0] == "-" and "breaks" in row.split() and row.split()[-2:] == ["4", "0"]
    assert "breaks the flow" in text and "check.schema: 4 failed, 0 errors" in text


def failing_formatter(messages: list[Message]) -> str:
    """The format step's model call fails on an unrevised draft (an error, not a score)."""
    prompt = messages[-1].content
    if prompt.startswith("Draft an answer"):
        return "raw"
    if prompt.startswith("Improve the solution"):
        return "right"
    if "Solution:\nraw\n" in prompt:
        raise ModelError("the server reset the connection")
    return "right"


async def test_a_removal_that_leaves_no_row_scored_breaks_the_flow(tmp_path: Path) -> None:
    flow = tmp_path / "solve.flow"
    flow.write_text(SOLVE)
    rows = questions()[:4]
    backend = ScriptedBackend(failing_formatter)
    async with Session(model=backend, cache=False, sandbox=PROCESS) as s:
        rep = await attribute(flow, rows, scorer="exact", session=s, work_dir=tmp_path / "w",
                              run=RunConfig(traces=False))  # fmt: skip
    fixed = next(u for u in rep.units if u.unit == "solve.fixed")
    assert fixed.sign == "breaks"  # before: no sign, "no row ran both with and without it"
    assert (fixed.failed, fixed.errors, fixed.rows) == (0, 4, 0)
    assert fixed.effect is None


# ---------------------------------------------------------------- rank goes on

#: rows each flow solves (of 10)
SOLVES = {"V1": 8, "V2": 5, "V3": 9, "V4": 6, "V5": 7}


def ranker(messages: list[Message]) -> str:
    """Vk solves its first SOLVES[k] rows; the prediction for V4 fails at the server and the
    one for V3 is readable."""
    prompt = messages[-1].content
    if prompt.startswith("You predict"):
        new = prompt.split("The new workflow:", 1)[1]
        k = re.search(r"V\d", new).group(0)  # type: ignore[union-attr]
        if k == "V4":
            raise ModelError("the optimizer model's server returned 500")
        return "0.8"
    m = re.match(r"(V\d): row (\d+)", prompt)
    assert m, prompt
    return "yes" if int(m.group(2)) < SOLVES[m.group(1)] else "no"


async def test_rank_records_one_flows_failure_and_ranks_the_others(tmp_path: Path) -> None:
    """A warm-up flow that does not compile, a candidate that does not compile and a
    candidate whose self-prediction fails: each is that flow's error; before, the first of
    them ended the ranking (exit 3 for the prediction)."""
    paths = {}
    for k in ("V1", "V2", "V3", "V4"):
        paths[k] = tmp_path / f"{k}.flow"
        paths[k].write_text(
            f'workflow f(q: text) -> answer: text\n  answer = generate from "{k}: {{q}}"\nend\n'
        )
    for k in ("W0", "V6"):  # neither compiles
        paths[k] = tmp_path / f"{k}.flow"
        paths[k].write_text("workflow f(q: text) -> answer: text\n  answer = nonsense from\nend\n")
    rows = [{"id": f"r{i}", "q": f"row {i}", "target": "yes"} for i in range(10)]
    async with Session(model=ScriptedBackend(ranker), cache=False, sandbox=PROCESS) as s:
        rep = await rank(
            [paths[k] for k in ("V1", "W0", "V2", "V3", "V4", "V6")], rows, session=s,
            warmup_flows=[paths["V1"], paths["W0"], paths["V2"]], scorer="exact",
            settings=RankSettings(few_ratio=0.5, min_rows=5), work_dir=tmp_path / "w",
            run=RunConfig(traces=False),
        )  # fmt: skip
    by = {Path(f.path).stem: f for f in rep.flows}
    assert set(by) == {"V1", "W0", "V2", "V3", "V4", "V6"}
    assert by["W0"].warmup and by["W0"].error and "evaluation failed" in by["W0"].error
    assert by["W0"].score is None and by["W0"].rank is None
    assert by["V6"].error and "evaluation failed" in by["V6"].error and by["V6"].rank is None
    v4 = by["V4"]
    assert v4.error and "self-prediction failed" in v4.error and "500" in v4.error
    assert v4.s_pred is None and v4.alpha == 1.0 and v4.score == v4.s_few is not None
    assert by["V3"].error is None and by["V3"].s_pred == 0.8
    assert by["V1"].score == pytest.approx(0.8) and by["V2"].score == pytest.approx(0.5)
    assert sorted(f.rank for f in rep.flows if f.rank) == [1, 2, 3, 4]
    # the warm-up that failed spends nothing and does not dilute the estimate of a full run
    assert rep.tokens_full == by["V1"].tokens + by["V2"].tokens + round(
        (by["V1"].tokens + by["V2"].tokens) / 2 * 3
    )
    text = render_ranking(rep)
    assert "error: V4.flow: the self-prediction failed" in text
    assert "error: W0.flow: the evaluation failed" in text
