"""The JSONL trace: written as the run goes, readable when cut short, values hashed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from treadle.runtime.tracing import MAX_TEXT, JsonlSink, Tracer, read_trace, summarize


def test_summary_truncates_and_hashes_the_whole_value() -> None:
    text = "x" * (MAX_TEXT + 10)
    s = summarize(text)
    assert s["truncated"] is True and s["value"].endswith("…[+10 chars]")
    assert s["sha256"] == hashlib.sha256(json.dumps(text).encode()).hexdigest()
    small = summarize({"a": [1, 2]})
    assert small["value"] == {"a": [1, 2]} and "truncated" not in small
    assert len(summarize(list(range(500)))["value"]) == 51


def test_jsonl_is_flushed_per_event_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    tracer = Tracer([JsonlSink(path, header={"workflow": "w"})])
    root = tracer.start("workflow", "w", None, inputs={"q": "?"})
    step = tracer.start("step", "a", root, step="a", op="generate")
    # not closed, not ended: what a crash leaves behind
    trace = read_trace(path)
    assert trace.header["workflow"] == "w"
    assert {s.name: s.status for s in trace.spans} == {"w": None, "a": None}
    tracer.end(step, "ok", outputs="answer")
    tracer.end(root, "error", error="boom")
    with path.open("a") as f:
        f.write('{"event": "end", "span_id": "cut sh')  # a line cut short by a crash
    trace = read_trace(path)
    spans = {s.name: s for s in trace.spans}
    assert spans["a"].status == "ok" and spans["a"].outputs["value"] == "answer"
    assert spans["w"].error == "boom" and spans["a"].parent_id == spans["w"].span_id
    assert trace.bad_lines == 1
    tracer.close()
    tracer.close()


def test_skipped_and_events() -> None:
    tracer = Tracer()
    root = tracer.start("workflow", "w", None)
    s = tracer.skipped("step", "x", root, step="x", op="vote")
    tracer.event(root, "fallback", reason="r")
    assert s.status == "skipped" and s.duration is not None
    assert root.events[0]["name"] == "fallback"
