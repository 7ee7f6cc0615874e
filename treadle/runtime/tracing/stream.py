"""The batch trace stream: the traces of many runs in one append-only JSONL file per worker.

Why: an evaluation, a reward batch or a search runs thousands of short flows, and a trace file
per run costs a file creation (12-400 µs on ext4) against a ~45 µs run. A stream is opened once
per process and path (`open_stream`; a second open shares the first), each run writes into it
through its own place in it (`stream.trace(row=..., epoch=...)`, given to `Flow.run(trace=...)`,
attached to the run's tracer), and the flusher thread every trace file uses writes what all of
them did in one `write`. Nothing is done per span event: a flush reads the spans the tracer keeps
(a span's status is set last, so a span seen ended is seen whole) and encodes what is new.

Layout (format 3): a `stream` line, then blocks. A trace is written in blocks, one per flush
that found something new in it (a short run: one block). A block is contiguous: it starts with
`{"event": "trace", "trace_id", "final", ...header}` (the trace's first block: the run's labels,
workflow, program hash, model, seed) or `{"event": "block", "trace_id", "prev": [offset,
length], "final"}` (a later one, pointing at the block before), followed by format 2's span
lines, each tagged with its `trace_id`. `final` marks the block written after the run ended. One
trace is read from the offset of its last block by following `prev`: a seek and a read per block,
never a scan of the file.

The index (`STREAM.idx`, JSON Lines) has one line per block: `trace_id`, `offset`, `length`;
on a trace's first block its labels (`row`, `epoch`, `group`, `workflow`), on its final one
`final`, the workflow span's `status`, `start` and `end`, and the number of `spans`. It is
written after the block it describes, so it never points past what is on disk; the stream alone
is enough (the reader scans what lies past the index's end, or all of it without an index).

Nothing is lost on faults: lines are written at least every `FLUSH_INTERVAL`, at exit and on
SIGTERM/SIGHUP (as a trace file's), and at safe points: `StreamTrace.ref()` writes its run's
final block at once, so a results line pointing at it is never ahead of the stream. A killed
process leaves the stream and index readable up to the last flush. Both files are opened
O_APPEND, each flush is one write and its offset is read back from the descriptor, so a stream
reopened to resume (or written by two processes at once) stays consistent; a line a crash tore
is closed with a newline before anything is appended after it.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treadle.runtime.tracing import jsonl
from treadle.runtime.tracing.jsonl import (
    dumps,
    end_record,
    open_for_writing,
    span_line,
    start_record,
    write_all,
)
from treadle.runtime.tracing.span import Span

#: 3: a stream of many traces in blocks (format 2's lines tagged with their trace id)
STREAM_FORMAT = 3
#: header fields that describe the run rather than name it (`labels_of` leaves them out)
_RUN_FIELDS = frozenset(
    {"event", "trace_id", "final", "prev", "time", "program_hash", "source", "model", "seed"}
)
#: how a block's first line starts (the writer puts `event` first): where a block begins
BLOCK_STARTS = (b'{"event":"trace"', b'{"event":"block"', b'{"event":"stream"')
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def index_path(path: str | os.PathLike[str]) -> Path:
    """The index beside a stream: `STREAM.idx`."""
    p = Path(path)
    return p.with_name(p.name + ".idx")


@dataclasses.dataclass(frozen=True)
class TraceRef:
    """Where one run's trace is: the stream, the trace id and the offset of its last block
    (`read_trace(path, trace_id, offset=offset)` reads it without the index)."""

    path: Path
    trace_id: str
    offset: int


class StreamTrace:
    """One run's place in a stream (`TraceStream.trace`), attached to the run's tracer: at each
    flush it reads the spans the tracer keeps and turns what is new into a block (a span that
    ended: one `span` line, or an `end` line after an earlier `start`; a span still running: a
    `start` line); `close` (the run ended) makes the next block its final one. Nothing happens
    per span event, so a traced run costs its lines and little else."""

    def __init__(self, stream: TraceStream, labels: dict[str, Any]) -> None:
        self.stream = stream
        self.labels = labels
        self.header: dict[str, Any] = {"time": time.time(), **labels}
        #: the run ended (set by its thread after its last span ended)
        self.closed = False
        #: (offset, length) of the last block written
        self.last: tuple[int, int] | None = None
        #: the final block is written (or there was nothing to write)
        self.done = False
        self._spans: list[Span] = []
        self._trace: str | None = None
        #: spans before this index are written whole; those in `_started` only by their start
        self._cursor = 0
        self._started: dict[int, Span] = {}
        #: blob lines not written yet
        self._blobs: collections.deque[bytes] = collections.deque()

    def bind(self, tracer: Any) -> None:
        self._spans = tracer.spans
        self._trace = tracer.trace_id

    def on_blob(self, sha256: str, text: str) -> None:
        record = {"event": "blob", "sha256": sha256, "text": text, "trace_id": self._trace}
        self._blobs.append(dumps(record))

    def describe(self, header: Mapping[str, Any]) -> None:
        """Add what the run knows about itself to the trace's header (`Flow.run` gives the
        workflow, program hash, model and seed); before its first span."""
        self.header.update(header)

    def close(self) -> None:
        self.closed = True

    def ref(self) -> TraceRef | None:
        """Where the run's trace is, its blocks written first (a safe point: call it before
        recording the reference anywhere). None when nothing could be written."""
        if not self.done:
            self.stream.flush(self)
        if self.last is None or self._trace is None:
            return None
        return TraceRef(self.stream.path, self._trace, self.last[0])

    def take_lines(self) -> list[bytes]:
        """The lines of what is new since the last block (the stream's lock is held)."""
        blobs, tag = self._blobs, self._trace
        lines = [blobs.popleft() for _ in range(len(blobs))]
        started = self._started
        for i, span in list(started.items()):
            if span.status is not None:
                del started[i]
                lines.append(dumps(end_record(span, {"event": "end", "span_id": span.span_id,
                                                     "trace_id": tag})))  # fmt: skip
        spans = self._spans
        end = len(spans)
        for i in range(self._cursor, end):
            span = spans[i]
            if span.status is not None:
                lines.append(span_line(span, tag))
            else:
                record = start_record(span, "start")
                record["trace_id"] = tag
                lines.append(dumps(record))
                started[i] = span
        self._cursor = end
        return lines

    def block(self) -> bytes | None:
        """The next block, or None when there is nothing new (the stream's lock is held)."""
        final = self.closed  # before taking the lines: a close after this is the next block's
        lines = self.take_lines()
        if not lines and not final:
            return None
        if final:
            self.done = True
        trace_id = self._trace
        if trace_id is None or not self._spans:
            return None  # no span at all: nothing to show
        head: dict[str, Any]
        if self.last is None:
            head = {"event": "trace", "trace_id": trace_id, "final": final, **self.header}
        else:
            head = {"event": "block", "trace_id": trace_id, "prev": self.last, "final": final}
        lines.insert(0, dumps(head))
        return b"".join(lines)

    def index_line(self, offset: int, length: int) -> bytes:
        """The index line of the block just written at `offset` (the stream's lock is held)."""
        entry: dict[str, Any] = {"trace_id": self._trace, "offset": offset, "length": length}
        if self.last is None:
            # what `labels_of` finds in the header, without filtering it
            labels = entry["labels"] = dict(self.labels)
            if "workflow" in self.header:
                labels["workflow"] = self.header["workflow"]
        if self.done:
            entry["final"] = True
            entry["spans"] = sum(1 for span in self._spans if span.status is not None)
            root = self._spans[0] if self._spans else None
            if root is not None and root.status is not None:
                entry.update(status=root.status, start=root.start, end=root.end)
        self.last = (offset, length)
        return dumps(entry)


class TraceStream:
    """One append-only trace file (and its index) that many runs write into; open it with
    `open_stream`, which shares one open stream per path in a process."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.index = index_path(path)
        self._key = key
        self._users = 0
        #: runs whose final block is not written yet, in start order
        self._open: dict[StreamTrace, None] = {}
        #: held while writing: the timer's flush, a run's `ref` and the last one never interleave
        self.lock = threading.RLock()
        self.error: OSError | None = None
        self._fd: int | None = _open_appending(path, _stream_line)
        self._index_fd: int | None = _open_appending(self.index, None)
        jsonl._FLUSHER.add(self)

    def trace(self, **labels: Any) -> StreamTrace:
        """A new run's sink; `labels` (e.g. `row`, `epoch`, `group`: JSON values) name it in
        the index."""
        sink = StreamTrace(self, labels)
        self._open[sink] = None
        return sink

    def flush(self, only: StreamTrace | None = None) -> None:
        """Write a block for every run with something new (or for `only`), then their index
        lines."""
        with self.lock:
            fd = self._fd
            if fd is None:
                return
            traces = [only] if only is not None else list(self._open)
            blocks: list[bytes] = []
            written: list[tuple[StreamTrace, int]] = []
            for sink in traces:
                if sink.done:
                    continue
                block = sink.block()
                if sink.done:
                    self._open.pop(sink, None)
                if block is not None:
                    blocks.append(block)
                    written.append((sink, len(block)))
            if not blocks:
                return
            data = b"".join(blocks)
            failed = write_all(fd, data, self.path, self.error)
            if failed is not None:
                self.error = self.error or failed
                return
            offset = os.lseek(fd, 0, os.SEEK_CUR) - len(data)
            entries = []
            for sink, length in written:
                entries.append(sink.index_line(offset, length))
                offset += length
            if self._index_fd is not None:
                failed = write_all(self._index_fd, b"".join(entries), self.index, self.error)
                self.error = self.error or failed

    def close(self) -> None:
        """Release this user's hold; the last one writes what is left and closes the files
        (runs still going are written as they are, unfinished)."""
        with _REGISTRY_LOCK:
            self._users -= 1
            if self._users > 0:
                return
            if _STREAMS.get(self._key) is self:
                del _STREAMS[self._key]
        with self.lock:
            try:
                self.flush()
            finally:
                jsonl._FLUSHER.remove(self)
                for fd in (self._fd, self._index_fd):
                    if fd is not None:
                        os.close(fd)
                self._fd = self._index_fd = None

    def __enter__(self) -> TraceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the open streams of this process, by absolute path
_STREAMS: dict[str, TraceStream] = {}
_REGISTRY_LOCK = threading.Lock()


def open_stream(path: str | os.PathLike[str]) -> TraceStream:
    """The trace stream at `path`, appended to (created with its folder when missing). Every
    open in this process shares one stream until the last user closes it, so concurrent
    evaluations that name one folder write one file."""
    key = os.path.abspath(path)
    with _REGISTRY_LOCK:
        stream = _STREAMS.get(key)
        if stream is None:
            stream = _STREAMS[key] = TraceStream(Path(path), key)
        stream._users += 1
    return stream


def labels_of(header: Mapping[str, Any]) -> dict[str, Any]:
    """What names a trace in its stream: its header without what describes the run (the labels
    it was opened with, e.g. `row`, `epoch`, `group`, and its `workflow`)."""
    return {k: v for k, v in header.items() if k not in _RUN_FIELDS}


def _forget_streams() -> None:
    """A forked child leaves the parent's streams to the parent (as the flusher does)."""
    global _REGISTRY_LOCK
    _STREAMS.clear()
    _REGISTRY_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_streams)


def _stream_line() -> bytes:
    return dumps(
        {
            "event": "stream",
            "format": STREAM_FORMAT,
            "time": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
    )


def _open_appending(path: Path, first: Any) -> int:
    """`path` opened for appending: a new file gets `first()` as its first line, and a last
    line torn by a crash is closed with a newline so what follows stays readable."""
    fd = open_for_writing(path, _FLAGS)
    size = os.fstat(fd).st_size
    if size == 0:
        if first is not None:
            os.write(fd, first())
    elif os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")
    return fd


__all__ = [
    "BLOCK_STARTS",
    "STREAM_FORMAT",
    "StreamTrace",
    "TraceRef",
    "TraceStream",
    "index_path",
    "labels_of",
    "open_stream",
]
