"""Reading traces back, complete or cut short: a run's own file, or one trace of a batch stream.

    list_traces("r-traces/local.jsonl")              # the traces a stream holds, from its index
    read_trace("run.jsonl")                          # a per-run file
    read_trace("r-traces/local.jsonl", trace_id)     # one trace of a stream: a seek and a read
    read_trace(path, trace_id, offset=row.trace_offset)   # ... per block, without the index

What a viewer needs is these two functions (and `find_traces` to select by label); the layout
they read is the writer's (`jsonl` for a file, `stream` for a stream).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from treadle.errors import InputError
from treadle.runtime.tracing.span import Span
from treadle.runtime.tracing.stream import BLOCK_STARTS, index_path, labels_of

#: bytes read at a time when a block's length is not known
_CHUNK = 1 << 16


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


@dataclasses.dataclass
class TraceEntry:
    """One trace of a stream, as `list_traces` lists it."""

    trace_id: str
    #: (offset, length) of its last block written: where reading it starts
    offset: int
    length: int
    #: what names it: `row`, `epoch`, `group` (the evaluation), `workflow`, ...
    labels: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the run ended (False: it was cut short, or it is still running)
    final: bool = False
    #: the workflow span's status, start and end (Unix seconds), once the run ended
    status: str | None = None
    start: float | None = None
    end: float | None = None
    spans: int | None = None
    blocks: int = 0
    #: where its first block is (the listing is in this order: the order runs started)
    first_offset: int = 0

    @property
    def row(self) -> Any:
        return self.labels.get("row")

    @property
    def epoch(self) -> Any:
        return self.labels.get("epoch")


def is_stream(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a batch trace stream (its first line says so)."""
    with Path(path).open("rb") as f:
        return f.readline().startswith(BLOCK_STARTS[2])


def read_trace(
    path: str | os.PathLike[str], trace_id: str | None = None, *, offset: int | None = None
) -> Trace:
    """A trace, complete or cut short: a start without an end stays unfinished, a line cut
    short by a crash is counted in `bad_lines`.

    `path` is a run's trace file (format 1 or 2), or a stream: then `trace_id` says which of its
    traces (it may be left out when the stream holds one), and `offset` (its last block's, as a
    results file records it) spares the index lookup."""
    if not is_stream(path):
        trace = _parse(Path(path).read_bytes().splitlines())
        if trace_id is not None and trace.header.get("trace_id") not in (None, trace_id):
            raise InputError(f"The trace file {path} holds the trace {trace.header['trace_id']}, "
                             f"not {trace_id}.")  # fmt: skip
        return trace
    length: int | None = None
    if trace_id is None or offset is None:
        entry = _one_entry(path, trace_id)
        trace_id, offset, length = entry.trace_id, entry.offset, entry.length
    with Path(path).open("rb") as f:
        blocks = _chain(f, trace_id, offset, length)
    if blocks is None:  # the index or the offset does not fit the file: every line is tagged
        blocks = [_scan_lines(Path(path).read_bytes(), trace_id)]
    trace = _parse((line for block in reversed(blocks) for line in block), trace_id)
    if not trace.header and not trace.spans:
        raise InputError(f"The trace stream {path} holds no trace {trace_id}.")
    return trace


def list_traces(path: str | os.PathLike[str]) -> list[TraceEntry]:
    """The traces a stream holds, in the order they started, unfinished ones included: from
    its index, and from a scan of what lies past the index's end (what a crash kept from being
    indexed), or of the whole stream when it has no index."""
    stream = Path(path)
    if not is_stream(stream):
        raise InputError(f"{path} is not a trace stream (a run's own trace file holds one trace).")
    size = stream.stat().st_size
    entries: dict[str, TraceEntry] = {}
    covered = 0
    index = index_path(stream)
    if index.is_file():
        for line in index.read_bytes().splitlines():
            item = _loads(line)
            if item is None or not isinstance(item.get("trace_id"), str):
                continue
            at, length = item.get("offset"), item.get("length")
            if not isinstance(at, int) or not isinstance(length, int) or at + length > size:
                continue  # torn, or past the end of a stream cut back
            _add_block(entries, item["trace_id"], at, length, item)
            covered = max(covered, at + length)
    with stream.open("rb") as f:
        f.seek(covered)
        tail = f.read()
    # traces the index does not know: what their lines say (the fallback path)
    scanned: dict[str, list[bytes]] = {}
    for at, length, head in _blocks(tail, covered):
        trace_id = head["trace_id"]
        known = entries.get(trace_id)
        if known is not None and at <= known.offset:
            continue
        said: dict[str, Any] = {"final": bool(head.get("final"))}
        if head.get("event") == "trace":
            said["labels"] = labels_of(head)
        _add_block(entries, trace_id, at, length, said)
        if known is None or trace_id in scanned:
            scanned.setdefault(trace_id, []).extend(_block_lines(tail, at - covered))
    for trace_id, lines in scanned.items():
        entry = entries[trace_id]
        if entry.final:
            spans = _parse(lines, trace_id).spans
            entry.spans = sum(1 for s in spans if s.status is not None)
            root = min(spans, key=lambda s: s.start) if spans else None
            if root is not None and root.parent_id is None:
                entry.status, entry.start, entry.end = root.status, root.start, root.end
    return sorted(entries.values(), key=lambda e: e.first_offset)


def find_traces(path: str | os.PathLike[str], **labels: Any) -> list[TraceEntry]:
    """The traces of a stream whose labels equal `labels` (e.g. `row="r1", epoch=0`); a label
    given as None matches anything."""
    wanted = {k: v for k, v in labels.items() if v is not None}
    return [
        e for e in list_traces(path) if all(_same(e.labels.get(k), v) for k, v in wanted.items())
    ]


def _same(have: Any, want: Any) -> bool:
    """Labels compare as given, or as text (`--epoch 0` on the command line is "0")."""
    return bool(have == want or (have is not None and str(have) == str(want)))


def _one_entry(path: str | os.PathLike[str], trace_id: str | None) -> TraceEntry:
    entries = list_traces(path)
    if trace_id is None:
        if len(entries) == 1:
            return entries[0]
        raise InputError(
            f"The trace stream {path} holds {len(entries)} traces: say which one (a trace id, "
            "or a row: `treadle trace show FILE --row ID`; `treadle trace list FILE` lists them)."
        )
    for entry in entries:
        if entry.trace_id == trace_id:
            return entry
    raise InputError(f"The trace stream {path} holds no trace {trace_id}.")


def _add_block(
    entries: dict[str, TraceEntry], trace_id: str, at: int, length: int, item: dict[str, Any]
) -> None:
    entry = entries.get(trace_id)
    if entry is None:
        entry = entries[trace_id] = TraceEntry(trace_id, at, length, first_offset=at)
    if isinstance(item.get("labels"), dict):
        entry.labels = item["labels"]
    if at >= entry.offset:
        entry.offset, entry.length = at, length
    entry.blocks += 1
    if item.get("final"):
        entry.final = True
        for key in ("status", "start", "end", "spans"):
            if item.get(key) is not None:
                setattr(entry, key, item[key])


def _blocks(data: bytes, base: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(offset, length, first line) of each block in `data`, which starts at `base`."""
    starts: list[tuple[int, dict[str, Any]]] = []
    for at, line in _lines(data):
        if line.startswith(BLOCK_STARTS):
            head = _loads(line)
            if head is not None:
                starts.append((at, head))
    for i, (at, head) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(data)
        if head.get("event") != "stream" and isinstance(head.get("trace_id"), str):
            yield base + at, end - at, head


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at < len(data):
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        yield at, data[at:end]
        at = end + 1


def _block_end(data: bytes, at: int = 0) -> int:
    """Where the block starting at `data[at:]` ends: at the next block's first line, or -1
    when `data` holds no next block."""
    ends = [i + 1 for p in BLOCK_STARTS if (i := data.find(b"\n" + p, at)) >= 0]
    return min(ends) if ends else -1


def _block_lines(data: bytes, at: int) -> list[bytes]:
    """The lines of the block that starts at `data[at:]`, up to the next block's start."""
    end = _block_end(data, at)
    return data[at : end if end >= 0 else len(data)].splitlines()


def _chain(
    f: IO[bytes], trace_id: str, offset: int, length: int | None
) -> list[list[bytes]] | None:
    """The trace's blocks, last first, followed through their `prev` pointers; None when a
    block is not where the pointer says."""
    blocks: list[list[bytes]] = []
    at: int | None = offset
    while at is not None:
        f.seek(at)
        lines = f.read(length).splitlines() if length is not None else _read_block(f)
        head = _loads(lines[0]) if lines and lines[0].startswith(BLOCK_STARTS) else None
        if head is None or head.get("trace_id") != trace_id:
            return None
        blocks.append(lines)
        prev = head.get("prev")
        if head.get("event") == "trace" or not isinstance(prev, list) or len(prev) != 2:
            break
        at, length = prev
    return blocks


def _read_block(f: IO[bytes]) -> list[bytes]:
    """A block's lines from the file's position, read in chunks until the next block starts."""
    data = b""
    while True:
        chunk = f.read(_CHUNK)
        data += chunk
        end = _block_end(data)
        if end >= 0:
            return data[:end].splitlines()
        if not chunk:
            return data.splitlines()


def _scan_lines(data: bytes, trace_id: str) -> list[bytes]:
    """Every line of the stream tagged with `trace_id` (the fallback when pointers fail)."""
    tag = f'"trace_id":"{trace_id}"'.encode()
    return [line for line in data.splitlines() if tag in line]


def _loads(line: bytes) -> dict[str, Any] | None:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return item if isinstance(item, dict) else None


def _parse(lines: Iterable[bytes], trace_id: str | None = None) -> Trace:
    """The spans of a trace's lines (a file's, or a stream trace's blocks in order)."""
    header: dict[str, Any] = {}
    records: dict[str, dict[str, Any]] = {}
    blobs: dict[str, str] = {}
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        record = _loads(line)
        if record is None:
            bad += 1
            continue
        if trace_id is not None and record.get("trace_id", trace_id) != trace_id:
            continue  # another trace's line (a block boundary misread)
        event = record.pop("event", None)
        sid = record.get("span_id")
        if event == "trace":
            record.pop("final", None)
            header = record
        elif event in ("block", "stream"):
            continue
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
    default_id = str(header.get("trace_id") or "")
    spans = []
    for record in records.values():
        record.setdefault("trace_id", default_id)
        spans.append(Span.from_dict(record))
    return Trace(header, spans, bad, blobs)
