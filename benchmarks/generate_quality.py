"""How well and how fast `treadle generate` writes workflows on the embedded model.

Over the task descriptions in benchmarks/data/generate_tasks.jsonl (math, code, QA, extraction,
agents), with SmolLM2-135M and scope-aware constrained decoding:
- share of candidates that parse, compile with 0 repairs, compile with <= 1 repair, and run on
  the dry run (scripted model);
- distinct compiled candidates per task (by Graph IR hash);
- seconds per workflow (mean and median; the shared start of the prompt, the cheat-sheet and
  operators, is restored from a saved prefix after the first tasks), decode tokens/s with the
  mask and without it (the same decoder loop, free, on each task's prompt right after its
  constrained candidates: paired, so load hits both alike), the mask cost per token, and the
  cost of building a statement's grammar from its scope.

    python benchmarks/generate_quality.py [--tasks N] [-n K]

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

TASKS = Path(__file__).parent / "data" / "generate_tasks.jsonl"

if TYPE_CHECKING:
    from treadle.runtime.models.base import Message
    from treadle.runtime.models.llama_constrained import Decoded, EmbeddedDecoder


def _free_piece(
    decoder: EmbeddedDecoder, *, messages: list[Message], max_tokens: int
) -> tuple[Decoded, float]:
    """The decoder loop without a grammar on a prompt, and the seconds its tokens took."""
    import numpy as np

    decoder.start(decoder.chat_prompt(messages))
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    piece = decoder.piece(None, rng=rng, temperature=0.7, max_tokens=max_tokens)
    return piece, time.perf_counter() - t0


async def main() -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=0, help="only the first N tasks (0: all)")
    ap.add_argument("-n", type=int, default=2, help="candidates per task")
    ap.add_argument("--repairs", type=int, default=1)
    args = ap.parse_args()

    from treadle.compiler import check_source
    from treadle.generation import generate
    from treadle.runtime.models.llama import LlamaBackend
    from treadle.runtime.models.spec import load_model

    rows = [json.loads(line) for line in TASKS.read_text().splitlines() if line.strip()]
    if args.tasks:
        rows = rows[: args.tasks]
    # one thread: see GENERATION_THREADS in treadle/generation/generator.py
    backend = load_model(None, n_threads=1)
    assert isinstance(backend, LlamaBackend)
    await backend.load()
    load1 = os.getloadavg()[0]

    from treadle.generation.decoding.vocabulary import vocabulary
    from treadle.generation.prompt import messages as build
    from treadle.generation.selection import select_examples

    free_tokens = 0
    free_s = 0.0

    total = parsed = zero = one = dry_ok = 0
    distinct: list[int] = []
    seconds: list[float] = []
    tokens = 0
    decode_s = mask_s = grammar_s = 0.0
    grammars = 0
    failures: list[dict[str, object]] = []
    for row in rows:
        result = await generate(
            row["task"], model=backend, n=args.n, repairs=args.repairs, dry_run_candidates=True
        )
        hashes = set()
        for c in result.candidates:
            total += 1
            seconds.append(c.seconds)
            tokens += c.tokens
            mask_s += c.mask_seconds
            grammar_s += c.grammar_seconds
            grammars += c.grammars
            decode_s += c.decode_seconds
            first = c.attempts[0]
            syntax = {d.code for d in check_source(first.text) if d.code in ("E001", "E002")}
            if first.codes != ["undecoded"] and not syntax:
                parsed += 1
            if c.status == "compiled":
                hashes.add(c.ir_hash)
                zero += c.repairs == 0
                one += c.repairs <= 1
                dry_ok += bool(c.dry_run is None or c.dry_run.ok)
            else:
                failures.append({"task": row["id"], "status": c.status, "codes": first.codes})
        distinct.append(len(hashes))
        # paired: the same decoder without a grammar, on this task's prompt, right after, for
        # as many tokens as candidate 1 took (so machine load hits both alike)
        msgs = build(row["task"], vocabulary(), [], select_examples(row["task"]))
        budget = max(16, result.candidates[0].tokens)
        piece, spent = await backend.with_decoder(
            functools.partial(_free_piece, messages=msgs, max_tokens=budget)
        )
        free_s += spent
        free_tokens += piece.stats.tokens
        print(
            f"{row['id']:8s} {len(hashes)} distinct; "
            + "; ".join(
                f"{c.status}/{c.repairs}r/{c.tokens}t/{c.seconds:.1f}s" for c in result.candidates
            ),
            flush=True,
        )

    load2 = os.getloadavg()[0]

    figures: dict[str, object] = {
        "tasks": len(rows),
        "candidates": total,
        "parse_share": parsed / total,
        "compile_0_repairs_share": zero / total,
        "compile_le1_repair_share": one / total,
        "dry_run_ok_share": dry_ok / total,
        "distinct_per_task": sum(distinct) / len(distinct),
        "seconds_per_workflow_mean": sum(seconds) / len(seconds),
        "seconds_per_workflow_median": sorted(seconds)[len(seconds) // 2],
        "median_s_per_workflow": statistics.median(seconds),
        "tokens_per_workflow": tokens / total,
        "tokens_per_s_masked": tokens / decode_s if decode_s else None,
        "tokens_per_s_free": free_tokens / free_s if free_s else None,
        "mask_ms_per_token": 1000 * mask_s / tokens if tokens else None,
        "grammar_ms_per_statement": 1000 * grammar_s / grammars if grammars else None,
        "mask_overhead_share": mask_s / decode_s if decode_s else None,
        "load_average": [round(load1, 2), round(load2, 2)],
        "failures": failures[:10],
    }
    for k, v in figures.items():
        if k != "failures":
            print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    asyncio.run(main())
