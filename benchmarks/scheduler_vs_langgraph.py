"""Scheduler overhead, treadle vs LangGraph, on the same graphs of no-op async steps.

    python benchmarks/scheduler_vs_langgraph.py [--quick] [--trace-dir DIR]

Graphs: a 3-step chain, a 5-way fan-out + join, a 100-step chain, a 1,000-wide fan-out + join.
Both sides get the same shape and do nothing in their steps, so the time is pure scheduling:
for treadle, planning is shared across runs (as `Flow` does) and every step still has its
arguments evaluated and validated into the operator's pydantic model, its output converted,
and a span created; LangGraph runs a compiled `StateGraph` with `ainvoke` and no checkpointer.
treadle runs with no concurrency limit (LangGraph has none by default) and, in the bare column
compared with LangGraph, with spans neither kept nor given value previews. Two more treadle
columns: the trace off as `Flow.run(trace=None)` has it (spans kept in memory for
`RunResult.spans`, value previews), and the full JSONL trace (one file per run, value previews,
as `treadle run` writes), with its cost over the bare column (`jsonl_over_bare`, aim: at most
1.5x) and over the trace off (`jsonl_over_trace_off`), and its size in bytes per step.

A trace file per run costs a file creation, which is the filesystem's price, not treadle's: on
a short graph it is a large share of the run (a 3-step chain runs in ~45 us; creating, writing
and closing a 1 KB file takes ~9 us on tmpfs, ~20 us on a quiet ext4 and several hundred while
ext4 commits its journal). The traces go to the system's temporary directory unless
`--trace-dir` says otherwise; the figures name that directory's filesystem and what one such
file costs there (`trace_file_us`), measured between the graphs.

Then the independence demo: one branch sleeps 10 ms then runs a second step, an independent
branch sleeps 1 s. treadle starts the second step as soon as the first finishes; LangGraph's
supersteps make it wait for the slow branch. Both timestamps are printed for both.

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import operator
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from treadle.runtime import ir
from treadle.runtime.op_context import OpContext
from treadle.runtime.scheduler import RunOptions, Scheduler
from treadle.runtime.session import Session
from treadle.runtime.step_context import RunState
from treadle.runtime.tracing import JsonlSink, Tracer, TraceStream, open_stream
from treadle.runtime.tracing.stream import index_path
from treadle.stdlib_ops import registry
from treadle.stdlib_ops.registry import OpArgs, Operator, prep, subject

# ---------------------------------------------------------------- treadle side


class NoopArgs(OpArgs):
    value: Any = subject("ignored", default=None)


class SleepArgs(OpArgs):
    value: Any = subject("ignored", default=None)
    seconds: float = prep("for", "how long")


MARKS: dict[str, float] = {}


async def _noop(ctx: OpContext, args: NoopArgs, options: Any) -> None:
    return None


async def _sleep(ctx: OpContext, args: SleepArgs, options: Any) -> None:
    await asyncio.sleep(args.seconds)
    MARKS[ctx.step_id] = time.perf_counter()


async def _mark(ctx: OpContext, args: NoopArgs, options: Any) -> None:
    MARKS[ctx.step_id] = time.perf_counter()


def _register() -> None:
    registry.operators()
    for name, args, fn in (
        ("bench.noop", NoopArgs, _noop),
        ("bench.sleep", SleepArgs, _sleep),
        ("bench.mark", NoopArgs, _mark),
    ):
        if registry.get(name) is None:
            registry.register(Operator(name, "benchmark step.", args, Any, fn))


def _ref(name: str) -> ir.Ref:
    return ir.Ref(name=name)


def _step(id: str, op: str = "bench.noop", **args: ir.Expr) -> ir.Step:
    return ir.Step(id=id, name=id, op=op, args=args)


def treadle_chain(n: int) -> ir.Program:
    nodes = [_step("s0")] + [_step(f"s{i}", value=_ref(f"s{i - 1}")) for i in range(1, n)]
    return _program(nodes, {"out": _ref(f"s{n - 1}")})


def treadle_fanout(width: int) -> ir.Program:
    """A source, `width` parallel steps reading it, and a join reading all of them:
    width + 2 steps."""
    nodes = [_step("src")]
    nodes += [_step(f"b{i}", value=_ref("src")) for i in range(width)]
    join = ir.ListExpr(items=tuple(_ref(f"b{i}") for i in range(width)))
    nodes.append(_step("join", value=join))
    return _program(nodes, {"out": _ref("join")})


def _program(nodes: list[ir.Step], outputs: dict[str, ir.Expr]) -> ir.Program:
    wf = ir.Workflow(name="bench", graph=ir.Graph(nodes=tuple(nodes), outputs=outputs))
    return ir.Program(entry="bench", workflows={"bench": wf})


def treadle_runner(
    prog: ir.Program,
    *,
    trace_dir: Path | None = None,
    stream: TraceStream | None = None,
    previews: bool = False,
) -> Callable[[], Awaitable[Any]]:
    """Runs of `prog` sharing one plan: bare (no previews, spans not kept), or with
    `previews` as `Flow.run(trace=None)` traces (spans kept in memory, value previews), or
    with a JSONL trace file per run in `trace_dir` (as `treadle run` writes), or into the
    batch `stream` (as an evaluation's rows write: one labelled trace per run, with the
    header `Flow.run` gives it)."""
    plans: dict[int, Any] = {}
    options = RunOptions(concurrency=None)
    counter = iter(range(10**9))
    #: the trace file of the latest run
    last: list[Path] = []
    if trace_dir is not None:
        last.append(trace_dir / "none")
    header = {
        "workflow": prog.entry,
        "program_hash": prog.content_hash(),  # once: `Flow` keeps it
        "source": None,
        "model": None,
        "seed": None,
    }

    async def once() -> Any:
        if trace_dir is not None:
            last[0] = trace_dir / f"{next(counter)}.jsonl"
            tracer = Tracer([JsonlSink(last[0], header=header)])  # as Flow.run: spans kept
        elif stream is not None:
            sink = stream.trace(row=str(next(counter)), epoch=0)
            sink.describe(header)
            tracer = Tracer()
            tracer.attach(sink)
        elif previews:
            tracer = Tracer()
        else:
            tracer = Tracer(keep=False, record_values=False)
        state = RunState(tracer, Session(cache=False))  # a private session, as Flow.run opens
        try:
            return await Scheduler(
                prog, state=state, options=options, plans=plans, operators=registry.get
            ).run({})
        finally:
            tracer.close()

    once.last_trace = last  # type: ignore[attr-defined]
    if stream is not None:
        # what the runs queued is written inside the timed turn, not in the next side's
        once.flush = stream.flush  # type: ignore[attr-defined]
    return once


# ---------------------------------------------------------------- LangGraph side


class State(TypedDict, total=False):
    marks: Annotated[list[str], operator.add]


async def _lg_noop(state: State) -> None:
    return None


def langgraph_chain(n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(State)
    for i in range(n):
        g.add_node(f"s{i}", _lg_noop)
    g.add_edge(START, "s0")
    for i in range(1, n):
        g.add_edge(f"s{i - 1}", f"s{i}")
    g.add_edge(f"s{n - 1}", END)
    return g.compile()


def langgraph_fanout(width: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(State)
    g.add_node("src", _lg_noop)
    g.add_node("join", _lg_noop)
    g.add_edge(START, "src")
    branches = [f"b{i}" for i in range(width)]
    for b in branches:
        g.add_node(b, _lg_noop)
        g.add_edge("src", b)
    g.add_edge(branches, "join")
    g.add_edge("join", END)
    return g.compile()


def langgraph_runner(graph: Any) -> Callable[[], Awaitable[Any]]:
    async def once() -> Any:
        return await graph.ainvoke({"marks": []})

    return once


# ---------------------------------------------------------------- measuring


@dataclass
class Samples:
    """Per runner, per trial: wall-clock and CPU (this process's, every thread) µs per step."""

    wall: list[list[float]]
    cpu: list[list[float]]

    def us(self, i: int, clock: str = "wall") -> float:
        """Runner i's median µs per step."""
        return statistics.median(getattr(self, clock)[i])

    def ratio(self, i: int, j: int, clock: str = "wall") -> float:
        """The median over trials of runner i's time over runner j's in the same trial: a
        paired figure, so a burst of load that slows one trial cancels out."""
        times = getattr(self, clock)
        return statistics.median(a / b for a, b in zip(times[i], times[j], strict=True))


async def measure(
    runs: list[Callable[[], Awaitable[Any]]], steps: int, repeats: int, trials: int = 7
) -> Samples:
    """Each runner's time per step in `trials` interleaved trials of `repeats` runs.

    The runners take turns within each trial, so a burst of load on a shared machine hits
    every side alike instead of whichever happened to be measured at the time, and the order
    of the turns rotates from one trial to the next. Each turn starts from a collected heap:
    otherwise the garbage one side leaves (LangGraph leaves a lot) is collected in the next
    side's time, which once tripled a treadle column. A runner with a `flush` (the batch
    stream) writes what it queued before its turn's clock stops. CPU time is the process's
    (the trace flusher thread included): other processes' load does not count in it.
    """
    for run in runs:
        await run()  # warm-up
    wall: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    for trial in range(trials):
        for k in range(len(runs)):
            i = (k + trial) % len(runs)
            run = runs[i]
            flush = getattr(run, "flush", None)
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(repeats):
                await run()
            if flush is not None:
                flush()
            wall[i].append((time.perf_counter() - t0) / (repeats * steps) * 1e6)
            cpu[i].append((time.process_time() - c0) / (repeats * steps) * 1e6)
    return Samples(wall, cpu)


async def independence_treadle() -> dict[str, float]:
    nodes = [
        _step("fast", "bench.sleep", seconds=ir.Const(value=0.01)),
        _step("fast_next", "bench.mark", value=_ref("fast")),
        _step("slow", "bench.sleep", seconds=ir.Const(value=1.0)),
        _step("join", value=ir.ListExpr(items=(_ref("fast_next"), _ref("slow")))),
    ]
    prog = _program(nodes, {"out": _ref("join")})
    MARKS.clear()
    t0 = time.perf_counter()
    await treadle_runner(prog)()
    end = time.perf_counter()
    return {
        "fast_branch_done_ms": (MARKS["fast_next"] - t0) * 1e3,
        "slow_branch_done_ms": (MARKS["slow"] - t0) * 1e3,
        "run_done_ms": (end - t0) * 1e3,
    }


async def independence_langgraph() -> dict[str, float]:
    from langgraph.graph import END, START, StateGraph

    marks: dict[str, float] = {}

    def sleeper(name: str, seconds: float) -> Any:
        async def node(state: State) -> None:
            await asyncio.sleep(seconds)
            marks[name] = time.perf_counter()

        return node

    async def fast_next(state: State) -> None:
        marks["fast_next"] = time.perf_counter()

    g = StateGraph(State)
    g.add_node("fast", sleeper("fast", 0.01))
    g.add_node("fast_next", fast_next)
    g.add_node("slow", sleeper("slow", 1.0))
    g.add_node("join", _lg_noop)
    g.add_edge(START, "fast")
    g.add_edge(START, "slow")
    g.add_edge("fast", "fast_next")
    g.add_edge(["fast_next", "slow"], "join")
    g.add_edge("join", END)
    graph = g.compile()
    t0 = time.perf_counter()
    await graph.ainvoke({"marks": []})
    end = time.perf_counter()
    return {
        "fast_branch_done_ms": (marks["fast_next"] - t0) * 1e3,
        "slow_branch_done_ms": (marks["slow"] - t0) * 1e3,
        "run_done_ms": (end - t0) * 1e3,
    }


CASES = [
    # name, steps, treadle program, langgraph graph, repeats (full / quick)
    ("chain_3", 3, lambda: treadle_chain(3), lambda: langgraph_chain(3), 400, 40),
    ("fanout_5_join", 7, lambda: treadle_fanout(5), lambda: langgraph_fanout(5), 300, 30),
    ("chain_100", 100, lambda: treadle_chain(100), lambda: langgraph_chain(100), 20, 3),
    ("fanout_1000_join", 1002, lambda: treadle_fanout(1000), lambda: langgraph_fanout(1000), 3, 1),
]


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/mounts; "unknown" elsewhere)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and target.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def file_cost_us(directory: Path, size: int, n: int = 400) -> float:
    """Median µs to create, write `size` bytes to and close a new file in `directory`, in
    batches of 20 (what a trace file per run pays to the filesystem)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = b"x" * size
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    samples = []
    for b in range(n // 20):
        t = time.perf_counter()
        for i in range(20):
            fd = os.open(directory / f"{b}-{i}", flags, 0o644)
            os.write(fd, data)
            os.close(fd)
        samples.append((time.perf_counter() - t) / 20 * 1e6)
    return statistics.median(samples)


async def main(quick: bool, trace_dir: Path | None = None, trials: int = 7) -> dict[str, Any]:
    from importlib.metadata import version

    _register()
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "langgraph": version("langgraph"),
        "unit": f"microseconds per step (median of {trials} interleaved trials; ratios: "
        "the median of the ratios within each trial)",
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "graphs": {},
    }
    print(f"scheduler overhead, no-op steps (langgraph {results['langgraph']})")
    header = (
        f"{'graph':<18}{'steps':>6}{'treadle':>9}{'off':>7}{'+jsonl':>8}{'/bare':>7}"
        f"{'+batch':>8}{'/bare':>7}{'B/step':>8}{'file us':>9}{'langgraph':>11}{'ratio':>8}"
        f"{'traced':>8}{'cpu/bare':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(dir=trace_dir) as tmp:
        results["trace_dir"] = tmp
        results["trace_dir_filesystem"] = filesystem(Path(tmp))
        print(f"traces in {tmp} ({results['trace_dir_filesystem']})")
        for name, steps, make_t, make_lg, repeats, quick_repeats in CASES:
            n = quick_repeats if quick else repeats
            prog = make_t()
            # a directory per graph: file names restart at 0, and truncating an earlier
            # graph's file would cost what creating a new one does not (ext4 flushes it)
            traced = treadle_runner(prog, trace_dir=Path(tmp) / name)
            stream_path = Path(tmp) / f"{name}-stream" / "local.jsonl"
            with open_stream(stream_path) as stream:
                batch = treadle_runner(prog, stream=stream)
                off = treadle_runner(prog, previews=True)
                runners = [treadle_runner(prog), off, traced, batch, langgraph_runner(make_lg())]
                m = await measure(runners, steps, n, trials)
            bare, off_i, jsonl, batch_i, lg = range(5)
            t_us, off_us, traced_us, batch_us, lg_us = (m.us(i) for i in range(5))
            ratio = m.ratio(lg, bare)
            file_size = traced.last_trace[0].stat().st_size  # type: ignore[attr-defined]
            trace_bytes = file_size / steps
            runs = (trials * n + 1) * steps
            stream_bytes = stream_path.stat().st_size + index_path(stream_path).stat().st_size
            file_us = file_cost_us(Path(tmp) / f"{name}-files", file_size)
            figures = results["graphs"][name] = {
                "steps": steps,
                "treadle_us_per_step": round(t_us, 2),
                "treadle_trace_off_us_per_step": round(off_us, 2),
                "treadle_jsonl_trace_us_per_step": round(traced_us, 2),
                "jsonl_over_bare": round(m.ratio(jsonl, bare), 2),
                "jsonl_over_trace_off": round(m.ratio(jsonl, off_i), 2),
                "treadle_jsonl_trace_bytes_per_step": round(trace_bytes),
                "trace_file_us": round(file_us, 1),
                "treadle_batch_trace_us_per_step": round(batch_us, 2),
                "batch_over_bare": round(m.ratio(batch_i, bare), 2),
                "batch_over_trace_off": round(m.ratio(batch_i, off_i), 2),
                "treadle_batch_trace_bytes_per_step": round(stream_bytes / runs),
                "langgraph_us_per_step": round(lg_us, 2),
                "langgraph_over_treadle": round(ratio, 1),
                "langgraph_over_treadle_traced": round(m.ratio(lg, batch_i), 1),
                "langgraph_over_treadle_jsonl": round(m.ratio(lg, jsonl), 1),
                "cpu": {
                    "treadle_us_per_step": round(m.us(bare, "cpu"), 2),
                    "treadle_batch_trace_us_per_step": round(m.us(batch_i, "cpu"), 2),
                    "batch_over_bare": round(m.ratio(batch_i, bare, "cpu"), 2),
                    "jsonl_over_bare": round(m.ratio(jsonl, bare, "cpu"), 2),
                    "langgraph_over_treadle_traced": round(m.ratio(lg, batch_i, "cpu"), 1),
                },
            }
            print(
                f"{name:<18}{steps:>6}{t_us:>9.1f}{off_us:>7.1f}{traced_us:>8.1f}"
                f"{figures['jsonl_over_bare']:>6.2f}x{batch_us:>8.1f}"
                f"{figures['batch_over_bare']:>6.2f}x{trace_bytes:>8.0f}{file_us:>9.1f}"
                f"{lg_us:>11.1f}{ratio:>7.1f}x{figures['langgraph_over_treadle_traced']:>7.1f}x"
                f"{figures['cpu']['batch_over_bare']:>7.2f}x"
            )
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    graphs = results["graphs"].values()
    for key in ("jsonl_over_bare", "jsonl_over_trace_off", "batch_over_bare",
                "batch_over_trace_off"):  # fmt: skip
        results[f"{key}_max"] = max(g[key] for g in graphs)
    for key in ("langgraph_over_treadle", "langgraph_over_treadle_traced"):
        results[f"{key}_min"] = min(g[key] for g in graphs)
    results["cpu_batch_over_bare_max"] = max(g["cpu"]["batch_over_bare"] for g in graphs)
    results["cpu_langgraph_over_treadle_traced_min"] = min(
        g["cpu"]["langgraph_over_treadle_traced"] for g in graphs
    )
    before, after = results["load_average_before"][0], results["load_average_after"][0]
    print(
        f"trace cost over bare: batch stream at most {results['batch_over_bare_max']:.2f}x "
        f"(aim: at most 1.5x), a file per run at most {results['jsonl_over_bare_max']:.2f}x; "
        f"load average {before} before, {after} after ({results['cpus']} CPUs); in CPU time "
        f"at most {results['cpu_batch_over_bare_max']:.2f}x"
    )
    ratios = [g["langgraph_over_treadle"] for g in graphs]
    results["min_ratio"] = min(ratios)
    results["geomean_ratio"] = round(statistics.geometric_mean(ratios), 1)
    print(
        f"LangGraph overhead / treadle overhead: min {min(ratios):.1f}x bare, "
        f"{results['langgraph_over_treadle_traced_min']:.1f}x with the batch trace on "
        "(aim: at least 20x)"
    )

    print("\nindependence: fast branch (10 ms + a second step) beside a slow one (1 s)")
    ind_t = await independence_treadle()
    ind_lg = await independence_langgraph()
    for label, ind in (("treadle", ind_t), ("langgraph", ind_lg)):
        print(
            f"{label:<10} fast branch done at {ind['fast_branch_done_ms']:7.1f} ms, "
            f"slow branch done at {ind['slow_branch_done_ms']:7.1f} ms"
        )
    results["independence"] = {
        "treadle": {k: round(v, 1) for k, v in ind_t.items()},
        "langgraph": {k: round(v, 1) for k, v in ind_lg.items()},
    }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    parser.add_argument(
        "--trace-dir", type=Path, help="where the traces go (default: the temporary directory)"
    )
    parser.add_argument("--trials", type=int, default=7, help="interleaved trials (the median)")
    ns = parser.parse_args()
    figures = asyncio.run(main(ns.quick, ns.trace_dir, ns.trials))
    print(json.dumps(figures, separators=(",", ":")))
