"""Reading a JSONL trace back, complete or cut short."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import orjson

from treadle.runtime.tracing.span import Span


@dataclasses.dataclass
class Trace:
    header: dict[str, Any]
    spans: list[Span]
    #: lines that could not be read (a line cut short by a crash)
    bad_lines: int = 0
    #: large inputs stored once, by sha256
    blobs: dict[str, str] = dataclasses.field(default_factory=dict)

    def children(self) -> dict[str | None, list[Span]]:
        tree: dict[str | None, list[Span]] = {}
        ids = {s.span_id for s in self.spans}
        for s in self.spans:
            parent = s.parent_id if s.parent_id in ids else None
            tree.setdefault(parent, []).append(s)
        for kids in tree.values():
            kids.sort(key=lambda s: s.start)
        return tree

    def blob(self, ref: Any) -> str | None:
        """The text a `{"blob": sha256, ...}` reference stands for, if the trace holds it."""
        if isinstance(ref, dict) and isinstance(ref.get("blob"), str):
            return self.blobs.get(ref["blob"])
        return None


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a JSONL trace (format 1 or 2), complete or cut short: a start without an end stays
    unfinished, a line cut short by a crash is counted in `bad_lines`."""
    header: dict[str, Any] = {}
    records: dict[str, dict[str, Any]] = {}
    blobs: dict[str, str] = {}
    bad = 0
    for line in Path(path).read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(record, dict):
            bad += 1
            continue
        event = record.pop("event", None)
        sid = record.get("span_id")
        if event == "trace":
            header = record
        elif event in ("start", "end", "span") and isinstance(sid, str):
            old = records.get(sid)
            if old is None:
                records[sid] = record
            elif event == "start":  # never let a start override what an end said
                records[sid] = {**record, **old}
            else:
                old.update(record)
        elif event == "blob" and isinstance(record.get("sha256"), str):
            blobs[record["sha256"]] = str(record.get("text", ""))
        else:
            bad += 1
    trace_id = str(header.get("trace_id") or "")
    spans = []
    for record in records.values():
        record.setdefault("trace_id", trace_id)
        spans.append(Span.from_dict(record))
    return Trace(header, spans, bad, blobs)
