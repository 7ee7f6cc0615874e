"""Throughput of an evaluation on the embedded model, against llama.cpp's own limit.

1. `treadle.evaluate` of a one-call flow (greedy, `max_tokens` each) on the same rows at
   concurrency 1, 4 and 8, and of a `samples 5` flow at concurrency 8: rows/s and generated
   tokens/s (uncached, the model loaded once beforehand).
2. llama.cpp directly, in the same run, on the same prompts and token budget: one stream
   (`Llama.create_chat_completion`, one call after the other) and batched (every prompt in its
   own sequence of one context, one `llama_decode` per step, as llama.cpp's `batched` example),
   generated tokens/s. Aims: concurrency 8 gives >= 3x the rows/s of concurrency 1, and
   treadle's batched tokens/s is within 10% of the direct batched figure.

    python benchmarks/model_throughput.py [--rows 8] [--max-tokens 48] [--threads 1]

Prints the figures with the load average, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadle.eval.evaluate import evaluate
from treadle.eval.options import RunConfig, Scoring
from treadle.runtime.models import GenParams, Message
from treadle.runtime.models import _llama_internals as internals
from treadle.runtime.models.llama import LlamaBackend, chat_kwargs
from treadle.runtime.models.spec import default_model_path

if TYPE_CHECKING:
    from llama_cpp import Llama

INSTRUCTION = "Answer the question in two sentences."
FLOW = """workflow answer(question: text) -> answer: text
  answer = generate from "{instruction}\\n\\nQuestion: {{question}}" with temperature 0, \
max_tokens {max_tokens}
end
"""
SAMPLES_FLOW = """workflow answers(question: text) -> answers: list of text
  answers = generate from "{instruction}\\n\\nQuestion: {{question}}" with samples 5, \
temperature 0.7, max_tokens {max_tokens}
end
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def questions(n: int) -> list[str]:
    topics = ["rivers", "bread", "comets", "glass", "owls", "copper", "tides", "maps", "bees"]
    return [f"Why do {topics[i % len(topics)]} matter to people? ({i})" for i in range(n)]


def messages(question: str) -> list[Message]:
    return [Message(role="user", content=f"{INSTRUCTION}\n\nQuestion: {question}")]


async def through_treadle(
    backend: LlamaBackend, flow_text: str, qs: list[str], concurrency: int, tmp: Path
) -> dict[str, float]:
    flow = tmp / f"bench-{concurrency}-{len(flow_text)}.flow"
    flow.write_text(flow_text)
    data = [{"id": f"q{i}", "question": q, "answer": ""} for i, q in enumerate(qs)]
    t = time.perf_counter()
    report = await evaluate(
        flow, data, scoring=Scoring(("exact",)),
        run=RunConfig(model=backend, cache=False, concurrency=concurrency, traces=False),
    )  # fmt: skip
    wall = time.perf_counter() - t
    assert report.n == len(qs) and report.errors == 0, report
    return {
        "rows_per_s": len(qs) / wall,
        "tokens_per_s": report.tokens_out / wall,
        "tokens": report.tokens_out,
        "wall_s": wall,
    }


def direct_single(llama: Llama, qs: list[str], max_tokens: int) -> dict[str, float]:
    """llama-cpp-python's own chat call, one prompt after the other."""
    params = GenParams(temperature=0.0, max_tokens=max_tokens)
    tokens = 0
    t = time.perf_counter()
    for q in qs:
        llama.reset()
        reply: Any = llama.create_chat_completion(**chat_kwargs(messages(q), params))
        tokens += reply["usage"]["completion_tokens"]
    wall = time.perf_counter() - t
    return {"tokens_per_s": tokens / wall, "tokens": tokens, "wall_s": wall}


def direct_batched(llama: Llama, qs: list[str], max_tokens: int, threads: int) -> dict[str, float]:
    """Every prompt in its own sequence, all decoded together with llama.cpp's C API: prompts
    in one batch (up to 512 tokens per decode), then one token per live sequence per decode,
    greedy, each sequence ending at end-of-generation or `max_tokens`."""
    import llama_cpp

    n = len(qs)
    prompts = [internals.chat_tokens(llama, messages(q)) for q in qs]
    ctx = internals.new_context(llama, n_ctx=n * 1024, n_seq_max=n, n_batch=512, n_threads=threads)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    vocab = internals.vocab(llama)
    greedy = llama_cpp.llama_sampler_init_greedy()

    def put(i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    tokens = 0
    t = time.perf_counter()
    try:
        last: dict[int, tuple[int, int]] = {}  # seq -> (batch index of its logits, position)
        pending = [(s, p) for s in range(n) for p in range(len(prompts[s]))]
        while pending:
            chunk, pending = pending[:512], pending[512:]
            for i, (s, p) in enumerate(chunk):
                put(i, prompts[s][p], p, s, p == len(prompts[s]) - 1)
                if p == len(prompts[s]) - 1:
                    last[s] = (i, p)
            batch.n_tokens = len(chunk)
            assert llama_cpp.llama_decode(ctx, batch) == 0
            # sample the sequences whose prompt ended in this chunk, before the next decode
            for s, (i, p) in list(last.items()):
                if i >= 0:
                    last[s] = (-1 - int(llama_cpp.llama_sampler_sample(greedy, ctx, i)), p)
        live = {s: (-1 - tok, p) for s, (tok, p) in last.items()}  # seq -> (token, position)
        produced = dict.fromkeys(live, 0)
        while live:
            order: list[tuple[int, int]] = []
            for s, (tok, p) in live.items():
                if llama_cpp.llama_vocab_is_eog(vocab, tok) or produced[s] >= max_tokens:
                    continue
                put(len(order), tok, p + 1, s, True)
                order.append((s, p + 1))
                produced[s] += 1
            if not order:
                break
            batch.n_tokens = len(order)
            assert llama_cpp.llama_decode(ctx, batch) == 0
            live = {
                s: (int(llama_cpp.llama_sampler_sample(greedy, ctx, i)), p)
                for i, (s, p) in enumerate(order)
            }
        tokens = sum(produced.values())
    finally:
        wall = time.perf_counter() - t
        llama_cpp.llama_sampler_free(greedy)
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return {"tokens_per_s": tokens / wall, "tokens": tokens, "wall_s": wall}


async def main(rows: int, max_tokens: int, threads: int) -> dict[str, Any]:
    backend = LlamaBackend(default_model_path(), n_threads=threads, slots=max(8, rows))
    llama = await backend.load()
    await backend.batch_engine()
    qs = questions(rows)
    plain = FLOW.format(instruction=INSTRUCTION, max_tokens=max_tokens)
    samples = SAMPLES_FLOW.format(instruction=INSTRUCTION, max_tokens=max_tokens)
    print(f"model {backend.path.name}, {rows} rows, max_tokens {max_tokens}, {threads} thread(s)")
    print(f"load average before: {load()} on {os.cpu_count()} cores")
    out: dict[str, Any] = {"rows": rows, "max_tokens": max_tokens, "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        single = direct_single(llama, qs, max_tokens)
        batched = direct_batched(llama, qs, max_tokens, threads)
        by_c = {c: await through_treadle(backend, plain, qs, c, Path(tmp)) for c in (1, 4, 8)}
        sampled = await through_treadle(backend, samples, qs, 8, Path(tmp))
    for c, r in by_c.items():
        print(
            f"treadle evaluate c{c}: {r['rows_per_s']:.3f} rows/s, {r['tokens_per_s']:.1f} "
            f"tok/s ({r['tokens']:.0f} tokens in {r['wall_s']:.1f} s)"
        )
        out[f"rows_per_s_c{c}"] = round(r["rows_per_s"], 4)
        out[f"tokens_per_s_c{c}"] = round(r["tokens_per_s"], 1)
    print(
        f"treadle evaluate samples 5, c8: {sampled['rows_per_s']:.3f} rows/s, "
        f"{sampled['tokens_per_s']:.1f} tok/s ({sampled['tokens']:.0f} tokens)"
    )
    print(f"direct single stream: {single['tokens_per_s']:.1f} tok/s ({single['tokens']} tokens)")
    print(f"direct batched:       {batched['tokens_per_s']:.1f} tok/s ({batched['tokens']} tokens)")
    speedup = by_c[8]["rows_per_s"] / by_c[1]["rows_per_s"]
    ratio = by_c[8]["tokens_per_s"] / batched["tokens_per_s"]
    print(f"c8 / c1 rows/s: {speedup:.2f}x (aim >= 3); treadle / direct batched: {ratio:.3f}")
    print(f"load average after: {load()}")
    out.update(
        samples5_rows_per_s=round(sampled["rows_per_s"], 4),
        samples5_tokens_per_s=round(sampled["tokens_per_s"], 1),
        direct_single_tokens_per_s=round(single["tokens_per_s"], 1),
        direct_batched_tokens_per_s=round(batched["tokens_per_s"], 1),
        treadle_batched_tokens_per_s=round(by_c[8]["tokens_per_s"], 1),
        c8_over_c1=round(speedup, 2),
        treadle_over_direct_batched=round(ratio, 3),
        load_average=round(os.getloadavg()[0], 2),
    )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rows, args.max_tokens, args.threads))))
