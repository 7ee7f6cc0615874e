"""`treadle optimize` against AFlow's own loop on a simulated task whose every flow shape has a
known accuracy (`simulated_task.py`: a scripted executor whose right-answer rate depends on the
flow's structure, and a scripted optimizer that rewrites flows and writes a broken one every
third proposal).

- "full": AFlow's own loop (FoundationAgents/AFlow `run.py` defaults), built here from
  treadle's parts: the seed, then one child a round from the optimizer (parent by AFlow's soft
  top-k), evaluated on the whole validation split `validation_rounds` = 5 times; a child that
  does not compile spends its round; no de-duplication (AFlow evaluates a repeated graph
  again);
- "treadle": warm-up rounds in full, then the calibrated surrogate (few-shot + the optimizer's
  self-prediction) with a full run only for contenders, proposals gated (a broken one costs no
  evaluation and the round tries again), deterministic moves.

Same rounds, same search seeds, same models. The last line is one JSON object.

    python benchmarks/optimize_cost.py [--rounds 8] [--seeds 0,1,2] [--val 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import simulated_task as sim

from treadle.eval.evaluate import read_results
from treadle.eval.options import RunConfig
from treadle.optimization import OptimizeSettings, optimize

SHAPES = [sim.SEED_FLOW, "step by step", "samples 5", "step by step samples 5"]


#: AFlow's run.py: each candidate is validated this many times
VALIDATION_ROUNDS = 5


async def aflow_loop(seed: int, rounds: int, n_val: int, work: Path) -> dict[str, object]:
    """AFlow's loop: full validation (5 times) of every child, no gate beyond loading."""
    import random

    from treadle.compiler import check_source
    from treadle.eval.evaluate import evaluate
    from treadle.generation.repair import extract_flow
    from treadle.optimization.proposals import PromptContext, optimizer_messages
    from treadle.optimization.record import Node
    from treadle.optimization.strategies.aflow import probabilities
    from treadle.runtime.models.base import GenParams

    ex, opt = sim.executor(), sim.optimizer(broken_every=3)
    run = RunConfig(model=ex, cache=False, sandbox="process", seed=seed)
    data = sim.rows(n_val)
    context = PromptContext("answer the question", [], {r["id"]: r for r in data})
    pool: list[tuple[Node, str, object]] = []
    optimizer_tokens = evaluations = wasted = 0

    async def validate(text: str, name: str) -> object:
        nonlocal evaluations
        path = work / f"{name}.flow"
        path.write_text(text)
        evaluations += 1
        return await evaluate(path, data, scorer="exact", run=run, epochs=VALIDATION_ROUNDS,
                              results=work / f"{name}.jsonl")  # fmt: skip

    rep = await validate(sim.SEED_FLOW, "round1")
    pool.append((Node(id=0, round=1, path="", ir_hash="", val=rep.mean), sim.SEED_FLOW, rep))  # type: ignore[attr-defined]
    for r in range(2, rounds + 2):
        rng = random.Random(f"{seed}:{r}")
        ranked = [pool[0], *sorted(pool[1:], key=lambda x: -(x[0].val or 0))[:4]]
        probs = probabilities([x[0].val or 0.0 for x in ranked])
        node, text, report = rng.choices(ranked, weights=probs, k=1)[0]
        msgs = optimizer_messages(node, text, report, [], [], context)  # type: ignore[arg-type]
        reply = await opt.complete(msgs, GenParams(temperature=0.0, seed=seed + 1000 * r))
        optimizer_tokens += reply.usage.input_tokens + reply.usage.output_tokens
        child = extract_flow(reply.text)
        if any(d.is_error for d in check_source(child, "<child>")):
            wasted += 1  # the graph does not load: the round is spent
            continue
        rep = await validate(child, f"round{r}")
        pool.append((Node(id=len(pool), round=r, path="", ir_hash="", val=rep.mean), child, rep))  # type: ignore[attr-defined]
    best = max(pool, key=lambda x: x[0].val or 0.0)[1]
    executor_tokens = ex.tokens
    return {
        "loop": "full", "seed": seed, "best_true": round(sim.true_accuracy(best), 4),
        "tokens": executor_tokens + optimizer_tokens, "executor_tokens": executor_tokens,
        "optimizer_tokens": optimizer_tokens, "evaluations_full": evaluations,
        "evaluations_few": 0, "wasted_rounds": wasted, "invalid_proposals": wasted,
    }  # fmt: skip


async def one(loop: str, seed: int, rounds: int, n_val: int, work: Path) -> dict[str, object]:
    if loop == "full":
        return await aflow_loop(seed, rounds, n_val, work)
    flow = work / "seed.flow"
    flow.write_text(sim.SEED_FLOW)
    ex, opt = sim.executor(), sim.optimizer(broken_every=3)
    settings = OptimizeSettings(
        rounds=rounds, warmup=1, optimizer_model=opt, patience=rounds + 1, few_ratio=0.1
    )
    res = await optimize(
        flow,
        sim.rows(n_val),
        test=sim.rows(50, 10_000),
        scorer="exact",
        settings=settings,
        out=work / f"{loop}-{seed}",
        run=RunConfig(model=ex, cache=False, sandbox="process", seed=seed),
    )
    best = Path(res.best).read_text() if res.best else sim.SEED_FLOW
    # the search's tokens: what the test split and the coverage repeat cost at the end is not
    # search (AFlow's loop above has no such step)
    after = 0
    for sub in ("test", "coverage"):
        for f in (work / f"{loop}-{seed}" / sub).glob("*.jsonl"):
            after += sum(r.tokens_in + r.tokens_out for r in read_results(f)[1])
    return {
        "loop": loop,
        "seed": seed,
        "best_true": round(sim.true_accuracy(best), 4),
        "tokens": res.spent.total - after,
        "final_tokens": after,
        "executor_tokens": res.spent.executor - after,
        "optimizer_tokens": res.spent.optimizer,
        "evaluations_full": res.evaluations_full,
        "evaluations_few": res.evaluations_few,
        "wasted_rounds": res.wasted_rounds,
        "invalid_proposals": res.invalid_proposals,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--val", type=int, default=100)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for loop in ("full", "treadle"):
            for s in seeds:
                work = Path(tmp) / f"{loop}{s}"
                work.mkdir()
                r = await one(loop, s, args.rounds, args.val, work)
                rows.append(r)
                print(json.dumps(r))
    true_best = max(sim.true_accuracy(s) for s in SHAPES)

    def total(loop: str, key: str) -> float:
        return sum(float(r[key]) for r in rows if r["loop"] == loop)  # type: ignore[arg-type]

    def mean_best(loop: str) -> float:
        return round(total(loop, "best_true") / len(seeds), 4)

    full_tokens, treadle_tokens = int(total("full", "tokens")), int(total("treadle", "tokens"))
    print(
        f"full validation: best true accuracy {mean_best('full'):.3f}, {full_tokens:,} tokens, "
        f"{int(total('full', 'evaluations_full'))} full evaluations, "
        f"{int(total('full', 'wasted_rounds'))} wasted rounds"
    )
    print(
        f"treadle:         best true accuracy {mean_best('treadle'):.3f}, "
        f"{treadle_tokens:,} tokens ({100 * treadle_tokens / full_tokens:.0f}%), "
        f"{int(total('treadle', 'evaluations_full'))} full + "
        f"{int(total('treadle', 'evaluations_few'))} few-shot evaluations, "
        f"{int(total('treadle', 'wasted_rounds'))} wasted rounds"
    )
    print(
        json.dumps(
            {
                "full_tokens": full_tokens,
                "treadle_tokens": treadle_tokens,
                "ratio": round(treadle_tokens / full_tokens, 4),
                "full_best": mean_best("full"),
                "treadle_best": mean_best("treadle"),
                "true_best": round(true_best, 4),
                "wasted_rounds": int(total("treadle", "wasted_rounds")),
                "full_wasted_rounds": int(total("full", "wasted_rounds")),
                "rounds": args.rounds,
                "seeds": seeds,
                "val_rows": args.val,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
