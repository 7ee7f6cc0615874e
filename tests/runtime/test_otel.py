"""The OpenTelemetry export: GenAI attributes, span kinds, error status, retry events, nesting;
`Flow.run(otel=True)` through the global provider. (The CLI's `--otel` is in test_cli.py, the
export to a real OTLP receiver, Arize Phoenix, in test_phoenix.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from rt_helpers import Recorder, program, r, step

from treadle.api import Flow
from treadle.errors import RunError
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.scheduler import RunOptions
from treadle.runtime.tracing import OtelSink


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, ReadableSpan]:
    named = {s.name: s for s in spans}
    assert len(named) == len(spans), [s.name for s in spans]
    return named


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def flaky_then_ask() -> Flow:
    """`f` fails once (retryable) then succeeds; `q` asks the model with f's value."""
    return Flow(
        program(
            step("f", "t.flaky", key="k", options={"fail_times": 1}),
            step("q", "t.ask", prompt=r("f")),
            outputs={"a": r("q")},
        )
    )


async def test_kinds_retry_events_and_gen_ai_attributes(ops: Recorder) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = await flaky_then_ask().run(
        {}, model=ScriptedBackend(["four"]), cache=False, seed=5, options=RunOptions(retries=1),
        sinks=[OtelSink(tracer_provider=provider)],
    )  # fmt: skip
    assert result.outputs == {"a": "four"}
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"invoke_workflow main", "execute_tool t.flaky", "execute_tool t.ask",
                          "chat scripted"}  # fmt: skip
    wf, flaky = spans["invoke_workflow main"], spans["execute_tool t.flaky"]
    ask, chat = spans["execute_tool t.ask"], spans["chat scripted"]
    # kinds: the model call is a client call, the rest internal
    assert chat.kind is SpanKind.CLIENT
    assert {wf.kind, flaky.kind, ask.kind} == {SpanKind.INTERNAL}
    assert attrs(chat)["openinference.span.kind"] == "LLM"
    assert attrs(wf)["openinference.span.kind"] == "CHAIN"
    # nesting, one trace
    assert chat.parent is not None and chat.parent.span_id == ask.context.span_id
    assert flaky.parent is not None and flaky.parent.span_id == wf.context.span_id
    assert wf.parent is None and len({s.context.trace_id for s in spans.values()}) == 1
    # the retry is an event on the step that retried, with its attempt, delay and error
    (retry,) = flaky.events
    assert retry.name == "retry"
    retry_attrs = dict(retry.attributes or {})
    assert retry_attrs["attempt"] == 1 and retry_attrs["error"] == "flaky failure 1"
    assert isinstance(retry_attrs["delay_s"], float)
    assert flaky.start_time is not None and retry.timestamp >= flaky.start_time
    assert all(s.status.status_code is StatusCode.OK for s in spans.values())
    # GenAI semantic conventions on the model call
    a = attrs(chat)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "scripted"
    assert a["gen_ai.request.model"] == "scripted" and a["gen_ai.response.model"] == "scripted"
    assert a["gen_ai.request.seed"] == 5 and a["gen_ai.request.temperature"] == 0.0
    assert a["gen_ai.usage.input_tokens"] == 3 and a["gen_ai.usage.output_tokens"] == 1
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["llm.token_count.total"] == 4 and '"four"' in a["output.value"]
    assert attrs(flaky)["gen_ai.tool.name"] == "t.flaky"
    assert attrs(flaky)["gen_ai.operation.name"] == "execute_tool"


async def test_a_failure_sets_the_error_status(ops: Recorder) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    flow = Flow(
        program(
            step("slow", "t.sleep", value=1, seconds=30),
            step("bad", "t.boom", value="x"),
            outputs={"a": r("slow"), "b": r("bad")},
        )
    )
    with pytest.raises(RunError, match="boom: x"):
        await flow.run({}, sinks=[OtelSink(tracer_provider=provider)])
    spans = by_name(exporter.get_finished_spans())
    wf, bad = spans["invoke_workflow main"], spans["execute_tool t.boom"]
    slow = spans["execute_tool t.sleep"]
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == "ValueError: boom: x"
    assert attrs(bad)["error.type"] == "treadle.step"
    assert wf.status.status_code is StatusCode.ERROR and "boom: x" in str(wf.status.description)
    # the sibling that was stopped is exported too, cancelled, not an error
    assert slow.status.status_code is StatusCode.UNSET
    assert attrs(slow)["treadle.status"] == "cancelled"


async def test_flow_run_otel_uses_the_global_provider(ops: Recorder, otel_global: Any) -> None:
    otel_global.clear()
    result = await flaky_then_ask().run({}, model=ScriptedBackend(["ok"]), cache=False, otel=True)
    assert result.outputs == {"a": "ok"}
    spans = by_name(otel_global.get_finished_spans())
    assert set(spans) == {"invoke_workflow main", "execute_tool t.flaky", "execute_tool t.ask",
                          "chat scripted"}  # fmt: skip
    trace_ids = {s.context.trace_id for s in spans.values()}
    assert len(trace_ids) == 1
    assert spans["chat scripted"].parent.span_id == spans["execute_tool t.ask"].context.span_id  # type: ignore[union-attr]
