"""One `Session` serves every run of an evaluation and of a study: one sandbox pool, one backend
per spec, one compile per evaluation; and the cache key holds the script of a scripted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import treadle.compiler
import treadle.runtime.models.spec as spec_module
import treadle.runtime.sandbox as sandbox_module
from treadle.errors import InputError, TreadleError
from treadle.eval.evaluate import evaluate
from treadle.eval.options import RunConfig, Scoring
from treadle.flow import Flow
from treadle.runtime.cache import ModelCache
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import SandboxConfig, Session
from treadle.studies.attribution import attribute

#: a model call and a sandbox run in every row, and two removable steps for attribution
FLOW = """\
workflow solve(problem: text) -> answer: number
  draft = generate from "Think about: {problem}"
  checked = program for problem
  answer = checked.value
end
"""
PROGRAM = "```python\ndef solve():\n    return 4\n```"
SCRIPT = '{"Think": "four", "": "' + PROGRAM.replace("\n", "\\n") + '"}'
MODEL = "scripted:" + SCRIPT
ROWS = [{"id": f"r{i}", "problem": f"what is {i}?", "answer": 4} for i in range(6)]


class Counts:
    def __init__(self) -> None:
        self.sandboxes = 0
        self.loads: list[str | None] = []
        self.compiles = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    """Count the sandboxes opened, the model specs loaded and the compiles."""
    seen = Counts()
    open_sandbox, load_model = sandbox_module.open_sandbox, spec_module.load_model
    compile_file, compile_source = treadle.compiler.compile_file, treadle.compiler.compile_source

    async def counting_open(*args: Any, **kwargs: Any) -> Any:
        seen.sandboxes += 1
        return await open_sandbox(*args, **kwargs)

    def counting_load(spec: str | None) -> Any:
        seen.loads.append(spec)
        return load_model(spec)

    def counting_compile_file(*args: Any, **kwargs: Any) -> Any:
        seen.compiles += 1
        return compile_file(*args, **kwargs)

    def counting_compile_source(*args: Any, **kwargs: Any) -> Any:
        seen.compiles += 1
        return compile_source(*args, **kwargs)

    monkeypatch.setattr(sandbox_module, "open_sandbox", counting_open)
    monkeypatch.setattr(spec_module, "load_model", counting_load)
    monkeypatch.setattr(treadle.compiler, "compile_file", counting_compile_file)
    monkeypatch.setattr(treadle.compiler, "compile_source", counting_compile_source)
    return seen


@pytest.fixture
def flow_path(tmp_path: Path) -> Path:
    path = tmp_path / "solve.flow"
    path.write_text(FLOW)
    return path


PROCESS = SandboxConfig("process")


async def test_an_evaluation_runs_every_row_in_one_session(
    counts: Counts, flow_path: Path, tmp_path: Path
) -> None:
    run = RunConfig(model=MODEL, cache=False, sandbox=PROCESS, concurrency=3, traces=False)
    report = await evaluate(
        flow_path, ROWS, scoring=Scoring(("numeric",)), run=run, epochs=2,
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    assert (report.n, report.scored, report.errors, report.mean) == (6, 6, 0, 1.0)
    assert report.sandbox_runs == 12  # every row-epoch ran its program...
    assert counts.sandboxes == 1  # ...in one sandbox pool
    assert counts.loads == [MODEL]  # one backend for all 12 row-epochs
    assert counts.compiles == 1  # the flow compiled once, not per row


async def test_a_given_session_is_shared_and_left_open(counts: Counts, flow_path: Path) -> None:
    async with Session(model=MODEL, cache=False, sandbox=PROCESS) as session:
        first = await evaluate(flow_path, ROWS[:3], scorer="numeric", session=session,
                               run=RunConfig(traces=False))  # fmt: skip
        backend = await session.backend()
        second = await evaluate(flow_path, ROWS[3:], scorer="numeric", session=session,
                                run=RunConfig(traces=False))  # fmt: skip
        assert await session.backend() is backend
        assert not session.closed
        assert session.sandbox_runs == 6
    assert session.closed
    assert (first.mean, second.mean) == (1.0, 1.0)
    assert counts.sandboxes == 1 and counts.loads == [MODEL]


async def test_every_ablation_of_an_attribution_shares_one_session(
    counts: Counts, flow_path: Path, tmp_path: Path
) -> None:
    rep = await attribute(
        flow_path, ROWS, scoring=Scoring(("numeric",)),
        run=RunConfig(model=MODEL, cache=ModelCache(tmp_path / "c.sqlite"), sandbox=PROCESS),
        work_dir=tmp_path / "work",
    )  # fmt: skip
    runs = sorted(p.name for p in (tmp_path / "work").glob("*.jsonl"))
    assert len(runs) >= 2  # the baseline and at least one ablation
    assert {u.unit for u in rep.units} >= {"solve.draft", "solve.checked"}
    assert counts.sandboxes == 1
    assert counts.loads == [MODEL]


async def test_a_session_and_its_own_settings_are_not_both_taken(flow_path: Path) -> None:
    async with Session(model=MODEL, cache=False, sandbox=PROCESS) as session:
        with pytest.raises(InputError, match="not both"):
            await evaluate(flow_path, ROWS, session=session, run=RunConfig(model="scripted:[]"))
        with pytest.raises(TreadleError, match="not both"):
            await Flow.load(flow_path).run({"problem": "x"}, session=session, cache=False)


async def test_flow_run_without_a_session_closes_its_private_one(
    counts: Counts, flow_path: Path
) -> None:
    flow = Flow.load(flow_path)
    result = await flow.run({"problem": "2+2"}, model=MODEL, cache=False, sandbox=PROCESS)
    assert result.outputs == {"answer": 4}
    again = await flow.run({"problem": "2+2"}, model=MODEL, cache=False, sandbox=PROCESS)
    assert again.outputs == {"answer": 4}
    assert counts.sandboxes == 2  # one private session (and pool) per run


@pytest.mark.parametrize("given", ["spec", "object"])
async def test_a_changed_script_is_never_answered_from_the_cache(
    tmp_path: Path, given: str
) -> None:
    flow = Flow.from_source('workflow w(q: text) -> a: text\n  a = generate from "{q}"\nend\n')
    cache = ModelCache(tmp_path / "c.sqlite")
    replies = []
    for script in (["first"], ["second"], ["first"]):
        model: Any = (
            "scripted:" + __import__("json").dumps(script)
            if given == "spec"
            else ScriptedBackend(script)
        )
        result = await flow.run({"q": "hi"}, model=model, cache=cache)
        replies.append((result.outputs["a"], result.spans[-1].cached))
    # the third run repeats the first script: now (and only now) the cache answers
    assert replies == [("first", False), ("second", False), ("first", True)]


def test_sandbox_config_is_checked_where_it_is_built() -> None:
    with pytest.raises(InputError, match="docker or process"):
        SandboxConfig("podman")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="fresh or reset"):
        SandboxConfig("docker", "sometimes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least 1"):
        SandboxConfig(pool_size=0)
    assert SandboxConfig.of("process", "fresh") == SandboxConfig("process", "fresh")
