"""Latency of `print(1)` in the sandbox: a cold container per run, the warm pool of single-use
containers (isolation="fresh"), and a reused container after a verified reset ("reset").

Cold is what a `docker run`-style sandbox pays (create, start, run, remove, all on the request
path); warm takes an already started container from the pool; reset reuses one. Same image,
same hardening. Prints the figures, then one JSON object as the last line.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

from treadle.runtime.sandbox.docker_sandbox import DockerSandbox

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
COMMAND = ["python3", "-c", "print(1)"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000


async def measure(pool_size: int, pause: float, isolation: str = "fresh") -> list[float]:
    sb = DockerSandbox(pool_size=pool_size, isolation=isolation)  # type: ignore[arg-type]
    await sb.start()
    try:
        await asyncio.sleep(2.0 if pool_size else 0)  # let the pool fill
        times = []
        for _ in range(N + 2):
            t = time.perf_counter()
            r = await sb.run(COMMAND)
            times.append(time.perf_counter() - t)
            assert r.stdout == "1\n", r
            # a real workflow does other work between runs; this lets the refill finish
            await asyncio.sleep(pause)
        return times[2:]
    finally:
        await sb.aclose()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> None:
    load_before = load()
    cold = await measure(0, 0.3)
    warm = await measure(2, 1.0)
    reset = await measure(1, 0.0, "reset")
    fig: dict[str, object] = {
        "runs": N,
        "cold_p50_ms": round(pct(cold, 0.5), 1),
        "cold_p95_ms": round(pct(cold, 0.95), 1),
        "warm_p50_ms": round(pct(warm, 0.5), 1),
        "warm_p95_ms": round(pct(warm, 0.95), 1),
        "reset_p50_ms": round(pct(reset, 0.5), 1),
        "reset_p95_ms": round(pct(reset, 0.95), 1),
    }
    fig["speedup_p50"] = round(pct(cold, 0.5) / pct(warm, 0.5), 1)
    fig["load_before"] = load_before
    fig["load_after"] = after = load()
    print(f"print(1) in the sandbox, {N} runs each (same image and hardening)")
    labels = {
        "cold": "cold container per run:",
        "warm": "warm pool (fresh):     ",
        "reset": "reused after a reset:  ",
    }
    for name, label in labels.items():
        p50, p95 = fig[f"{name}_p50_ms"], fig[f"{name}_p95_ms"]
        print(f"  {label} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
    mean = statistics.mean(warm) * 1000
    print(f"  warm is {fig['speedup_p50']}x faster at p50 (mean warm {mean:.1f} ms)")
    print(f"  load average before: {load_before}; after: {after} ({os.cpu_count()} cores)")
    print(json.dumps(fig))


if __name__ == "__main__":
    asyncio.run(main())
