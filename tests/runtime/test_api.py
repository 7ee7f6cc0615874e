"""The embedding API: Flow.load / from_source / from_json, run, run_sync, the trace, OTel."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console
from rt_helpers import Recorder, program, r, step

import treadle
from treadle.api import Flow, RunResult
from treadle.cli.trace_view import ProgressSink, render_trace
from treadle.errors import InputError, RunError, TreadleError
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.tracing import read_trace

SOURCE = """\
workflow answer(question: text) -> reply: text
  reply = generate from "Q: {question}"
end
"""


def test_lazy_top_level_exports() -> None:
    assert treadle.Flow is Flow and treadle.RunResult is RunResult
    from treadle.api import Flow as F

    assert F is Flow


async def test_run_from_source_with_a_trace_file(tmp_path: Path) -> None:
    flow = Flow.from_source(SOURCE)
    model = ScriptedBackend({"Q: why": "because"})
    result = await flow.run(
        {"question": "why"}, model=model, trace=tmp_path / "t.jsonl", cache=False
    )
    assert result.outputs == {"reply": "because"}
    assert result.trace_path == tmp_path / "t.jsonl"
    assert [s.kind for s in result.spans] == ["workflow", "step", "model"]
    assert result.tokens == (2, 1)
    on_disk = read_trace(result.trace_path)
    assert on_disk.header["workflow"] == "answer"
    assert on_disk.header["program_hash"] == flow.program.content_hash()
    assert {s.span_id for s in on_disk.spans} == {s.span_id for s in result.spans}


def test_load_and_run_sync(tmp_path: Path) -> None:
    path = tmp_path / "answer.flow"
    path.write_text(SOURCE)
    flow = Flow.load(path)
    result = flow.run_sync({"question": "q"}, model=ScriptedBackend(["a"]), cache=False)
    assert result.outputs == {"reply": "a"} and result.trace_path is None


async def test_run_sync_inside_a_loop_says_to_await() -> None:
    flow = Flow.from_json(program(outputs={}).model_dump_json())
    with pytest.raises(TreadleError, match=r"await flow\.run"):
        flow.run_sync({})


async def test_runs_of_one_flow_can_overlap(ops: Recorder) -> None:
    flow = Flow(
        program(step("s", "t.sleep", value=r("x"), seconds=0.2), inputs={"x": "number"},
                outputs={"y": r("s")})
    )  # fmt: skip
    results = await asyncio.gather(*(flow.run({"x": i}) for i in range(5)))
    assert [res.outputs["y"] for res in results] == list(range(5))
    assert ops.max_running == 5


async def test_each_run_of_a_flow_has_its_own_trace(ops: Recorder) -> None:
    flow = Flow(program(step("s", "t.echo", value=r("x")), inputs={"x": "number"},
                        outputs={"y": r("s")}))  # fmt: skip
    for i in range(3):
        result = await flow.run({"x": i})
        assert [(s.kind, s.name) for s in result.spans] == [("workflow", "main"), ("step", "s")]
        assert len({s.trace_id for s in result.spans}) == 1


async def test_errors_carry_the_trace(ops: Recorder, tmp_path: Path) -> None:
    flow = Flow(program(step("bad", "t.boom", value=1), outputs={}))
    with pytest.raises(RunError) as info:
        await flow.run({}, trace=tmp_path / "t.jsonl")
    assert info.value.trace_path == tmp_path / "t.jsonl"  # type: ignore[attr-defined]
    assert {s.name: s.status for s in read_trace(tmp_path / "t.jsonl").spans} == {
        "main": "error",
        "bad": "error",
    }


async def test_input_errors_come_before_any_trace_file(tmp_path: Path) -> None:
    flow = Flow.from_source(SOURCE)
    with pytest.raises(InputError, match="missing input question"):
        await flow.run({}, trace=tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()


async def test_opentelemetry_export_uses_gen_ai_conventions() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from treadle.runtime.tracing import OtelSink

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    flow = Flow.from_source(SOURCE)
    await flow.run(
        {"question": "q"}, model=ScriptedBackend(["a"]), cache=False,
        sinks=[OtelSink(tracer_provider=provider)],
    )  # fmt: skip
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"invoke_workflow answer", "execute_tool generate", "chat scripted"}
    wf, st, chat = (
        spans["invoke_workflow answer"], spans["execute_tool generate"], spans["chat scripted"]
    )  # fmt: skip
    wf_attrs, st_attrs, chat_attrs = (dict(s.attributes or {}) for s in (wf, st, chat))
    assert wf_attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert wf_attrs["gen_ai.workflow.name"] == "answer"
    assert chat_attrs["gen_ai.operation.name"] == "chat"
    assert chat_attrs["gen_ai.request.model"] == "scripted"
    assert chat_attrs["gen_ai.usage.input_tokens"] == 2
    assert chat_attrs["gen_ai.usage.output_tokens"] == 1
    assert st_attrs["gen_ai.tool.name"] == "generate"
    assert chat.parent is not None and st.parent is not None
    assert chat.parent.span_id == st.context.span_id
    assert st.parent.span_id == wf.context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1


async def test_progress_line_and_tree_rendering(ops: Recorder, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    sink = ProgressSink(console, delay=0.05)
    flow = Flow(program(step("nap", "t.sleep", value=1, seconds=0.3), outputs={}))
    await flow.run({}, sinks=[sink], trace=tmp_path / "t.jsonl")
    assert "steps" in out.getvalue() and sink.steps_done == 1
    tree = io.StringIO()
    Console(file=tree, width=120).print(render_trace(read_trace(tmp_path / "t.jsonl")))
    assert "nap (t.sleep)" in tree.getvalue() and "ok" in tree.getvalue()
