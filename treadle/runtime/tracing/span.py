"""The span: one workflow run, step, model call or sandbox run, and the sink protocol that
receives span events as they happen."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Protocol

SpanKind = Literal["workflow", "step", "model", "sandbox"]
Status = Literal["ok", "error", "skipped", "cancelled"]


@dataclasses.dataclass(slots=True, eq=False)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    name: str
    #: the IR node id of the step (steps, and model/sandbox calls made by a step)
    step: str | None = None
    op: str | None = None
    #: None while running; a span read back from an interrupted trace keeps None
    status: str | None = None
    start: float = 0.0
    end: float | None = None
    inputs: Any = None
    outputs: Any = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached: bool | None = None
    error: str | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in names}
        for key in ("trace_id", "span_id", "kind", "name"):
            fields.setdefault(key, "")
        fields.setdefault("parent_id", None)
        return cls(**fields)


class Sink(Protocol):
    """Receives span events as they happen (the JSONL file, OpenTelemetry, progress).

    A sink may also define `on_blob(sha256, text)` to receive large inputs stored by hash.
    """

    def on_start(self, span: Span) -> None: ...

    def on_end(self, span: Span) -> None: ...

    def close(self) -> None: ...


class SpanReader(Protocol):
    """A sink that reads a tracer's kept spans when it writes instead of receiving each event
    (`Tracer.attach`): the batch stream. A span's `status` is set last, so a reader on another
    thread that sees it sees the ended span whole."""

    def bind(self, tracer: Any) -> None: ...

    def on_blob(self, sha256: str, text: str) -> None: ...

    def close(self) -> None: ...
