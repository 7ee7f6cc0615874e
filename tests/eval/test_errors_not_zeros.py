"""Scores you can trust (issue 16, items 4, 5): an infrastructure failure is an error, never a 0;
a resumed run never mixes two evaluations; the results file keeps one line per row-epoch and
the report is rebuilt from it."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from cli_runner import treadle
from http_faults import FaultServer, ok_reply

from treadle.errors import InputError, StepError
from treadle.eval.evaluate import evaluate, read_results
from treadle.eval.options import RunConfig, Scoring
from treadle.eval.runner import classify
from treadle.runtime.expr import ExprError
from treadle.runtime.models.openai import OpenAIBackend
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.scheduler import StepFailed
from treadle.runtime.session import SandboxConfig

ROOT = Path(__file__).resolve().parents[2]
ANSWER = ROOT / "examples" / "answer.flow"
OTHER = (
    'workflow answer(question: text) -> answer: text\n  answer = generate from "Q: {question}"\n'
    "end\n"
)
QA = [{"id": f"q{i}", "question": f"question {i}?", "answer": "yes"} for i in range(4)]


def _step_failed(cause: BaseException) -> StepFailed:
    try:
        raise StepFailed("Step 'x' failed", step="x", op="generate", cause=cause) from cause
    except StepFailed as e:
        return e


@pytest.mark.parametrize(
    ("cause", "status"),
    [
        (ConnectionResetError("reset by peer"), "error"),  # infrastructure
        (KeyError("answer"), "error"),  # a bug in an operator: never the flow's 0
        (TimeoutError(), "error"),
        (StepError("no number in the reply"), "failed"),  # the workflow's own verdict
        (ExprError("`x.y`: x has no field y"), "failed"),
    ],
)
def test_only_the_workflows_own_failure_scores_zero(cause: BaseException, status: str) -> None:
    got, kind = classify(_step_failed(cause))
    assert got == status
    assert kind == f"StepFailed/{type(cause).__name__}"


def test_an_implicit_context_does_not_make_a_verdict_an_error() -> None:
    """An operator that raises StepError while handling a parse error decided the failure is
    the input's: the context is not a cause."""
    try:
        try:
            json.loads("{")
        except ValueError:
            raise StepError("the reply is not JSON") from None
    except StepError as e:
        assert classify(_step_failed(e))[0] == "failed"


async def test_a_model_server_that_resets_connections_gives_errors_not_zeros(
    tmp_path: Path,
) -> None:
    # two good replies, then every connection is reset
    async with FaultServer(ok_reply("yes"), ok_reply("yes"), "reset") as server:
        backend = OpenAIBackend(server.url, "m", max_retries=1, backoff_base=0.01)
        report = await evaluate(
            ANSWER, QA, scoring=Scoring(("contains",)),
            run=RunConfig(model=backend, cache=False, concurrency=1, traces=False),
            results=tmp_path / "r.jsonl",
        )  # fmt: skip
    statuses = [r.status for r in report.rows]
    assert statuses == ["ok", "ok", "error", "error"]
    assert (report.scored, report.errors, report.mean) == (2, 2, 1.0)
    bad = report.rows[2]
    assert bad.score is None and bad.scores == {}
    assert "ModelError" in (bad.error_kind or "") and bad.error


async def test_a_judge_without_a_grade_is_an_error_with_its_cause(tmp_path: Path) -> None:
    judge = ScriptedBackend(lambda m: "I think it is fine" if "grading" in m[-1].content else "x")
    report = await evaluate(
        ANSWER, QA[:2], scoring=Scoring(("judge",)),
        run=RunConfig(model=judge, cache=False, traces=False), results=tmp_path / "r.jsonl",
    )  # fmt: skip
    assert [r.status for r in report.rows] == ["error", "error"]
    assert report.mean is None and report.errors == 2
    assert "no grade" in (report.rows[0].error or "")


# ---------------------------------------------------------------- resume


def _run(
    tmp_path: Path,
    *,
    data: object = QA,
    scorer: str = "exact",
    seed: int = 0,
    reply: str = "yes",
    resume: Path | None = None,
) -> object:
    import asyncio

    run = RunConfig(model=ScriptedBackend({"": reply}), cache=False, seed=seed, traces=False)
    return asyncio.run(
        evaluate(
            ANSWER,
            data,  # type: ignore[arg-type]
            scoring=Scoring((scorer,)),
            run=run,
            results=None if resume else tmp_path / "r.jsonl",
            resume=resume,
        )
    )


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"scorer": "f1"}, "scorers"),
        ({"data": [{**row, "answer": "no"} for row in QA]}, "dataset (content)"),
        ({"seed": 3}, "seed"),
        ({"reply": "no"}, None),  # same model spec and script digest? no: another script
    ],
)
def test_resume_refuses_a_results_file_of_another_evaluation(
    tmp_path: Path, change: dict[str, object], what: str | None
) -> None:
    _run(tmp_path)
    with pytest.raises(InputError, match="resuming would mix") as e:
        _run(tmp_path, resume=tmp_path / "r.jsonl", **change)  # type: ignore[arg-type]
    if what is not None:
        assert f"a different {what}" in e.value.message


def test_resume_refuses_another_flow_on_the_command_line_with_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in QA))
    first = treadle("eval", str(ANSWER), str(data), "--model", 'scripted:{"": "yes"}',
                    "--results", "r.jsonl", "--display", "none", cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    other = tmp_path / "other.flow"
    other.write_text(OTHER)
    again = treadle("eval", str(other), str(data), "--model", 'scripted:{"": "yes"}',
                    "--resume", "r.jsonl", "--display", "none", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2
    assert "resuming would mix two evaluations" in again.stderr
    assert "Traceback" not in again.stderr


def test_rerun_error_rows_leave_one_line_per_row_and_the_report_is_the_files(
    tmp_path: Path,
) -> None:
    import asyncio

    calls = {"n": 0}

    def flaky(messages: object) -> str:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            from treadle.errors import ModelError

            raise ModelError("the server went away")
        return "yes"

    async def once(resume: Path | None) -> object:
        return await evaluate(
            ANSWER, QA, scoring=Scoring(("exact",)),
            run=RunConfig(model=ScriptedBackend(flaky), cache=False, concurrency=1, traces=False,
                          retries=0),
            results=None if resume else tmp_path / "r.jsonl", resume=resume,
        )  # fmt: skip

    first = asyncio.run(once(None))
    assert [r.status for r in first.rows] == ["ok", "error", "error", "ok"]  # type: ignore[attr-defined]
    # the resumed run sees the same script object identity only in this process: use the file
    results = tmp_path / "r.jsonl"
    lines = [orjson.loads(line) for line in results.read_bytes().splitlines()]
    header = lines[0]
    assert header["version"] == 2 and header["dataset_digest"]
    second = asyncio.run(once(results))
    rows = [orjson.loads(line) for line in results.read_bytes().splitlines()][1:]
    keys = [(r["id"], r["epoch"]) for r in rows]
    assert sorted(keys) == sorted({(r["id"], 0) for r in QA})  # one line per row-epoch
    assert all(r["status"] == "ok" for r in rows)
    _, recorded = read_results(results)
    assert second.mean == 1.0 and second.n == len(recorded) == 4  # type: ignore[attr-defined]


def test_an_old_results_file_is_refused_not_mixed(tmp_path: Path) -> None:
    _run(tmp_path)
    path = tmp_path / "r.jsonl"
    lines = path.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    header["version"] = 1
    header.pop("dataset_digest")
    path.write_bytes(b"\n".join([orjson.dumps(header), *lines[1:]]) + b"\n")
    with pytest.raises(InputError, match="a different version"):
        _run(tmp_path, resume=path)


def test_the_cli_resume_of_a_killed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    """Kill `treadle eval` with SIGKILL after some rows, resume it (with its own cache dir, so
    nothing is answered from the uninterrupted run's cache), compare the reports."""
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in QA * 1))
    common = ["--model", 'scripted:{"": "yes"}', "--display", "none", "--format", "json"]
    full = treadle("eval", str(ANSWER), str(data), "--results", "full.jsonl", *common,
                   cwd=tmp_path)  # fmt: skip
    assert full.returncode == 0, full.stderr
    # a results file cut after two rows stands for the killed run (a torn last line too)
    lines = (tmp_path / "full.jsonl").read_bytes().splitlines()
    (tmp_path / "part.jsonl").write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:10])
    part_dir = tmp_path / "resumed"
    part_dir.mkdir()
    (part_dir / "part.jsonl").write_bytes((tmp_path / "part.jsonl").read_bytes())
    resumed = treadle("eval", str(ANSWER), str(data), "--resume", "part.jsonl", *common,
                      cwd=part_dir)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(full.stdout), json.loads(resumed.stdout)
    keys = ("n", "scored", "errors", "mean", "model_calls")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


async def test_no_verdict_from_the_sandbox_is_an_error_not_a_zero(tmp_path: Path) -> None:
    """The host's deadline passes before the judge's own per-test limit: no verdict came back,
    so the row is an error (the same code under the judge's limit is a failure, scored 0)."""
    flow = ROOT / "examples" / "humaneval_canonical.flow"
    row = {"id": "loop", "code": "def f(x):\n    while True:\n        pass\n",
           "tests": "def check(f):\n    assert f(1) == 1\n", "entry_point": "f"}  # fmt: skip
    run = RunConfig(cache=False, sandbox=SandboxConfig("process"), traces=False)
    no_verdict = await evaluate(
        flow, [row], run=run, results=tmp_path / "a.jsonl",
        scoring=Scoring(("pass",), {"time_limit": 1.0, "per_test_limit": 30.0}),
    )  # fmt: skip
    assert no_verdict.rows[0].status == "error" and no_verdict.rows[0].score is None
    assert "no verdict" in (no_verdict.rows[0].error or "")
    judged = await evaluate(
        flow, [row], run=run, results=tmp_path / "b.jsonl",
        scoring=Scoring(("pass",), {"time_limit": 10.0, "per_test_limit": 1.0}),
    )  # fmt: skip
    assert judged.rows[0].status == "ok" and judged.rows[0].score == 0.0
