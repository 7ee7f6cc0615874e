"""The scheduler on hand-built IR: data flow, independence, limits, faults, control flow."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from rt_helpers import Recorder, c, program, r, step

from treadle.errors import InputError, RunError, StepTimeout
from treadle.runtime import ir
from treadle.runtime.scheduler import RunOptions, Scheduler, StepFailed
from treadle.runtime.session import Session
from treadle.runtime.step_context import RunState
from treadle.runtime.tracing import Tracer
from treadle.stdlib_ops.registry import get

FAST = RunOptions(backoff_base=0.001, backoff_max=0.01)


async def run(
    prog: ir.Program,
    inputs: dict[str, Any] | None = None,
    *,
    options: RunOptions = FAST,
    tracer: Tracer | None = None,
    **resources: Any,
) -> tuple[dict[str, Any], Tracer]:
    tracer = tracer or Tracer()
    session = Session(**resources)
    st = RunState(tracer, session)
    try:
        out = await Scheduler(prog, state=st, options=options, operators=get).run(inputs or {})
    finally:
        await session.aclose()
    return out, tracer


def statuses(tracer: Tracer) -> dict[str, str | None]:
    return {s.name: s.status for s in tracer.spans}


async def test_chain_passes_values(ops: Recorder) -> None:
    prog = program(
        step("a", "t.echo", value=r("x")),
        step("b", "t.add", a=r("a"), b=2),
        step("c", "t.add", a=r("b"), b=r("a")),
        inputs={"x": "number"},
        outputs={"out": r("c"), "both": ir.ListExpr(items=(r("a"), r("b")))},
    )
    out, tracer = await run(prog, {"x": 3})
    assert out == {"out": 8, "both": [3, 5]}
    assert [s.kind for s in tracer.spans].count("step") == 3
    assert all(s.status == "ok" for s in tracer.spans)


async def test_fast_branch_does_not_wait_for_slow_one(ops: Recorder) -> None:
    prog = program(
        step("slow", "t.sleep", value="s", seconds=1.0),
        step("fast", "t.sleep", value="f", seconds=0.01),
        step("after_fast", "t.sleep", value=r("fast"), seconds=0.0),
        step("join", "t.echo", value=ir.ListExpr(items=(r("slow"), r("after_fast")))),
        outputs={"out": r("join")},
    )
    t0 = time.monotonic()
    out, _ = await run(prog)
    ends = ops.times("end")
    assert out == {"out": ["s", "f"]}
    # the fast chain finished long before the slow step (generous margin for a loaded machine)
    assert ends["after_fast"] < ends["slow"]
    assert ends["after_fast"] - t0 < 0.6
    assert ends["slow"] - t0 >= 0.99


async def test_global_concurrency_limit(ops: Recorder) -> None:
    nodes = [step(f"s{i}", "t.sleep", value=i, seconds=0.02) for i in range(10)]
    prog = program(*nodes, outputs={"n": r("s9")})
    await run(prog, options=RunOptions(concurrency=3))
    assert ops.max_running == 3


async def test_unlimited_concurrency(ops: Recorder) -> None:
    nodes = [step(f"s{i}", "t.sleep", value=i, seconds=0.05) for i in range(10)]
    await run(program(*nodes, outputs={}), options=RunOptions(concurrency=None))
    assert ops.max_running == 10


async def test_timeout_names_the_step(ops: Recorder) -> None:
    s = step("slowpoke", "t.sleep", value=1, seconds=5).model_copy(
        update={"timeout_s": 0.05, "retries": 0}
    )
    with pytest.raises(StepFailed) as info:
        await run(program(s, outputs={"x": r("slowpoke")}))
    assert "slowpoke" in info.value.message
    assert "time limit" in info.value.message
    assert isinstance(info.value.cause, StepTimeout)


async def test_timeout_as_common_option(ops: Recorder) -> None:
    s = step("slowpoke", "t.sleep", value=1, seconds=5, options={"timeout": 0.05, "retries": 1})
    with pytest.raises(StepFailed, match=r"0\.05 s time limit"):
        await run(program(s, outputs={}))
    # a timeout is retryable: one retry, so two attempts, each cancelled at its limit
    assert [e[0] for e in ops.events] == ["start", "cancelled", "start", "cancelled"]


async def test_retryable_errors_retry_with_backoff(ops: Recorder) -> None:
    s = step("f", "t.flaky", key="k", options={"fail_times": 2})
    out, tracer = await run(program(s, outputs={"v": r("f")}))
    assert out == {"v": "ok after 3"}
    span = next(sp for sp in tracer.spans if sp.name == "f")
    assert [e["attempt"] for e in span.events if e["name"] == "retry"] == [1, 2]


async def test_retries_are_bounded(ops: Recorder) -> None:
    s = step("f", "t.flaky", key="k", options={"fail_times": 10}).model_copy(update={"retries": 2})
    with pytest.raises(StepFailed, match="flaky failure 3"):
        await run(program(s, outputs={}))
    assert ops.counts["k"] == 3


async def test_non_retryable_errors_fail_at_once(ops: Recorder) -> None:
    s = step("f", "t.flaky", key="k", options={"fail_times": 1, "retryable": False})
    with pytest.raises(StepFailed, match=r"Step 'f' \(t\.flaky\) failed: flaky failure 1"):
        await run(program(s, outputs={}))
    assert ops.counts["k"] == 1


async def test_backoff_grows_exponentially_with_jitter() -> None:
    sched = Scheduler(program(outputs={}), options=RunOptions(backoff_base=1.0, backoff_max=100))
    delays = [[sched._backoff(a) for _ in range(200)] for a in range(4)]
    for a, ds in enumerate(delays):
        assert 0.5 * 2**a <= min(ds) and max(ds) <= 1.5 * 2**a
        assert len(set(ds)) > 100  # jittered
    capped = Scheduler(program(outputs={}), options=RunOptions(backoff_base=1.0, backoff_max=2.0))
    assert max(capped._backoff(10) for _ in range(100)) <= 3.0


async def test_fail_fast_cancels_running_steps(ops: Recorder) -> None:
    prog = program(
        step("long", "t.sleep", value=1, seconds=30),
        step("bad", "t.boom", value="x"),
        outputs={"a": r("long"), "b": r("bad")},
    )
    t0 = time.monotonic()
    with pytest.raises(StepFailed) as info:
        await run(prog, tracer=(tracer := Tracer()))
    assert time.monotonic() - t0 < 10
    assert "Step 'bad' (t.boom) failed: ValueError: boom: x" in info.value.message
    assert ("cancelled", "long") in [(e, s) for e, s, _ in ops.events]
    st = statuses(tracer)
    assert st["bad"] == "error" and st["long"] == "cancelled" and st["main"] == "error"


async def test_fail_fast_reaches_nested_graphs(ops: Recorder) -> None:
    body = ir.Graph(
        params=("x",),
        nodes=(step("m.wait", "t.sleep", value=r("x"), seconds=30),),
        outputs={"$item": r("m.wait")},
    )
    prog = program(
        ir.Map(id="m", name="m", over=c([1, 2, 3]), var="x", body=body),
        step("bad", "t.boom", value="x"),
        outputs={},
    )
    with pytest.raises(StepFailed, match="bad"):
        await run(prog)
    assert sum(e == "cancelled" for e, _, _ in ops.events) == 3


async def test_outside_cancellation_reaches_every_step(ops: Recorder) -> None:
    prog = program(*[step(f"s{i}", "t.sleep", value=i, seconds=30) for i in range(3)], outputs={})
    tracer = Tracer()
    task = asyncio.create_task(run(prog, tracer=tracer))
    while len(ops.times("start")) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sum(e == "cancelled" for e, _, _ in ops.events) == 3
    assert set(statuses(tracer).values()) == {"cancelled"}


async def test_branch_runs_taken_arm_and_skips_others(ops: Recorder) -> None:
    arm_then = ir.Graph(nodes=(step("if1.a", "t.echo", value="then"),), outputs={"v": r("if1.a")})
    inner = ir.Branch(
        id="if1.b.inner",
        name="inner",
        arms=(ir.Arm(when=None, body=ir.Graph(nodes=(step("if1.deep", "t.echo", value=1),))),),
    )
    arm_else = ir.Graph(
        nodes=(step("if1.b", "t.echo", value="else"), inner), outputs={"v": r("if1.b")}
    )
    cond = ir.Binary(op=">", left=r("x"), right=c(2))
    prog = program(
        ir.Branch(
            id="if1",
            name="if1",
            arms=(ir.Arm(when=cond, body=arm_then), ir.Arm(when=None, body=arm_else)),
            outputs=("v",),
        ),
        step("after", "t.echo", value=r("if1", "v")),
        inputs={"x": "number"},
        outputs={"out": r("after")},
    )
    out, tracer = await run(prog, {"x": 5})
    assert out == {"out": "then"}
    st = statuses(tracer)
    assert st["a"] == "ok" and st["b"] == "skipped" and st["inner"] == "skipped"
    assert st["deep"] == "skipped"
    out, tracer = await run(prog, {"x": 1})
    assert out == {"out": "else"}
    assert statuses(tracer)["a"] == "skipped"


async def test_loop_carries_values_and_stops_on_until(ops: Recorder) -> None:
    body = ir.Graph(
        params=("n",),
        nodes=(step("loop1.next", "t.add", a=r("n"), b=1),),
        outputs={
            "n": r("loop1.next"),
            "$until": ir.Binary(op=">=", left=r("loop1.next"), right=r("goal")),
        },
    )
    loop = ir.Loop(id="loop1", name="loop1", max_iters=5, init={"n": r("start")}, body=body)
    prog = program(
        loop,
        inputs={"start": "number", "goal": "number"},
        outputs={"n": r("loop1", "n"), "turns": r("loop1", "$iterations")},
    )
    out, tracer = await run(prog, {"start": 0, "goal": 3})
    assert out == {"n": 3, "turns": 3}
    assert [s.name for s in tracer.spans if s.op == "turn"] == [
        f"loop1 turn {i}" for i in (1, 2, 3)
    ]
    out, _ = await run(prog, {"start": 0, "goal": 100})
    assert out == {"n": 5, "turns": 5}  # bounded


async def test_map_runs_items_concurrently_in_order(ops: Recorder) -> None:
    body = ir.Graph(
        params=("x",),
        nodes=(
            step(
                "m.wait",
                "t.sleep",
                value=r("x"),
                seconds=ir.Binary(op="/", left=c(0.3), right=r("x")),
            ),
            step("m.y", "t.add", a=r("m.wait"), b=r("offset")),
        ),
        outputs={"$item": r("m.y")},
    )
    prog = program(
        ir.Map(id="m", name="m", over=r("xs"), var="x", body=body),
        inputs={"xs": "list of number", "offset": "number"},
        outputs={"ys": r("m")},
    )
    out, tracer = await run(prog, {"xs": [1, 2, 3], "offset": 10})
    assert out == {"ys": [11, 12, 13]}
    assert ops.max_running == 3
    assert [e[0] for e in ops.events] == ["start"] * 3 + ["end"] * 3  # all three at once
    # item i sleeps 0.3/(i+1) s: they finish in reverse, the outputs stay in input order
    items = {s.name: s for s in tracer.spans if s.op == "item"}
    ends = [items[f"m item {i}"].end for i in (2, 1, 0)]
    assert all(e is not None for e in ends) and ends == sorted(ends)  # type: ignore[type-var]
    waits = sorted((s for s in tracer.spans if s.name == "wait"), key=lambda s: s.end or 0)
    assert [s.parent_id for s in waits] == [items[f"m item {i}"].span_id for i in (2, 1, 0)]


async def test_call_runs_another_workflow(ops: Recorder) -> None:
    helper = ir.Workflow(
        name="double",
        inputs=(ir.Field_(name="v", type="number"),),
        outputs=(ir.Field_(name="twice", type="number"),),
        graph=ir.Graph(
            params=("v",),
            nodes=(step("double.s", "t.add", a=r("v"), b=r("v")),),
            outputs={"twice": r("double.s")},
        ),
    )
    main = program(
        ir.Call(id="d", name="d", workflow="double", args={"v": c(21)}),
        outputs={"out": r("d", "twice")},
    )
    prog = main.model_copy(update={"workflows": {**main.workflows, "double": helper}})
    out, _ = await run(prog)
    assert out == {"out": 42}


async def test_runaway_recursion_is_stopped(ops: Recorder) -> None:
    wf = ir.Workflow(
        name="main",
        graph=ir.Graph(nodes=(ir.Call(id="again", name="again", workflow="main"),), outputs={}),
    )
    prog = ir.Program(entry="main", workflows={"main": wf})
    with pytest.raises(RunError, match="nest deeper than 5"):
        await run(prog, options=RunOptions(max_call_depth=5))


async def test_samples_run_the_operator_n_times(ops: Recorder) -> None:
    s = step("many", "t.echo", value="x").model_copy(update={"samples": 3})
    out, _ = await run(program(s, outputs={"v": r("many")}))
    assert out == {"v": ["x", "x", "x"]}


async def test_missing_field_names_the_step(ops: Recorder) -> None:
    prog = program(
        step("rec", "t.echo", value={"passed": True}),
        step("use", "t.echo", value=r("rec", "feedback")),
        outputs={},
    )
    with pytest.raises(RunError) as info:
        await run(prog)
    msg = info.value.message
    assert "Step 'use'" in msg and "`rec` has no field `feedback`" in msg and "passed" in msg


async def test_bad_argument_type_names_the_step(ops: Recorder) -> None:
    prog = program(step("sum", "t.add", a="not a number", b=1), outputs={})
    with pytest.raises(StepFailed) as info:
        await run(prog)
    assert "Step 'sum' (t.add)" in info.value.message and "`a`" in info.value.message


async def test_unknown_operator_fails_before_running(ops: Recorder) -> None:
    prog = program(
        step("first", "t.sleep", value=1, seconds=0), step("x", "no.such.op"), outputs={}
    )
    with pytest.raises(RunError, match=r"no\.such\.op"):
        await run(prog)
    assert ops.events == []


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, "missing input x"),
        ({"x": 1, "y": 2}, "unknown input y"),
        ({"x": "one"}, "input x must be number, got text"),
        ({"x": True}, "input x must be number, got a boolean"),
    ],
)
async def test_input_errors_list_expected_inputs(
    ops: Recorder, inputs: dict[str, Any], expected: str
) -> None:
    prog = program(step("a", "t.echo", value=r("x")), inputs={"x": "number"}, outputs={})
    with pytest.raises(InputError) as info:
        await run(prog, inputs)
    assert expected in info.value.message and "It takes: x: number" in info.value.message


async def test_stray_cancellation_inside_an_operator_fails_the_step(
    ops: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from treadle.stdlib_ops import registry
    from treadle.stdlib_ops.registry import OpArgs, Operator, subject

    class ValueArgs(OpArgs):
        value: Any = subject("any value")

    async def leaky(ctx: Any, args: Any, options: Any) -> Any:
        raise asyncio.CancelledError()

    monkeypatch.setitem(
        registry._OPERATORS, "t.leaky", Operator("t.leaky", "leaky", ValueArgs, Any, leaky)
    )
    prog = program(step("l", "t.leaky", value=1), step("after", "t.echo", value=r("l")), outputs={})
    with pytest.raises(StepFailed, match="stray cancellation"):
        await asyncio.wait_for(run(prog), timeout=30)
