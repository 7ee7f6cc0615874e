"""What a full counterfactual attribution costs in model calls, against naive re-running.

For each of the examples' larger flows, `treadle.attribute` removes every removable step in turn
and re-runs the same rows with the same seeds through one shared cache. Calls made are those the
cache did not answer; the naive count is what re-running the baseline and every ablation without
a cache would make. Aim (issue 10): at most half.

The model is SIMULATED (a deterministic function of the prompt: replies of the shape each
operator expects, a number derived from the prompt's hash), because what is measured is call
accounting, not answer quality: a changed prompt is a cache miss, an unchanged one a hit, with
any model. `--embedded` runs one small flow on the embedded SmolLM2 as well (a real model: the
same accounting, slower). The gsm8k cross-check flow runs its programs in the Docker sandbox.

    python benchmarks/attribution_cost.py [--rows 6] [--embedded] [--no-docker]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from treadle.eval.options import Scoring
from treadle.runtime.cache import ModelCache
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session
from treadle.studies.attribution import attribute

ROOT = Path(__file__).resolve().parents[1]
ARITHMETIC = ROOT / "examples" / "data" / "arithmetic.jsonl"


def _n(prompt: str, salt: str = "") -> int:
    return int(hashlib.sha256((salt + prompt).encode()).hexdigest()[:6], 16) % 40 + 1


def simulated(messages: list[Message]) -> str:
    """Replies in the form each operator's prompt asks for; values from the prompt's hash."""
    prompt = messages[-1].content
    n = _n(prompt)
    if "Verdict: approve" in prompt:
        ok = n % 3 != 0
        return f"Verdict: {'approve' if ok else 'reject'}\nFeedback: check step {n % 5}."
    if "Choice:" in prompt:
        labels = re.findall(r"\b([A-Z])\b", prompt.split("one of", 1)[-1])
        return f"Most agree.\nChoice: {labels[n % len(labels)] if labels else 'A'}"
    if "```python" in prompt or "Define a function" in prompt:
        return f"```python\ndef solve():\n    return {n}\n```"
    if "State its final answer" in prompt:
        return str(n)
    return f"Working it out step by step.\nAnswer: {n}"


NUMERIC = Scoring(("numeric",))
FLOWS: list[tuple[str, Scoring]] = [
    ("examples/gsm8k_cross_check.flow", NUMERIC),
    ("examples/gsm8k_self_consistency.flow", NUMERIC),
    ("examples/math_revise.flow", NUMERIC),
    ("examples/variants/qa_review.flow", Scoring(("numeric",), input_map={"question": "problem"})),
]


async def run(rows: int, docker: bool, embedded: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="attr-cost-"))
    flows = [f for f in FLOWS if docker or "cross_check" not in f[0]]
    for flow, scoring in flows:
        cache = ModelCache(tmp / f"{Path(flow).stem}.sqlite")  # a fresh cache per flow
        async with Session(model=ScriptedBackend(simulated), cache=cache) as session:
            rep = await attribute(
                ROOT / flow, ARITHMETIC, scoring=scoring, limit=rows, session=session,
                work_dir=tmp / Path(flow).stem,
            )  # fmt: skip
        measured = [u for u in rep.units if u.effect is not None]
        ratio = rep.model_calls / rep.model_calls_naive
        results[flow] = {
            "model": "simulated",
            "rows": rep.n,
            "units": len(rep.units),
            "ablated": len(measured),
            "model_calls": rep.model_calls,
            "model_calls_naive": rep.model_calls_naive,
            "ratio": round(ratio, 3),
        }
        print(
            f"{flow:42s} simulated  rows {rep.n:2d}  units {len(rep.units):2d} "
            f"(ablated {len(measured):2d})  calls {rep.model_calls:4d} made / "
            f"{rep.model_calls_naive:4d} naive = {ratio:.0%}"
        )
    if embedded:
        flow = "examples/variants/qa_review.flow"
        from treadle.runtime.models.llama import LlamaBackend
        from treadle.runtime.models.spec import default_model_path

        cache = ModelCache(tmp / "embedded.sqlite")
        # one llama.cpp thread: spinning threads stall each other on an oversubscribed machine
        backend = LlamaBackend(default_model_path(), n_threads=1)
        async with Session(model=backend, cache=cache) as session:
            rep = await attribute(
                ROOT / flow, ROOT / "examples" / "data" / "qa.jsonl", scorer="contains",
                limit=rows, session=session, work_dir=tmp / "embedded",
            )  # fmt: skip
        ratio = rep.model_calls / rep.model_calls_naive
        results[flow + " (embedded)"] = {
            "model": "embedded SmolLM2-135M",
            "rows": rep.n,
            "model_calls": rep.model_calls,
            "model_calls_naive": rep.model_calls_naive,
            "ratio": round(ratio, 3),
            "baseline": rep.baseline,
            "wall_s": rep.wall_s,
        }
        print(
            f"{flow:42s} embedded   rows {rep.n:2d}  calls {rep.model_calls:4d} made / "
            f"{rep.model_calls_naive:4d} naive = {ratio:.0%}  ({rep.wall_s:.0f} s)"
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--embedded", action="store_true", help="also one flow on SmolLM2")
    ap.add_argument("--no-docker", action="store_true", help="skip the flow that needs Docker")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = asyncio.run(run(args.rows, not args.no_docker, args.embedded))
    total = sum(r["model_calls"] for r in results.values())
    naive = sum(r["model_calls_naive"] for r in results.values())
    print(f"all flows: {total} calls made / {naive} naive = {total / naive:.0%} (aim: <= 50%)")
    figures = {"flows": results, "made": total, "naive": naive, "ratio": round(total / naive, 3)}
    print(json.dumps({**figures, "load": [round(x, 2) for x in load]}))


if __name__ == "__main__":
    main()
