"""`treadle eval` as a user runs it: the report on stdout, bad input as one paragraph (exit 2),
`compare`, and resume after a real SIGKILL of the process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from cli_runner import treadle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
QA = EXAMPLES / "data" / "qa.jsonl"
ARITH = EXAMPLES / "data" / "arithmetic.jsonl"
ANSWERS = {orjson.loads(x)["question"]: orjson.loads(x)["answer"][0]
           for x in QA.read_text().splitlines()}  # fmt: skip
#: a scripted model that answers every QA question right except the first five
QA_MODEL = "scripted:" + json.dumps(
    {q[-25:]: (a if i >= 5 else "no idea") for i, (q, a) in enumerate(ANSWERS.items())}
)


def one_paragraph(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("results: ")]
    text = "\n".join(lines).strip()
    assert text and "\n\n" not in text, stderr
    return text


def test_eval_prints_only_the_report_on_stdout(tmp_path: Path) -> None:
    out = treadle(
        "eval", str(EXAMPLES / "answer.flow"), str(QA), "--model", QA_MODEL, "--scorer", "exact",
        "--scorer", "f1", "--display", "plain", "--every", "5", "--report", "r.json",
        "--results", "res.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "score (exact)  0.750" in out.stdout and "n 20  scored 20" in out.stdout
    assert "eval 20/20 rows  score 0.750" in out.stderr  # the plain progress line
    assert "eval" not in out.stdout.split("results")[0].replace("eval ", "")
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    for key in ("n", "scored", "errors", "mean", "ci_low", "ci_high", "tokens_in", "tokens_out",
                "model_calls", "cached_calls", "sandbox_runs", "latency_p50_s", "latency_p95_s",
                "scorers", "steps", "rows"):  # fmt: skip
        assert key in report, key
    assert report["mean"] == 0.75 and report["scorers"]["f1"] == 0.75
    assert set(report["rows"][0]) >= {"id", "inputs_digest", "output", "scores", "error",
                                      "trace_path"}  # fmt: skip
    # JSON on stdout, and a re-run hits the cache
    again = treadle(
        "eval", str(EXAMPLES / "answer.flow"), str(QA), "--model", QA_MODEL, "--format", "json",
        "--display", "none", "--results", "res2.jsonl", cwd=tmp_path,
    )  # fmt: skip
    data = json.loads(again.stdout)
    assert data["mean"] == 0.75 and data["cached_calls"] == 20 and data["model_calls"] == 20


def test_compare_command(tmp_path: Path) -> None:
    flow = str(EXAMPLES / "answer.flow")
    good = "scripted:" + json.dumps({q[-25:]: a for q, a in ANSWERS.items()})
    for name, model in (("a", QA_MODEL), ("b", good)):
        out = treadle("eval", flow, str(QA), "--model", model, "--report", f"{name}.json",
                      "--display", "none", "--no-cache", cwd=tmp_path)  # fmt: skip
        assert out.returncode == 0, out.stderr
    out = treadle("eval", "compare", "a.json", "b.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "common rows 20" in out.stdout and "B wins 5, A wins 0, ties 15" in out.stdout
    assert "B is better by +0.250" in out.stdout
    out = treadle("eval", "compare", "a.json", "b.json", "a.json", "--coverage", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "coverage: the top 1 flows solve 100% of rows together; the best (answer.flow) 100%" in (
        out.stdout
    )
    out = treadle("eval", "compare", "a.json", "b.json", "--coverage", "2", "--format", "json",
                  cwd=tmp_path)  # fmt: skip
    cover = json.loads(out.stdout)["coverage"]
    assert cover["union"] == 1.0 and cover["best_share"] == 1.0 and len(cover["flows"]) == 2
    out = treadle("eval", "compare", "a.json", "nope.json", cwd=tmp_path)
    assert out.returncode == 2 and "There is no report file nope.json" in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["FLOW", "missing.jsonl"], "There is no dataset file missing.jsonl"),
        (["FLOW", "bad.jsonl"], "is not valid JSONL: line 2 is not JSON"),
        (["FLOW", "noq.jsonl"], "row 1 lacks the column 'question'"),
        (["FLOW", "QA", "--scorer", "exactly"], "Unknown scorer 'exactly'. Did you mean 'exact'?"),
        (["FLOW", "QA", "--scorer", "wrong.flow"], "has the wrong signature"),
        (["ARITH_FLOW", "QA"], "lacks the column 'problem'"),
        (["FLOW", "QA", "--map", "problem=question"], "--map names problem, which the workflow"),
        (["FLOW", "QA", "--target", "gold"], "no column 'gold'"),
        (["FLOW", "QA", "--epochs", "0"], "--epochs must be at least 1"),
        (["FLOW"], "Give the dataset either as DATA"),
        (["nope.flow", "QA"], "There is no flow file nope.flow"),
        (["FLOW", "QA", "--resume", "nope.jsonl"], "There is no results file nope.jsonl"),
        (["FLOW", "nums.csv"], "row 1: Wrong inputs for workflow count"),
    ],
)
def test_bad_input_is_one_paragraph_before_anything_runs(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"question": "a"}\n{"question": \n')
    (tmp_path / "noq.jsonl").write_text('{"prompt": "a"}\n')
    (tmp_path / "wrong.flow").write_text(
        "workflow grade(answer: text) -> score: number\n  score = 1\nend\n"
    )
    (tmp_path / "count.flow").write_text(
        "workflow count(n: number) -> m: number\n  m = n + 1\nend\n"
    )
    (tmp_path / "nums.csv").write_text("n\nnot a number\n")
    flow = str(tmp_path / "count.flow") if "nums.csv" in args else str(EXAMPLES / "answer.flow")
    subst = {"FLOW": flow, "QA": str(QA), "ARITH_FLOW": str(EXAMPLES / "solve_math.flow")}
    out = treadle("eval", *[subst.get(a, a) for a in args], "--model", QA_MODEL, cwd=tmp_path)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert message in one_paragraph(out.stderr)
    assert out.stdout == ""
    assert not (tmp_path / ".treadle" / "evals").exists() or not any(
        (tmp_path / ".treadle" / "evals").glob("*.jsonl")
    )


SLOW_SCORER = """\
import asyncio


async def slow_exact(output, target):
    await asyncio.sleep(0.15)
    return str(output).strip().lower() == str(target[0]).lower()
"""


def test_resume_after_sigkill_gives_the_uninterrupted_report(tmp_path: Path) -> None:
    (tmp_path / "slow_scores.py").write_text(SLOW_SCORER)
    common = [str(EXAMPLES / "answer.flow"), str(QA), "--model", QA_MODEL, "--scorer",
              "slow_scores.py:slow_exact", "--concurrency", "2", "--display", "none",
              "--format", "json"]  # fmt: skip
    whole = treadle("eval", *common, "--results", "whole.jsonl", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(
        [sys.executable, "-c", "from treadle.cli import main; main()", "eval", *common,
         "--results", "part.jsonl"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TREADLE_CACHE_DIR": str(tmp_path / "cache2")},
    )  # fmt: skip
    part = tmp_path / "part.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if part.exists() and part.read_bytes().count(b"\n") >= 6:  # header + 5 rows
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = part.read_bytes().count(b'"kind":"row"')
    assert 5 <= done_before < 20
    resumed = treadle("eval", *common, "--resume", "part.jsonl", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(whole.stdout), json.loads(resumed.stdout)
    for key in ("n", "scored", "errors", "failed", "mean", "ci_low", "ci_high", "scorers",
                "tokens_in", "tokens_out", "model_calls"):  # fmt: skip
        assert a[key] == b[key], key
    assert [(r["id"], r["output"], r["scores"]) for r in a["rows"]] == [
        (r["id"], r["output"], r["scores"]) for r in b["rows"]
    ]
    rows = [orjson.loads(x) for x in part.read_bytes().splitlines()[1:]]
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in a["rows"])  # each once
