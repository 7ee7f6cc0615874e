"""What treadle's embedded backend costs over calling llama-cpp-python directly.

Runs the same greedy prompt through `llama_cpp.Llama.create_chat_completion` and through
`LlamaBackend.complete` (same loaded model, same arguments), interleaved so drift hits both,
and compares generated tokens per second. Then shows that a cached re-run makes no model call.
The last line printed is one JSON object with the figures.

    python benchmarks/model_overhead.py [--runs 8] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from treadle.runtime.cache import CachedModel, ModelCache
from treadle.runtime.models import GenParams, Message
from treadle.runtime.models.llama import LlamaBackend, chat_kwargs
from treadle.runtime.models.spec import default_model_path

PROMPT = [
    Message(role="system", content="You are a concise assistant."),
    Message(role="user", content="Explain in a few sentences why the sky is blue."),
]


async def main(runs: int, max_tokens: int) -> dict[str, Any]:
    path = default_model_path()
    params = GenParams(temperature=0.0, max_tokens=max_tokens)
    backend = LlamaBackend(path)
    t0 = time.perf_counter()
    llama = await backend.load()
    load_s = time.perf_counter() - t0
    kwargs = chat_kwargs(PROMPT, params)

    def direct() -> tuple[int, float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        reply = llama.create_chat_completion(**kwargs)
        n = reply["usage"]["completion_tokens"]
        return n, time.perf_counter() - start, time.process_time() - cpu

    overheads: list[float] = []

    async def through_treadle() -> tuple[int, float, float]:
        start, cpu, inside = time.perf_counter(), time.process_time(), backend.model_seconds
        completion = await backend.complete(PROMPT, params)
        wall = time.perf_counter() - start
        overheads.append(wall - (backend.model_seconds - inside))
        n = completion.usage.output_tokens
        return n, wall, time.process_time() - cpu

    direct()  # warm-up: first call pays for buffers and the prompt's KV cache
    await through_treadle()
    direct_tps: list[float] = []
    treadle_tps: list[float] = []
    direct_cpu: list[float] = []
    treadle_cpu: list[float] = []
    for i in range(runs):
        order = ("d", "t") if i % 2 == 0 else ("t", "d")
        for which in order:
            if which == "d":
                n, wall, cpu = direct()
                direct_tps.append(n / wall)
                direct_cpu.append(n / cpu)
            else:
                n, wall, cpu = await through_treadle()
                treadle_tps.append(n / wall)
                treadle_cpu.append(n / cpu)
    d_med, t_med = statistics.median(direct_tps), statistics.median(treadle_tps)
    d_best, t_best = max(direct_tps), max(treadle_tps)
    dc_med, tc_med = statistics.median(direct_cpu), statistics.median(treadle_cpu)
    print(f"model: {path.name} (loaded in {load_s:.2f} s), {runs} runs, max_tokens={max_tokens}")
    print("                          median tok/s   best tok/s   tok per CPU-s (median)")
    print(f"direct llama-cpp-python: {d_med:12.1f} {d_best:12.1f} {dc_med:16.1f}")
    print(f"treadle LlamaBackend:    {t_med:12.1f} {t_best:12.1f} {tc_med:16.1f}")
    print(
        f"ratio treadle/direct:    {t_med / d_med:12.3f} {t_best / d_best:12.3f} "
        f"{tc_med / dc_med:16.3f}"
    )
    # treadle's own cost per call: the wall time of `complete` minus the time inside llama.cpp
    # (thread hand-off, locks, argument and result conversion); immune to other load
    overhead_ms = statistics.median(overheads) * 1000
    call_ms = max_tokens / t_med * 1000
    print(
        f"treadle overhead per call: {overhead_ms:.3f} ms (median) = "
        f"{overhead_ms / call_ms * 100:.3f} % of a {max_tokens}-token call"
    )
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedModel(backend, ModelCache(Path(tmp) / "bench.sqlite"))
        start = time.perf_counter()
        first = await cached.complete(PROMPT, params)
        miss_s = time.perf_counter() - start
        calls_before = backend.calls
        start = time.perf_counter()
        second = await cached.complete(PROMPT, params)
        hit_s = time.perf_counter() - start
        model_calls_on_rerun = backend.calls - calls_before
    assert second.cached and second.text == first.text and model_calls_on_rerun == 0
    print(
        f"cache: first call {miss_s * 1000:.1f} ms, cached re-run {hit_s * 1000:.2f} ms, "
        f"model calls on re-run: {model_calls_on_rerun}"
    )
    return {
        "model": path.name,
        "runs": runs,
        "max_tokens": max_tokens,
        "direct_tokens_per_s": round(d_med, 1),
        "treadle_tokens_per_s": round(t_med, 1),
        "ratio": round(t_med / d_med, 3),
        "best_ratio": round(t_best / d_best, 3),
        "cpu_ratio": round(tc_med / dc_med, 3),
        "overhead_ms_per_call": round(overhead_ms, 3),
        "overhead_ratio": round(1 - overhead_ms / call_ms, 5),
        "within_5_percent": t_med >= 0.95 * d_med,
        "load_average": round(os.getloadavg()[0], 2),
        "cache_miss_ms": round(miss_s * 1000, 1),
        "cache_hit_ms": round(hit_s * 1000, 2),
        "model_calls_on_cached_rerun": model_calls_on_rerun,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.runs, args.max_tokens))))
