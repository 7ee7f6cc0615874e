"""Runs for the viewer's tests and docs screenshots, made by real `treadle` commands on scripted
models: two evaluations of one flow (75% and 100% right, for compare), an evaluation whose
program step runs in the sandbox, an attribution, a verified ranking and a lone trace.

`python tests/view/view_fixtures.py DIR` makes them in DIR (what docs/view.md's screenshots
were taken from).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_runner import treadle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
QA = EXAMPLES / "data" / "qa.jsonl"
ARITH = EXAMPLES / "data" / "arithmetic.jsonl"
ANSWERS = {orjson.loads(x)["question"]: orjson.loads(x)["answer"][0]
           for x in QA.read_text().splitlines()}  # fmt: skip
#: right on every question but the first five
HALF_RIGHT = "scripted:" + json.dumps(
    {q[-25:]: (a if i >= 5 else "no idea") for i, (q, a) in enumerate(ANSWERS.items())}
)
ALL_RIGHT = "scripted:" + json.dumps({q[-25:]: a for q, a in ANSWERS.items()})


def math_model(pause: float = 0.0) -> str:
    """Every draft says 42, and the program step's `solve` prints a line and returns 6 * 7
    (after `pause` seconds)."""
    wait = f"    import time\n    time.sleep({pause})\n" if pause else ""
    code = f"def solve():\n{wait}    print('working it out')\n    return 6 * 7"
    return "scripted:" + json.dumps({"": f"```python\n{code}\n```\nAnswer: 42"})


def run(*args: str, cwd: Path) -> None:
    out = treadle(*args, cwd=cwd, timeout=300)
    assert out.returncode == 0, f"treadle {' '.join(args)}:\n{out.stderr}"


def make_runs(work: Path) -> dict[str, Path]:
    """Every fixture run under `work/.treadle` (cwd `work`); the paths by name."""
    work.mkdir(parents=True, exist_ok=True)
    runs = work / ".treadle"
    flow = str(EXAMPLES / "answer.flow")
    common = ["--display", "none", "--no-cache"]
    run("eval", flow, str(QA), "--model", HALF_RIGHT, "--scorer", "exact", "--scorer", "f1",
        "--results", ".treadle/evals/qa-half.jsonl", "--report", ".treadle/qa-half.json",
        *common, cwd=work)  # fmt: skip
    run("eval", flow, str(QA), "--model", ALL_RIGHT, "--scorer", "exact", "--scorer", "f1",
        "--results", ".treadle/evals/qa-all.jsonl", *common, cwd=work)  # fmt: skip
    run("eval", str(EXAMPLES / "solve_math.flow"), str(ARITH), "--limit", "4", "--sandbox",
        "process", "--model", math_model(), "--scorer", "numeric", "--results",
        ".treadle/evals/math.jsonl", *common, cwd=work)  # fmt: skip
    run("attribute", str(EXAMPLES / "variants" / "qa_revise.flow"), str(QA), "--model",
        'scripted:{"State its":"Paris","Improve":"Paris","":"I am not sure"}', "--scorer",
        "contains", "--limit", "3", "--report", ".treadle/attribution.json", "--display", "none",
        cwd=work)  # fmt: skip
    flows = [str(EXAMPLES / "variants" / n) for n in ("qa_short.flow", "qa_quiz.flow",
                                                      "qa_direct.flow")]  # fmt: skip
    run("rank", *flows, str(QA), "--model", 'scripted:{"You predict":"0.4","":"Paris"}',
        "--scorer", "contains", "--limit", "6", "--warmup", "1", "--min-rows", "2", "--verify",
        "--report", ".treadle/rank.json", "--display", "none", cwd=work)  # fmt: skip
    run("run", flow, "--input", "question=What is the capital of France?", "--model",
        ALL_RIGHT, "--trace", ".treadle/traces/answer.jsonl", cwd=work)  # fmt: skip
    return {
        "half": runs / "evals" / "qa-half.jsonl",
        "all": runs / "evals" / "qa-all.jsonl",
        "math": runs / "evals" / "math.jsonl",
        "attribution": runs / "attribution.json",
        "rank": runs / "rank.json",
        "trace": runs / "traces" / "answer.jsonl",
        "report": runs / "qa-half.json",
    }


if __name__ == "__main__":
    for name, path in make_runs(Path(sys.argv[1]).resolve()).items():
        print(name, path)
