"""Calibrated ranking (SCALE) against full evaluation: tokens saved, and how well the calibrated
scores agree with full scores (Pearson, Spearman, MAE), from `treadle.rank(..., verify=True)`.

Two parts, labelled in the output:

- SIMULATED (default): ten two-step workflow variants (generate, then format) over the shipped
  dataset examples/data/arithmetic.jsonl (50 rows), answered by a simulated model with KNOWN
  per-flow accuracy: each row has a latent difficulty, each flow a skill, and a flow solves a
  row when difficulty + noise < skill; the optimizer's self-prediction is the flow's true
  accuracy plus noise (σ = 0.1). Tokens are counted as the scripted backend counts them (words).
- EMBEDDED (`--embedded`): the nine variants of examples/variants/ over examples/data/qa.jsonl
  on SmolLM2-135M (the embedded model), scorer `contains`, optimizer = the same model. Slow on
  2 cores; `--rows` limits the dataset.

    python benchmarks/rank_savings.py [--embedded] [--rows 20] [--warmup 2]

Aim (issue 10): >= 70% fewer tokens with Spearman >= 0.7. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

from treadle.eval.progress import PlainProgress
from treadle.runtime.cache import ModelCache
from treadle.runtime.models.base import Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session
from treadle.studies.ranking import RankSettings, rank

ROOT = Path(__file__).resolve().parents[1]
ARITHMETIC = ROOT / "examples" / "data" / "arithmetic.jsonl"
QA = ROOT / "examples" / "data" / "qa.jsonl"
SKILLS = [0.55, 0.35, 0.9, 0.8, 0.7, 0.62, 0.45, 0.3, 0.2, 0.12]
STYLES = [
    "Solve this word problem step by step and end with a line 'Answer: <number>'.",
    "List the quantities first, then compute the result. End with 'Answer: <number>'.",
    "Work backwards from the question to the quantities. End with 'Answer: <number>'.",
    "Write the arithmetic as one expression, evaluate it, end with 'Answer: <number>'.",
    "Explain the problem to a child, then solve it. End with 'Answer: <number>'.",
]


def _u(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from its arguments."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return int(h[:8], 16) / 2**32


class Simulated:
    """Flow k solves row i when difficulty(i) + noise(k, i) < SKILLS[k]."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.target = {r["problem"]: r["answer"] for r in rows}
        self.difficulty = {r["problem"]: _u("difficulty", r["id"]) for r in rows}
        self.accuracy = {
            k: sum(self._solves(k, p) for p in self.target) / len(self.target)
            for k in range(len(SKILLS))
        }

    def _solves(self, k: int, problem: str) -> bool:
        return self.difficulty[problem] + 0.3 * (_u("noise", k, problem) - 0.5) < SKILLS[k]

    def __call__(self, messages: list[Message]) -> str:
        prompt = messages[-1].content
        if prompt.startswith("You predict"):
            k = int(re.search(r"flow V(\d+)", prompt.split("The new workflow:", 1)[1]).group(1))  # type: ignore[union-attr]
            noisy = self.accuracy[k] + random.Random(k).gauss(0, 0.1)
            return f"{min(1.0, max(0.0, noisy)):.2f}"
        if "State its final answer" in prompt:
            return re.findall(r"Answer: (-?\d+)", prompt)[-1]
        m = re.match(r"\[V(\d+)\] .*?\n\nProblem: (.*)$", prompt, re.S)
        assert m, prompt[:200]
        k, problem = int(m.group(1)), m.group(2).strip()
        answer = self.target[problem]
        value = answer if self._solves(k, problem) else answer + 1 + k
        steps = " ".join(f"Step {i}: combine the quantities as the problem says." for i in range(6))
        return f"{steps}\nAnswer: {value}"


def write_variants(tmp: Path) -> list[Path]:
    paths = []
    for k in range(len(SKILLS)):
        style = STYLES[k % len(STYLES)]
        text = (
            f"# flow V{k}: a solution in one style, then its final answer\n"
            "workflow solve(problem: text) -> answer: number\n"
            f'  worked = generate from "[V{k}] {style}\\n\\nProblem: {{problem}}"\n'
            "  short = format worked for problem\n"
            "  answer = extract number from short\n"
            "end\n"
        )
        p = tmp / f"v{k}.flow"
        p.write_text(text)
        paths.append(p)
    return paths


def _print(label: str, rep: Any) -> dict[str, Any]:
    for f in rep.flows:
        print(
            f"  {Path(f.path).name:22s} rank {f.rank}  S_pred {_f(f.s_pred)}  S_few {_f(f.s_few)}"
            f"  alpha {_f(f.alpha)}  score {_f(f.score)}  full {_f(f.full)}"
            + ("  (warm-up)" if f.warmup else "")
            + (f"  error: {f.error[:80]}" if f.error else "")
        )
    print(
        f"{label}: tokens {rep.tokens_spent} spent / {rep.tokens_full} full = "
        f"{rep.saving:.0%} saved; Pearson {_f(rep.pearson)}, Spearman {_f(rep.spearman)}, "
        f"MAE {_f(rep.mae)}; {rep.wall_s:.0f} s"
    )
    return {
        "flows": len(rep.flows),
        "rows": rep.n,
        "few_rows": len(rep.few_ids),
        "tokens_spent": rep.tokens_spent,
        "tokens_full": rep.tokens_full,
        "saving": round(rep.saving, 3),
        "pearson": rep.pearson,
        "spearman": rep.spearman,
        "mae": rep.mae,
        "prediction_errors": sum(1 for f in rep.flows if f.error),
        "wall_s": rep.wall_s,
    }


def _f(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


async def simulated(warmup: int, seed: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rank-sim-"))
    rows = [json.loads(line) for line in ARITHMETIC.read_text().splitlines() if line.strip()]
    model = Simulated(rows)
    paths = write_variants(tmp)
    settings = RankSettings(warmup=warmup, verify=True)
    async with Session(model=ScriptedBackend(model), cache=ModelCache(tmp / "c")) as session:
        rep = await rank(
            paths, ARITHMETIC, settings=settings, scorer="numeric", seed=seed, session=session,
            work_dir=tmp / "w",
        )  # fmt: skip
    print(f"SIMULATED model, known per-flow accuracy, {ARITHMETIC.name}:")
    out = _print("SIMULATED", rep)
    out["model"] = "simulated (known per-flow accuracy)"
    out["true_accuracy"] = {f"v{k}": round(a, 3) for k, a in model.accuracy.items()}
    return out


async def embedded(rows: int, warmup: int, seed: int, threads: int) -> dict[str, Any]:
    from treadle.runtime.models.llama import LlamaBackend
    from treadle.runtime.models.spec import default_model_path

    tmp = Path(tempfile.mkdtemp(prefix="rank-emb-"))
    paths = sorted((ROOT / "examples" / "variants").glob("qa_[!l]*.flow"))
    # one llama.cpp thread: on a shared, oversubscribed machine its spinning threads otherwise
    # stall each other (the model is the same either way)
    backend = LlamaBackend(default_model_path(), n_threads=threads)
    settings = RankSettings(warmup=warmup, verify=True)
    async with Session(model=backend, cache=ModelCache(tmp / "c")) as session:
        rep = await rank(
            paths, QA, settings=settings, scorer="contains", seed=seed, limit=rows,
            session=session, work_dir=tmp / "w", display=PlainProgress(every=10**6),
        )  # fmt: skip
    print(f"EMBEDDED model (SmolLM2-135M), {QA.name}:")
    out = _print("EMBEDDED", rep)
    out["model"] = "embedded SmolLM2-135M-Instruct"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedded", action="store_true", help="also the embedded-model run")
    ap.add_argument("--only-embedded", action="store_true")
    ap.add_argument("--rows", type=int, default=20, help="rows of qa.jsonl for --embedded")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads for --embedded")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result: dict[str, Any] = {}
    if not args.only_embedded:
        result["simulated"] = asyncio.run(simulated(args.warmup, args.seed))
    if args.embedded or args.only_embedded:
        result["embedded"] = asyncio.run(embedded(args.rows, args.warmup, args.seed, args.threads))
    result["load"] = [round(x, 2) for x in load]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
