"""`treadle optimize` against AFlow's own loop on a simulated task whose every flow shape has a
known accuracy (`simulated_task.py`: a scripted executor whose right-answer rate depends on the
flow's structure, and a scripted optimizer that rewrites flows and writes a broken one every
third proposal).

- "full": AFlow's loop: every child evaluated on the whole validation split, one proposal a
  round (a broken one spends the round), no deterministic moves;
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

from treadle.eval.options import RunConfig
from treadle.optimization import OptimizeSettings, optimize

SHAPES = [sim.SEED_FLOW, "step by step", "samples 5", "step by step samples 5"]


async def one(loop: str, seed: int, rounds: int, n_val: int, work: Path) -> dict[str, object]:
    flow = work / "seed.flow"
    flow.write_text(sim.SEED_FLOW)
    ex, opt = sim.executor(), sim.optimizer(broken_every=3)
    if loop == "full":
        settings = OptimizeSettings(
            rounds=rounds,
            surrogate=False,
            moves=(),
            attempts=1,
            optimizer_model=opt,
            patience=rounds + 1,
        )
    else:
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
    return {
        "loop": loop,
        "seed": seed,
        "best_true": round(sim.true_accuracy(best), 4),
        "tokens": res.spent.total,
        "executor_tokens": res.spent.executor,
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
