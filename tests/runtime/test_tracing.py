"""The JSONL trace: batched, flushed by a timer, at exit and on signals; readable when cut
short (even by SIGKILL); previews whole or cut and hashed; large inputs stored once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from default_signals import with_default_signals

from treadle.runtime.tracing import JsonlSink, Tracer, jsonl, read_trace
from treadle.runtime.tracing.previews import MAX_TEXT, summarize, value_sha256


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(path: Path, done: object, timeout: float = 5.0) -> float:
    """Seconds until `done(read_trace(path))` holds (fails the test after `timeout`)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists() and done(read_trace(path)):  # type: ignore[operator]
            return time.monotonic() - t0
        time.sleep(0.005)
    pytest.fail(f"{path} never showed what was waited for: {path.read_text()!r}")


# ---------------------------------------------------------------- previews


def test_a_cut_value_keeps_the_hash_of_the_whole() -> None:
    text = "x" * (MAX_TEXT + 10)
    s = summarize(text)
    assert s["truncated"] is True and s["value"].endswith("…[+10 chars]")
    assert s["sha256"] == hashlib.sha256(json.dumps(text).encode()).hexdigest()
    assert s["bytes"] == MAX_TEXT + 12
    listed = summarize(list(range(500)))
    assert len(listed["value"]) == 51 and listed["value"][-1] == "…[+450 items]"
    nested = summarize({"a": ["y" * (MAX_TEXT + 1)], "b": 1})
    assert nested["truncated"] is True and nested["value"]["b"] == 1


@pytest.mark.parametrize(
    "value",
    [None, 3, 2.5, True, "short", {"a": [1, 2]}, {"x": None, "y": "t"}, [1, "two", None],
     [{"role": "user", "content": "hi"}], {"k": {"deep": [1, {"z": 2}]}}],
)  # fmt: skip
def test_a_whole_value_is_its_own_fingerprint(value: object) -> None:
    s = summarize(value)
    assert s == {"value": value}
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert value_sha256(s) == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_preview_is_a_copy() -> None:
    value = {"a": 1}
    nested = {"a": [1, 2, {"b": 3}]}
    s, t = summarize(value), summarize(nested)
    value["a"] = 2
    nested["a"][2]["b"] = 4  # type: ignore[index]
    assert s["value"] == {"a": 1} and t["value"] == {"a": [1, 2, {"b": 3}]}


def test_values_orjson_refuses_still_serialise() -> None:
    s = summarize({1: "int key", "big": 2**70})
    assert s["value"] == {"1": "int key", "big": 2**70}
    assert value_sha256(s) is not None


# ---------------------------------------------------------------- the JSONL file


def test_spans_are_batched_then_flushed_by_the_timer(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    tracer = Tracer([JsonlSink(path, header={"workflow": "w"})])
    root = tracer.start("workflow", "w", None, inputs={"q": "?"})
    step = tracer.start("step", "a", root, step="a", op="generate")
    # neither ended nor closed, and no further event: only the timer can write them
    waited = wait_for(path, lambda t: len(t.spans) == 2)
    assert waited < 1.0  # the timer runs every FLUSH_INTERVAL (0.05 s); 1 s allows for load
    trace = read_trace(path)
    assert trace.header["workflow"] == "w" and trace.header["format"] == 2
    assert trace.header["trace_id"] == tracer.trace_id
    assert {s.name: s.status for s in trace.spans} == {"w": None, "a": None}
    assert all(s.trace_id == tracer.trace_id for s in trace.spans)
    tracer.end(step, "ok", outputs="answer")
    tracer.end(root, "error", error="boom")
    tracer.close()
    tracer.close()
    with path.open("a") as f:
        f.write('{"event": "end", "span_id": "cut sh')  # a line cut short by a crash
    trace = read_trace(path)
    spans = {s.name: s for s in trace.spans}
    assert spans["a"].status == "ok" and spans["a"].outputs == {"value": "answer"}
    assert spans["a"].inputs is None and spans["a"].op == "generate"
    assert spans["w"].error == "boom" and spans["w"].inputs == {"value": {"q": "?"}}
    assert spans["a"].parent_id == spans["w"].span_id
    assert trace.bad_lines == 1
    # a start line, then an end line holding only what changed
    kept = [json.loads(line) for line in path.read_text().splitlines()[:-1]]
    events = [(r["event"], r.get("name")) for r in kept]
    assert events == [("trace", None), ("start", "w"), ("start", "a"), ("end", None),
                      ("end", None)]  # fmt: skip


def test_a_span_between_two_flushes_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    tracer = Tracer([JsonlSink(path)])
    root = tracer.start("workflow", "w", None)
    for i in range(3):
        s = tracer.start("step", f"s{i}", root, step=f"s{i}", op="noop", inputs={"v": i})
        tracer.event(s, "retry", attempt=1)
        tracer.end(s, "ok", outputs=i)
    tracer.end(root, "ok", outputs={"out": 2})
    tracer.close()
    records = lines(path)
    assert [r["event"] for r in records] == ["trace", "span", "span", "span", "span"]
    assert "trace_id" not in records[1]
    spans = {s.name: s for s in read_trace(path).spans}
    assert spans["s1"].inputs == {"value": {"v": 1}} and spans["s1"].outputs == {"value": 1}
    assert spans["s1"].events[0]["name"] == "retry" and spans["s1"].status == "ok"
    assert spans["w"].status == "ok" and spans["w"].duration is not None


def test_a_large_input_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    tracer = Tracer([JsonlSink(path)])
    harness = ("print('harness')\n" * 500).encode()
    root = tracer.start("workflow", "w", None)
    for i in range(5):
        files = {"harness.py": tracer.blob(harness), "solution.py": f"x = {i}"}
        s = tracer.start("sandbox", "sandbox python3", root, inputs={"files": files})
        tracer.end(s, "ok", outputs={"stdout": "harness"})
    tracer.end(root)
    tracer.close()
    records = lines(path)
    assert [r["event"] for r in records].count("blob") == 1
    assert path.stat().st_size < len(harness) + 5 * 600
    trace = read_trace(path)
    sandbox = [s for s in trace.spans if s.kind == "sandbox"]
    assert len(sandbox) == 5
    for i, span in enumerate(sorted(sandbox, key=lambda s: s.start)):
        files = span.inputs["value"]["files"]
        assert trace.blob(files["harness.py"]) == harness.decode()
        assert files["harness.py"]["bytes"] == len(harness)
        assert files["solution.py"] == f"x = {i}"


def test_format_1_traces_still_read(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    old = [
        {"event": "trace", "format": 1, "time": 1.0, "workflow": "w"},
        {"event": "start", "trace_id": "t1", "span_id": "1", "parent_id": None,
         "kind": "workflow", "name": "w", "step": None, "op": None, "start": 1.0,
         "inputs": {"value": 1, "sha256": "ab"}, "attrs": {}},
        {"event": "end", "trace_id": "t1", "span_id": "1", "parent_id": None, "kind": "workflow",
         "name": "w", "step": None, "op": None, "status": "ok", "start": 1.0, "end": 2.0,
         "inputs": {"value": 1, "sha256": "ab"}, "outputs": None, "tokens_in": None,
         "tokens_out": None, "cached": None, "error": None, "attrs": {}, "events": []},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    (span,) = read_trace(path).spans
    assert (span.trace_id, span.name, span.status, span.duration) == ("t1", "w", "ok", 1.0)


def test_an_end_read_before_its_start_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    records = [
        {"event": "trace", "format": 2, "trace_id": "t"},
        {"event": "end", "span_id": "1", "status": "ok", "end": 2.0},
        {"event": "start", "span_id": "1", "kind": "step", "name": "a", "start": 1.0},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    (span,) = read_trace(path).spans
    assert (span.name, span.status, span.start, span.end) == ("a", "ok", 1.0, 2.0)


# ---------------------------------------------------------------- cut short: exit, signals

SCRIPT = """
import sys, time
from treadle.runtime.tracing import JsonlSink, Tracer, jsonl

mode = sys.argv[2]
if mode != "kill":
    jsonl.FLUSH_INTERVAL = 3600  # only the exit hook or the signal handler can write
tracer = Tracer([JsonlSink(sys.argv[1], header={"workflow": "w"})])
root = tracer.start("workflow", "w", None)
done = tracer.start("step", "done", root, step="done", op="noop")
tracer.end(done, "ok", outputs=1)
tracer.start("step", "running", root, step="running", op="noop")
print("ready", flush=True)
if mode == "exit":
    sys.exit(0)  # without closing the tracer
if mode == "crash":
    raise RuntimeError("crash")
time.sleep(60)
"""


def start_script(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    path = tmp_path / f"{mode}.jsonl"
    proc = subprocess.Popen(
        with_default_signals([sys.executable, "-c", textwrap.dedent(SCRIPT), str(path), mode]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc, path


def assert_cut_short(path: Path) -> None:
    trace = read_trace(path)
    assert trace.header["workflow"] == "w" and trace.bad_lines == 0
    assert {s.name: s.status for s in trace.spans} == {"w": None, "done": "ok", "running": None}


@pytest.mark.parametrize("mode", ["exit", "crash"])
def test_exit_flushes_an_unclosed_trace(tmp_path: Path, mode: str) -> None:
    proc, path = start_script(tmp_path, mode)
    proc.communicate(timeout=30)
    assert proc.returncode == (0 if mode == "exit" else 1)
    assert_cut_short(path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminating_signal_flushes_then_kills(tmp_path: Path, sig: signal.Signals) -> None:
    proc, path = start_script(tmp_path, "wait")
    assert path.read_bytes() == b""  # nothing written yet: the timer is off in this process
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == -sig  # it still dies of the signal
    assert_cut_short(path)


def test_sigkill_leaves_everything_up_to_the_last_flush(tmp_path: Path) -> None:
    proc, path = start_script(tmp_path, "kill")
    try:
        wait_for(path, lambda t: len(t.spans) == 3, timeout=10)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert_cut_short(path)


def test_flusher_restarts_after_idling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flusher thread ends when no trace is open for a while; the next trace starts it."""
    flusher = jsonl._Flusher()  # a private one: other tests' traces cannot keep it busy
    flusher.hooked = True
    monkeypatch.setattr(jsonl, "_FLUSHER", flusher)
    monkeypatch.setattr(jsonl, "_IDLE_EXIT", 0.1)
    first = Tracer([JsonlSink(tmp_path / "1.jsonl")])
    first.start("workflow", "w", None)
    wait_for(tmp_path / "1.jsonl", lambda t: len(t.spans) == 1)
    thread = flusher.thread
    assert thread is not None and thread.is_alive()
    first.close()
    thread.join(timeout=10)
    assert not thread.is_alive() and flusher.thread is None
    second = Tracer([JsonlSink(tmp_path / "2.jsonl")])
    second.start("workflow", "w", None)
    wait_for(tmp_path / "2.jsonl", lambda t: len(t.spans) == 1)
    assert flusher.thread is not None and flusher.thread is not thread
    second.close()
