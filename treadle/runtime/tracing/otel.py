"""The OpenTelemetry export (an optional extra: OpenTelemetry is imported on first use)."""

from __future__ import annotations

import time
from typing import Any

from treadle.runtime.tracing.previews import canonical_json, value_sha256
from treadle.runtime.tracing.span import Span


class OtelSink:
    """Exports spans through OpenTelemetry with the GenAI semantic conventions.

    The workflow span is `invoke_workflow NAME` (`gen_ai.operation.name=invoke_workflow`), a
    model call `chat MODEL` with `gen_ai.request.model`, `gen_ai.usage.input_tokens`, ...; a
    step is `execute_tool OP` (`gen_ai.tool.name`). OpenTelemetry is imported here, on first
    use, so runs without it never pay for it. `tracer_provider` defaults to the global one.
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace as otel_trace
        except ImportError as e:  # pragma: no cover - depends on the environment
            from treadle.errors import TreadleError

            raise TreadleError(
                "OpenTelemetry export needs the OpenTelemetry SDK: "
                "`pip install 'treadle[otel]'` (or `pip install opentelemetry-sdk`)."
            ) from e
        self._trace = otel_trace
        self._tracer = otel_trace.get_tracer("treadle", tracer_provider=tracer_provider)
        self._open: dict[str, Any] = {}

    def on_start(self, span: Span) -> None:
        parent = self._open.get(span.parent_id or "")
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        self._open[span.span_id] = self._tracer.start_span(
            _otel_name(span),
            context=context,
            kind=self._trace.SpanKind.CLIENT
            if span.kind == "model"
            else self._trace.SpanKind.INTERNAL,
            start_time=int(span.start * 1e9),
        )

    def on_end(self, span: Span) -> None:
        otel_span = self._open.pop(span.span_id, None)
        if otel_span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        for key, value in _otel_attributes(span).items():
            otel_span.set_attribute(key, value)
        for event in span.events:
            attrs = {k: _otel_value(v) for k, v in event.items() if k not in ("name", "time")}
            otel_span.add_event(str(event["name"]), attrs, timestamp=int(event["time"] * 1e9))
        if span.status == "error":
            otel_span.set_status(Status(StatusCode.ERROR, span.error or "error"))
        elif span.status == "ok":
            otel_span.set_status(Status(StatusCode.OK))
        otel_span.end(end_time=int((span.end or time.time()) * 1e9))

    def close(self) -> None:
        """End spans a cancelled run left open, so the exporter still sees them."""
        for otel_span in self._open.values():
            otel_span.end()
        self._open.clear()


#: longest input/output preview exported as an OpenTelemetry attribute
_OTEL_TEXT = 8000
#: OpenInference span kinds (Phoenix draws LLM, TOOL and CHAIN spans differently)
_OPENINFERENCE_KIND = {"workflow": "CHAIN", "step": "CHAIN", "model": "LLM", "sandbox": "TOOL"}

#: step spans that are structure (control flow), not an operator call
_STRUCTURE = ("branch", "loop", "map", "turn", "item")


def _otel_name(span: Span) -> str:
    if span.kind == "workflow":
        return f"invoke_workflow {span.name}"
    if span.kind == "model":
        return span.name  # `chat MODEL`
    if span.kind == "sandbox":
        return f"sandbox {span.step or ''}".strip()
    if span.op == "call":
        return f"invoke_workflow {span.attrs.get('workflow') or span.name}"
    if span.op in ("turn", "item"):
        return span.name  # `repeat turn 2`, `picks item 0`
    if span.op in _STRUCTURE:
        return f"{span.op} {span.name}"
    return f"execute_tool {span.op or span.name}"


def _otel_attributes(span: Span) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "treadle.span.kind": span.kind,
        "treadle.status": span.status or "unfinished",
        # the JSONL trace's id (OpenTelemetry draws its own), to find one from the other
        "treadle.trace_id": span.trace_id,
        "treadle.span_id": span.span_id,
    }
    if span.kind == "step" and span.op == "call":
        attrs["gen_ai.operation.name"] = "invoke_workflow"
        attrs["gen_ai.workflow.name"] = str(span.attrs.get("workflow") or span.name)
    elif span.kind == "step" and span.op and span.op not in _STRUCTURE:
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = span.op
    if span.step:
        attrs["treadle.step"] = span.step
        attrs["treadle.step.name"] = span.name
    if span.tokens_in is not None:
        attrs["gen_ai.usage.input_tokens"] = span.tokens_in
    if span.tokens_out is not None:
        attrs["gen_ai.usage.output_tokens"] = span.tokens_out
    if span.cached is not None:
        attrs["treadle.cache_hit"] = span.cached
    if span.error:
        attrs["error.type"] = "treadle." + (span.kind or "step")
        attrs["treadle.error"] = span.error
    for side, summary in (("input", span.inputs), ("output", span.outputs)):
        digest = value_sha256(summary)
        if digest is not None:
            attrs[f"treadle.{side}s.sha256"] = digest
            # OpenInference (what Phoenix shows as a span's input and output)
            text = canonical_json(summary["value"])
            attrs[f"{side}.value"] = text if len(text) <= _OTEL_TEXT else text[:_OTEL_TEXT] + "…"
            attrs[f"{side}.mime_type"] = "application/json"
    attrs["openinference.span.kind"] = _OPENINFERENCE_KIND.get(span.kind, "CHAIN")
    if span.kind == "model":
        model = span.attrs.get("gen_ai.request.model")
        if model is not None:
            attrs["llm.model_name"] = str(model)
        if span.tokens_in is not None:
            attrs["llm.token_count.prompt"] = span.tokens_in
        if span.tokens_out is not None:
            attrs["llm.token_count.completion"] = span.tokens_out
        if span.tokens_in is not None and span.tokens_out is not None:
            attrs["llm.token_count.total"] = span.tokens_in + span.tokens_out
    for key, value in span.attrs.items():
        if value is not None:
            attrs[key if "." in key else f"treadle.{key}"] = _otel_value(value)
    return attrs


def _otel_value(value: Any) -> Any:
    """OpenTelemetry takes scalars and homogeneous lists of scalars; anything else as JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return canonical_json(value)
