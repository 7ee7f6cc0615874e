"""The JSONL trace writer of a run's own file, and where that file goes by default.

The writer is cheap because it does almost nothing while a step runs: a start only notes the
span, an end queues its line (built with orjson, so the span itself can be freed); lines are
written in one batch at most every `FLUSH_INTERVAL` seconds (by one background thread for every
open trace), when the queue grows large, at the end of the run, at interpreter exit and on
SIGTERM/SIGHUP. A span that starts and ends between two flushes is one line. A run cut off
(Ctrl-C, a crash, even SIGKILL) leaves a readable file holding everything up to the last flush,
at most `FLUSH_INTERVAL` old: spans that ended, and the start of the ones that did not. Large
inputs that repeat (the sandbox harness script) are `blob` lines, referenced by hash.

The line builders and the flusher are shared with the batch trace stream (`stream`), which
writes many runs' lines into one file.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import orjson

from treadle.runtime.tracing.previews import json_default
from treadle.runtime.tracing.span import Span

#: 2: span lines carry no trace id (the header does), an `end` line only what changed, a span
#: that started and ended between two flushes is one `span` line, large inputs are `blob` lines
TRACE_FORMAT = 2

#: seconds between two flushes of an open JSONL trace (the guarantee is "at least every 0.1 s")
FLUSH_INTERVAL = 0.05
#: seconds with no open trace after which the flusher thread ends (the next trace restarts it)
_IDLE_EXIT = 10.0
#: queued events that make the writer flush at once instead of waiting for the timer
_FLUSH_EVENTS = 4096


class JsonlSink:
    """Writes the trace as JSON Lines, in batches (see the module docstring).

    Lines: a header `{"event": "trace", "format", "time", "trace_id", ...header}`, then per span
    either one `span` line (it started and ended between two flushes) or a `start` line and
    later an `end` line holding what changed; `blob` lines hold large inputs by sha256.
    """

    def __init__(self, path: str | os.PathLike[str], *, header: dict[str, Any] | None = None):
        self.path = path if isinstance(path, Path) else Path(path)
        self._header: dict[str, Any] | None = {
            "event": "trace",
            "format": TRACE_FORMAT,
            "time": time.time(),
            **(header or {}),
        }
        self._fd: int | None = open_for_writing(self.path, _OPEN_FLAGS)
        #: spans that started and have not ended (their start line is written by a flush
        #: that finds them still running)
        self._running: dict[str, Span] = {}
        #: lines of ended spans (and blobs) not written yet; appended without a lock. Built when
        #: the span ends, so the queue holds bytes, not spans: a long run's ended spans (and
        #: their previews) are freed at once instead of surviving, GC-tracked, until a flush
        self._queue: collections.deque[bytes] = collections.deque()
        #: the trace id, from the first span (the header waits for it)
        self._trace: str | None = None
        #: ids of spans whose start line is written but not their end
        self._started: set[str] = set()
        #: held while writing, so the timer's flush and the final one never interleave
        self.lock = threading.RLock()
        self.error: OSError | None = None
        _FLUSHER.add(self)

    def on_start(self, span: Span) -> None:
        if self._trace is None:
            self._trace = span.trace_id
        self._running[span.span_id] = span

    def on_end(self, span: Span) -> None:
        span_id = span.span_id
        if self._running.pop(span_id, None) is None and self._trace is None:
            self._trace = span.trace_id  # ended without a start seen here
        started = self._started
        if span_id in started:
            started.discard(span_id)
            line = dumps(end_record(span, {"event": "end", "span_id": span_id}))
        else:
            # a flush racing with this may still write a start line after it: `read_trace`
            # never lets a start override what the span line said
            line = span_line(span)
        queue = self._queue
        queue.append(line)
        if len(queue) > _FLUSH_EVENTS:
            self.flush()

    def on_blob(self, sha256: str, text: str) -> None:
        self._queue.append(dumps({"event": "blob", "sha256": sha256, "text": text}))

    def flush(self, final: bool = False) -> None:
        """Write what happened since the last flush: spans that ended (one `span` line, or an
        `end` line after an earlier `start`), then a `start` line for each span still running."""
        with self.lock:
            if self._fd is None:
                return
            queue = self._queue
            lines: list[bytes] = []
            if self._header is not None:
                if "trace_id" not in self._header:
                    trace_id = self._trace
                    if trace_id is None and not final:
                        return  # nothing has happened yet; the header waits for a trace id
                    self._header["trace_id"] = trace_id
                lines.append(dumps(self._header))
                self._header = None
            started = self._started
            # popleft, not a copy and clear: the run's thread may append meanwhile
            while queue:
                lines.append(queue.popleft())
            if self._running:
                # a copy: the run's thread may start and end spans meanwhile
                for span in list(self._running.values()):
                    if span.span_id not in started:
                        started.add(span.span_id)
                        lines.append(dumps(start_record(span, "start")))
            if not lines:
                return
            failed = write_all(self._fd, b"".join(lines), self.path, self.error)
            self.error = self.error or failed

    def close(self) -> None:
        with self.lock:
            if self._fd is None:
                return
            try:
                self.flush(final=True)
            finally:
                _FLUSHER.remove(self)
                os.close(self._fd)
                self._fd = None


def open_for_writing(path: Path, flags: int) -> int:
    """A file descriptor for `path` opened with `flags`, its folder made when missing."""
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)


def write_all(fd: int, data: bytes, path: Path, error: OSError | None) -> OSError | None:
    """Write `data` to `fd`; the failure of this write, or None. A trace that cannot be written
    must not stop the run: the first failure (`error` is the one before, if any) is warned
    about, once."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as e:
        if error is None:
            warnings.warn(
                f"treadle could not write the trace {path}: {e}", RuntimeWarning, stacklevel=3
            )
        return e
    return None


_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def dumps(record: dict[str, Any]) -> bytes:
    """One trace line (orjson, falling back to json for what orjson refuses)."""
    try:
        return orjson.dumps(record, default=json_default, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(record, ensure_ascii=False, default=json_default) + "\n").encode()


def span_line(span: Span, trace_id: str | None = None) -> bytes:
    """`end_record(span, start_record(span, "span"))` as a line, in one go: this runs once
    for nearly every span of every traced run. `trace_id`: the tag of a stream's lines."""
    record: dict[str, Any] = {
        "event": "span",
        "span_id": span.span_id,
        "kind": span.kind,
        "name": span.name,
        "start": span.start,
        "end": span.end,
        "status": span.status,
    }
    value: Any = span.parent_id
    if value is not None:
        record["parent_id"] = value
    value = span.step
    if value is not None:
        record["step"] = value
    value = span.op
    if value is not None:
        record["op"] = value
    value = span.inputs
    if value is not None:
        record["inputs"] = value
    value = span.outputs
    if value is not None:
        record["outputs"] = value
    if span.kind == "model":
        for key in ("tokens_in", "tokens_out", "cached"):
            value = getattr(span, key)
            if value is not None:
                record[key] = value
    value = span.error
    if value is not None:
        record["error"] = value
    value = span.attrs
    if value:
        record["attrs"] = value
    value = span.events
    if value:
        record["events"] = value
    if trace_id is not None:
        record["trace_id"] = trace_id
    try:
        return orjson.dumps(record, default=json_default, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(record, ensure_ascii=False, default=json_default) + "\n").encode()


def start_record(span: Span, event: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event": event,
        "span_id": span.span_id,
        "kind": span.kind,
        "name": span.name,
        "start": span.start,
    }
    if span.parent_id is not None:
        record["parent_id"] = span.parent_id
    if span.step is not None:
        record["step"] = span.step
    if span.op is not None:
        record["op"] = span.op
    if span.inputs is not None:
        record["inputs"] = span.inputs
    if span.attrs:
        record["attrs"] = span.attrs
    return record


def end_record(span: Span, record: dict[str, Any]) -> dict[str, Any]:
    record["status"] = span.status
    record["end"] = span.end
    if span.outputs is not None:
        record["outputs"] = span.outputs
    if span.tokens_in is not None:
        record["tokens_in"] = span.tokens_in
    if span.tokens_out is not None:
        record["tokens_out"] = span.tokens_out
    if span.cached is not None:
        record["cached"] = span.cached
    if span.error is not None:
        record["error"] = span.error
    if span.attrs:
        record["attrs"] = span.attrs
    if span.events:
        record["events"] = span.events
    return record


class Flushable(Protocol):
    """What the flusher flushes: a per-run trace file or a batch stream."""

    #: held while writing
    lock: threading.RLock

    def flush(self) -> None: ...


class _Flusher:
    """One daemon thread flushing every open JSONL trace and trace stream every FLUSH_INTERVAL
    seconds; it stops after a while with nothing open and starts again with the next one."""

    def __init__(self) -> None:
        self.sinks: set[Flushable] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.hooked = False

    def add(self, sink: Flushable) -> None:
        self.sinks.add(sink)  # atomic; the lock is only for starting and stopping the thread
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._loop, name="treadle-trace-flush", daemon=True
                    )
                    self.thread.start()
        if not self.hooked:
            self.hooked = True
            _install_exit_hooks()

    def remove(self, sink: Flushable) -> None:
        self.sinks.discard(sink)

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(FLUSH_INTERVAL)
            sinks = list(self.sinks)
            if not sinks:
                if time.monotonic() - idle_since >= _IDLE_EXIT:
                    with self.lock:
                        self.thread = None
                        if not self.sinks:
                            return
                        # a trace opened while stopping saw the old thread: keep running
                        self.thread = threading.current_thread()
                continue
            idle_since = time.monotonic()
            for sink in sinks:
                # a trace that cannot be written must not stop the others
                with contextlib.suppress(Exception):
                    sink.flush()

    def flush_all(self) -> None:
        for sink in list(self.sinks):
            if sink.lock.acquire(timeout=1):
                try:
                    sink.flush()
                except Exception:
                    pass
                finally:
                    sink.lock.release()

    def after_fork(self) -> None:
        """A forked child leaves the parent's traces to the parent (writing its copy of their
        queues would duplicate lines), and has no flusher thread until it opens a trace."""
        self.lock = threading.Lock()
        self.thread = None
        self.sinks = set()


_FLUSHER = _Flusher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_FLUSHER.after_fork)


def _install_exit_hooks() -> None:
    """Flush open traces at interpreter exit, and on SIGTERM / SIGHUP when nobody else handles
    them (then die of the signal as before). SIGINT raises KeyboardInterrupt, which ends the
    run and its trace normally."""
    atexit.register(_FLUSHER.flush_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _flush_and_die)
        except (ValueError, OSError):  # not allowed here (an embedded interpreter)
            pass


def _flush_and_die(signum: int, frame: Any) -> None:
    _FLUSHER.flush_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def default_trace_path(workflow: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """`.treadle/traces/<UTC timestamp>-<workflow>.jsonl` under the working directory."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    millis = int(time.time() * 1000) % 1000
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in workflow) or "run"
    base = Path(directory) if directory is not None else Path(".treadle") / "traces"
    return base / f"{stamp}{millis:03d}-{safe}.jsonl"
