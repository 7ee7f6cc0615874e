"""`evaluate` with scripted models, where exact scores and counts must hold."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from treadle.errors import InputError, ModelError
from treadle.eval.compare import compare
from treadle.eval.datasets import load_dataset
from treadle.eval.evaluate import evaluate, read_results
from treadle.eval.executors import RayExecutor, executor_of
from treadle.eval.options import Epochs, RunConfig, Scoring
from treadle.eval.report import wilson_interval
from treadle.eval.runner import RemoteRowRunner
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.sandbox.process import ProcessSandbox
from treadle.runtime.session import SandboxConfig, Session

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARITH = EXAMPLES / "data" / "arithmetic.jsonl"
QA = EXAMPLES / "data" / "qa.jsonl"
ROWS = [orjson.loads(line) for line in ARITH.read_text().splitlines()]
ANSWERS = {r["problem"]: r["answer"] for r in ROWS}


def _problem_in(prompt: str) -> str:
    return next(p for p in ANSWERS if p in prompt)


def arithmetic_model(
    wrong: set[str] = frozenset(), down: set[str] = frozenset()
) -> ScriptedBackend:  # type: ignore[assignment]
    """Drafts answer correctly except for the ids in `wrong` (off by one); the ensemble picks A;
    problems of the ids in `down` raise a ModelError (the server is down)."""
    ids = {r["problem"]: r["id"] for r in ROWS}

    def reply(messages: list[Message]) -> str:
        prompt = messages[-1].content
        if "Several solutions were written" in prompt:
            return "Choice: A"
        problem = _problem_in(prompt)
        if ids[problem] in down:
            raise ModelError("connection refused: the model server is down")
        value = ANSWERS[problem] + (1 if ids[problem] in wrong else 0)
        return f"Let me think.\nAnswer: {value}"

    return ScriptedBackend(reply, max_concurrency=8)


async def test_self_consistency_on_the_arithmetic_set(tmp_path: Path) -> None:
    wrong = {"arith-002", "arith-005", "arith-009"}
    model = arithmetic_model(wrong)
    report = await evaluate(
        EXAMPLES / "gsm8k_self_consistency.flow",
        ARITH,
        scorer=["numeric", "exact"],
        model=model,
        limit=10,
        cache=False,
        results=tmp_path / "r.jsonl",
        report=tmp_path / "report.json",
    )
    assert (report.n, report.scored, report.failed, report.errors) == (10, 10, 0, 0)
    assert report.mean == pytest.approx(0.7)
    assert (report.ci_low, report.ci_high) == pytest.approx(wilson_interval(7, 10))
    assert report.scorers == {"numeric": pytest.approx(0.7), "exact": pytest.approx(0.7)}
    assert [r.id for r in report.rows] == [f"arith-{i:03d}" for i in range(1, 11)]
    assert {r.id for r in report.rows if r.score == 0.0} == wrong
    first = report.rows[0]
    assert first.output == ROWS[0]["answer"] and first.status == "ok"
    assert first.outputs["answer"] == ROWS[0]["answer"]
    # 3 sampled drafts + 1 ensemble call per row, all through the one shared backend
    assert report.model_calls == 40 == len(model.calls)
    assert report.cached_calls == 0 and report.sandbox_runs == 0
    assert report.steps["drafts"].runs == 10 and report.steps["solution"].runs == 10
    assert report.steps["answer"].tokens_in == 0  # `extract` makes no model call
    assert report.tokens_in == sum(r.tokens_in for r in report.rows) > 0
    # traces: one per row, named after the run
    assert first.trace_path and Path(first.trace_path).is_file()
    assert Path(first.trace_path).parent == tmp_path / "r-traces"
    # the JSON report on disk is the same report
    on_disk = orjson.loads((tmp_path / "report.json").read_bytes())
    assert on_disk["mean"] == report.mean and len(on_disk["rows"]) == 10
    # results file: a header and one line per row
    header, rows = read_results(tmp_path / "r.jsonl")
    assert header is not None and header["scorers"][0]["spec"] == "numeric"
    assert len(rows) == 10


async def test_errors_are_kept_out_of_the_score_and_failures_score_zero(tmp_path: Path) -> None:
    # a flow that fails on its own when the reply holds no number (None + 1)
    flow = tmp_path / "plus_one.flow"
    flow.write_text(
        "workflow plus_one(problem: text) -> answer: number\n"
        '  reply = generate from "{problem}"\n'
        "  n = extract number from reply\n"
        "  answer = n + 0\n"
        "end\n"
    )
    ids = {r["problem"]: r["id"] for r in ROWS}

    def reply(messages: list[Message]) -> str:
        rid = ids[_problem_in(messages[-1].content)]
        if rid == "arith-003":
            raise ModelError("connection refused: the model server is down")
        if rid == "arith-004":
            return "I cannot say."  # no number: the workflow fails on its own
        if rid == "arith-001":
            return "Answer: 0"
        return f"Answer: {ANSWERS[_problem_in(messages[-1].content)]}"

    report = await evaluate(
        flow, ARITH, scorer="numeric", limit=5,
        run=RunConfig(model=ScriptedBackend(reply), cache=False, traces=tmp_path / "t"),
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    by_id = {r.id: r for r in report.rows}
    assert by_id["arith-003"].status == "error" and by_id["arith-003"].score is None
    assert "model server is down" in (by_id["arith-003"].error or "")
    assert "ModelError" in (by_id["arith-003"].error_kind or "")
    assert by_id["arith-004"].status == "failed" and by_id["arith-004"].score == 0.0
    assert by_id["arith-001"].status == "ok" and by_id["arith-001"].score == 0.0
    assert (report.n, report.scored, report.errors, report.failed) == (5, 4, 1, 1)
    assert report.mean == pytest.approx(2 / 4)  # rows 2 and 5 of the four scored


async def test_max_errors_stops_the_run_cleanly(tmp_path: Path) -> None:
    model = ScriptedBackend(lambda m: (_ for _ in ()).throw(ModelError("down")), max_concurrency=1)
    report = await evaluate(
        EXAMPLES / "answer.flow", QA,
        run=RunConfig(model=model, cache=False, concurrency=1, max_errors=2,
                      traces=tmp_path / "t"),
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    assert report.stopped and "3 errors" in report.stopped
    assert report.n == 3 and report.errors == 3 and report.mean is None
    _, rows = read_results(tmp_path / "r.jsonl")
    assert len(rows) == 3


async def test_epochs_use_different_seeds_and_reduce(tmp_path: Path) -> None:
    """Each question is answered right only the first time it is asked: per row 1 of 3 epochs
    is correct, whichever epoch ran first."""
    asked: Counter[str] = Counter()
    truth = {orjson.loads(x)["question"]: orjson.loads(x)["answer"][0]
             for x in QA.read_text().splitlines()}  # fmt: skip

    def reply(messages: list[Message]) -> str:
        q = next(q for q in truth if q in messages[-1].content)
        asked[q] += 1
        return truth[q] if asked[q] == 1 else "no idea"

    async def run(reducer: str) -> Any:
        asked.clear()
        return await evaluate(
            EXAMPLES / "answer.flow", QA, epochs=Epochs(3, reducer), limit=4,
            run=RunConfig(model=ScriptedBackend(reply), cache=False, traces=tmp_path / "t"),
            results=tmp_path / f"{reducer}.jsonl",
        )  # fmt: skip

    mean = await run("mean")
    assert mean.mean == pytest.approx(1 / 3) and mean.n == 4 and mean.model_calls == 12
    assert {r.epochs for r in mean.rows} == {3}
    _, lines = read_results(tmp_path / "mean.jsonl")
    assert sorted({(r.epoch, r.seed) for r in lines}) == [(0, 0), (1, 1), (2, 2)]
    assert (await run("max")).mean == 1.0
    assert (await run("majority")).mean == 0.0
    assert (await run("pass@1")).mean == pytest.approx(1 / 3)
    assert (await run("pass@2")).mean == pytest.approx(2 / 3)  # 1 - C(2,2)/C(3,2)
    with pytest.raises(InputError, match="pass@4"):
        await run("pass@4")


async def test_resume_runs_only_the_missing_rows_and_reports_the_same(tmp_path: Path) -> None:
    # one model object for both runs: a function script is known by its object, and a resume
    # refuses another model
    model = arithmetic_model({"arith-004"})
    run = RunConfig(model=model, cache=False, traces=tmp_path / "t")
    full = await evaluate(
        EXAMPLES / "gsm8k_self_consistency.flow", ARITH, scorer="numeric", limit=8, run=run,
        results=tmp_path / "full.jsonl",
    )  # fmt: skip
    assert len(model.calls) == 8 * 4
    # an interrupted run: a header, three rows, and a torn line (killed mid-write)
    lines = (tmp_path / "full.jsonl").read_bytes().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(lines[:4]) + lines[4][:25])
    resumed = await evaluate(
        EXAMPLES / "gsm8k_self_consistency.flow", ARITH, scorer="numeric", limit=8, run=run,
        resume=part,
    )  # fmt: skip
    assert len(model.calls) == 8 * 4 + 5 * 4  # only the five missing rows ran

    def view(report: Any) -> Any:
        return (
            report.n, report.scored, report.errors, report.mean, report.ci_low, report.ci_high,
            report.model_calls, report.tokens_in, report.tokens_out,
            [(r.id, r.output, r.scores, r.status) for r in report.rows],
        )  # fmt: skip

    assert view(resumed) == view(full)
    _, rows = read_results(part)
    assert len(rows) == 8  # every line whole again


async def test_resume_refuses_another_flow(tmp_path: Path) -> None:
    await evaluate(
        EXAMPLES / "answer.flow", QA, limit=2,
        run=RunConfig(model=ScriptedBackend({"": "x"}), cache=False, traces=tmp_path / "t"),
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    with pytest.raises(InputError, match="different flow"):
        await evaluate(
            EXAMPLES / "gsm8k_self_consistency.flow", ARITH, model=arithmetic_model(), limit=2,
            cache=False, resume=tmp_path / "r.jsonl",
        )  # fmt: skip


async def test_rows_share_one_backend_one_cache_and_one_sandbox(tmp_path: Path) -> None:
    """Every row's program step runs in the same sandbox object, and a re-run is all cache hits."""
    flow = tmp_path / "compute.flow"
    flow.write_text(
        "workflow compute(problem: text) -> answer: number\n"
        "  result = program for problem\n"
        "  answer = result.value\n"
        "end\n"
    )

    def reply(messages: list[Message]) -> str:
        value = ANSWERS[_problem_in(messages[-1].content)]
        return f"```python\ndef solve():\n    return {value}\n```"

    class CountingSandbox(ProcessSandbox):
        starts = 0

        def __init__(self) -> None:
            super().__init__()
            CountingSandbox.starts += 1
            self.runs = 0

        async def run(self, command: list[str], **kw: Any) -> Any:
            self.runs += 1
            return await super().run(command, **kw)

    from treadle.runtime.cache import ModelCache

    cache = ModelCache(tmp_path / "cache")
    sandbox = CountingSandbox()
    model = ScriptedBackend(reply, max_concurrency=8)
    async with Session(model=model, cache=cache, sandbox=sandbox) as s:
        first = await evaluate(
            flow, ARITH, scorer="numeric", limit=6, session=s,
            run=RunConfig(traces=tmp_path / "t"), results=tmp_path / "a.jsonl",
        )  # fmt: skip
        again = await evaluate(
            flow, ARITH, scorer="numeric", limit=6, session=s,
            run=RunConfig(traces=tmp_path / "t"), results=tmp_path / "b.jsonl",
        )  # fmt: skip
    assert first.mean == 1.0 and again.mean == 1.0
    assert CountingSandbox.starts == 1 and sandbox.runs == 12
    assert first.sandbox_runs == 6 and again.sandbox_runs == 6
    assert len(model.calls) == 6  # the second evaluation hit the shared cache every time
    assert (first.cached_calls, again.cached_calls) == (0, 6)
    cache.close()


async def test_map_target_and_csv(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("id,text,gold\nx1,What is 2+2?,4\nx2,What is 3+3?,7\n")
    report = await evaluate(
        EXAMPLES / "answer.flow", data,
        scoring=Scoring(("numeric",), input_map={"question": "text"}, target="gold"),
        run=RunConfig(model=ScriptedBackend({"2+2": "4", "3+3": "6"}), cache=False,
                      traces=tmp_path / "t"),
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    assert [(r.id, r.score) for r in report.rows] == [("x1", 1.0), ("x2", 0.0)]
    ds = load_dataset(data, rows="2-2")
    assert [r.id for r in ds.rows] == ["x2"]


async def test_compare_two_runs(tmp_path: Path) -> None:
    run = RunConfig(cache=False, traces=tmp_path / "t")
    flow = EXAMPLES / "gsm8k_self_consistency.flow"
    wrong = {f"arith-{i:03d}" for i in range(1, 21) if i % 2}
    a = await evaluate(flow, ARITH, scorer="numeric", limit=20, results=tmp_path / "a.jsonl",
                       run=run.with_(model=arithmetic_model(wrong)))  # fmt: skip
    b = await evaluate(flow, ARITH, scorer="numeric", limit=20, results=tmp_path / "b.jsonl",
                       run=run.with_(model=arithmetic_model()))  # fmt: skip
    result = compare(a, b)
    assert result.common == 20 and result.diff == pytest.approx(0.5)
    assert result.verdict == "b" and result.wins_b == 10 and result.ties == 10
    assert result.ci_low is not None and result.ci_low > 0
    same = compare(a, a)
    assert same.verdict == "not significant" and same.diff == 0.0


async def test_a_row_timeout_is_an_error(tmp_path: Path) -> None:
    slow = ScriptedBackend({"": "Paris"}, delay=2.0)
    report = await evaluate(
        EXAMPLES / "answer.flow", QA, limit=2,
        run=RunConfig(model=slow, cache=False, row_timeout=0.2, traces=tmp_path / "t"),
        results=tmp_path / "r.jsonl",
    )  # fmt: skip
    assert report.errors == 2 and report.scored == 0
    assert all(re.search("time limit of 0.2 s", r.error or "") for r in report.rows)


async def test_a_flow_without_model_calls_never_loads_the_model(tmp_path: Path) -> None:
    """The default model is loaded when a step first calls it: a missing model file is no
    error for a flow that makes no model call, and an error (not a 0) for one that does."""
    data = [{"code": "x = 1", "target": "x = 1"}]
    missing = f"llama:{tmp_path / 'missing.gguf'}"
    report = await evaluate(
        EXAMPLES / "humaneval_canonical.flow", data,
        run=RunConfig(model=missing, cache=False, traces=False), results=tmp_path / "a.jsonl",
    )  # fmt: skip
    assert (report.mean, report.errors) == (1.0, 0)
    report = await evaluate(
        EXAMPLES / "answer.flow", [{"question": "q", "answer": "a"}],
        run=RunConfig(model=missing, cache=False, traces=False), results=tmp_path / "b.jsonl",
    )  # fmt: skip
    assert (report.errors, report.mean) == (1, None)
    assert "ModelError" in (report.rows[0].error_kind or "")


async def test_ray_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="spec string"):
        await evaluate(
            EXAMPLES / "answer.flow", QA, model=ScriptedBackend(["x"]), executor=RayExecutor(),
            results=tmp_path / "r.jsonl",
        )  # fmt: skip
    with pytest.raises(InputError, match="spec string"):
        await evaluate(
            EXAMPLES / "answer.flow", QA, executor=RayExecutor(), results=tmp_path / "r.jsonl",
            run=RunConfig(model="scripted:{}", models={"scripted:{}": ScriptedBackend(["x"])}),
        )  # fmt: skip
    with pytest.raises(InputError, match="no session="):
        async with Session(model="scripted:{}", cache=False) as s:
            await evaluate(
                EXAMPLES / "answer.flow", QA, executor=RayExecutor(), session=s,
                results=tmp_path / "r.jsonl",
            )  # fmt: skip
    for executor, workers in (("local", 2), ("ray", 0)):
        with pytest.raises(InputError, match="--ray-workers"):
            executor_of(executor, workers=workers)
    with pytest.raises(InputError, match="--ray-workers"):
        RayExecutor(workers=0)
    assert not (tmp_path / "r.jsonl").exists()


async def test_a_ray_worker_builds_its_session_with_the_drivers_settings() -> None:
    """What a Ray worker receives is the pickled `RemoteRowRunner`: the sandbox kind and its
    isolation reach the worker's own `Session` (a worker once ran `fresh` as `reset`)."""
    import pickle

    for isolation in ("fresh", "reset"):
        settings = RunConfig(
            model="scripted:{}", cache=False, sandbox=SandboxConfig("docker", isolation)
        )
        sent = RemoteRowRunner(RayExecutor().check(settings))
        worker = pickle.loads(pickle.dumps(sent))
        await worker.setup()
        try:
            session = worker._runner.session  # type: ignore[union-attr]
            assert (session.sandbox_kind, session.isolation) == ("docker", isolation)
            assert worker.run_config == settings
        finally:
            await worker.aclose()
