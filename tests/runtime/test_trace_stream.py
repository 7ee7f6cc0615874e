"""The batch trace stream: many runs in one file per worker, read back one trace at a time
through the index (or the offset a results file records), whatever interleaved with it, and
readable up to the last flush when the process is killed; a resumed stream appends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runner import treadle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.flow import Flow
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.session import Session
from treadle.runtime.tracing import (
    Span,
    Tracer,
    find_traces,
    is_stream,
    jsonl,
    list_traces,
    open_stream,
    read_trace,
)
from treadle.runtime.tracing.stream import index_path

FLOW = """\
workflow solve(question: text) -> answer: text
  drafts = generate from "Draft: {question}" with samples 3, temperature 0.7
  notes = for each d in drafts: generate from "Check: {d}"
  answer = ensemble drafts for question
end
"""
#: the spans of one run of FLOW: the workflow; drafts and its 3 model calls; the map, its 3
#: items, each item's step and model call; the ensemble step and its model call
SPANS = 1 + 4 + 1 + 3 * 3 + 2


def reply(messages: Any) -> str:
    return f"reply to {messages[-1].content[-12:]}"


def shape(spans: list[Span]) -> list[tuple[Any, ...]]:
    """What a trace says, without ids and times: each span by its path of names from the
    root, with its kind, operator, status, values, tokens and error."""
    by_id = {s.span_id: s for s in spans}

    def path(s: Span) -> tuple[str, ...]:
        names = [s.name]
        while s.parent_id in by_id:
            s = by_id[s.parent_id]
            names.append(s.name)
        return tuple(reversed(names))

    return sorted(
        (path(s), s.kind, s.op, s.status, json.dumps(s.inputs, sort_keys=True),
         json.dumps(s.outputs, sort_keys=True), s.tokens_in, s.tokens_out, s.error)
        for s in spans
    )  # fmt: skip


# ---------------------------------------------------------------- runs of a flow


async def test_each_rows_trace_read_by_index_equals_its_own_trace_file(tmp_path: Path) -> None:
    flow = Flow.from_source(FLOW)
    questions = [f"question {i}?" for i in range(12)]
    stream_path = tmp_path / "s" / "local.jsonl"
    async with Session(model=ScriptedBackend(reply), cache=False) as session:
        with open_stream(stream_path) as stream:
            refs = []
            for i, q in enumerate(questions):
                sink = stream.trace(row=f"r{i}", epoch=0)
                result = await flow.run({"question": q}, session=session, trace=sink, seed=i)
                assert result.trace_path == stream_path
                refs.append(sink.ref())
            # the stream itself also takes a run (unlabelled; found by its trace id)
            plain = await flow.run({"question": "q"}, session=session, trace=stream)
        own = []
        for i, q in enumerate(questions):
            path = tmp_path / f"own-{i}.jsonl"
            await flow.run({"question": q}, session=session, trace=path, seed=i)
            own.append(read_trace(path))
    assert is_stream(stream_path) and not is_stream(tmp_path / "own-0.jsonl")
    *entries, unlabelled = list_traces(stream_path)
    assert unlabelled.trace_id == plain.trace_id and unlabelled.labels == {"workflow": "solve"}
    assert [e.row for e in entries] == [f"r{i}" for i in range(12)]
    assert all(e.final and e.status == "ok" and e.labels["workflow"] == "solve" for e in entries)
    for i, (entry, ref, alone) in enumerate(zip(entries, refs, own, strict=True)):
        assert ref is not None and ref.trace_id == entry.trace_id and ref.offset == entry.offset
        by_index = read_trace(stream_path, entry.trace_id)
        by_offset = read_trace(stream_path, ref.trace_id, offset=ref.offset)
        assert shape(by_index.spans) == shape(by_offset.spans) == shape(alone.spans)
        assert len(by_index.spans) == entry.spans == SPANS
        assert {s.trace_id for s in by_index.spans} == {entry.trace_id}
        assert by_index.bad_lines == 0
        for key in ("workflow", "program_hash", "model", "seed"):
            assert by_index.header[key] == alone.header[key], key
        assert by_index.header["row"] == f"r{i}"
    # one row through its labels, as `trace show --row` finds it
    (found,) = find_traces(stream_path, row="r5", epoch="0")
    assert found.trace_id == entries[5].trace_id


async def test_concurrent_runs_interleave_in_one_stream_and_read_back_apart(
    tmp_path: Path,
) -> None:
    """Rows running at once, with model calls slow enough that the timer flushes each run
    several times: their blocks interleave, each read back whole and alone."""
    flow = Flow.from_source(FLOW)
    stream_path = tmp_path / "local.jsonl"
    backend = ScriptedBackend(reply, delay=0.03, max_concurrency=64)
    async with Session(model=backend, cache=False) as session:
        with open_stream(stream_path) as stream:

            async def one(i: int) -> Any:
                sink = stream.trace(row=str(i), epoch=0)
                result = await flow.run({"question": f"q{i}"}, session=session, trace=sink)
                return sink.ref(), result.spans

            runs = await asyncio.gather(*(one(i) for i in range(8)))
    entries = {e.trace_id: e for e in list_traces(stream_path)}
    assert len(entries) == 8
    assert max(e.blocks for e in entries.values()) > 1  # runs were written in several blocks
    firsts = sorted(e.first_offset for e in entries.values())
    lasts = sorted(e.offset for e in entries.values())
    assert firsts[-1] < lasts[0]  # every run had begun before any ended: blocks interleave
    for ref, spans in runs:
        read = read_trace(stream_path, ref.trace_id, offset=ref.offset)
        assert shape(read.spans) == shape(spans)
        assert read.bad_lines == 0


# ---------------------------------------------------------------- the law, for any schedule

# an operation: (trace index, action): start a child span, end the latest open span, close the
# trace (ending what is open), or flush the stream (-1 as the trace index)
OPS = st.lists(
    st.tuples(st.integers(-1, 3), st.sampled_from(["start", "end", "close", "flush"])),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_any_interleaving_reads_back_each_trace_exactly(tmp_path_factory: Any, ops: Any) -> None:
    """Whatever the order of span events across traces and of flushes, each trace read back
    from the stream holds exactly its own spans, with their final fields."""
    path = tmp_path_factory.mktemp("law") / "s.jsonl"
    stream = open_stream(path)
    tracers = [Tracer() for i in range(4)]
    for i, tracer in enumerate(tracers):
        tracer.attach(stream.trace(row=str(i)))
    stacks: list[list[Span]] = [[t.start("workflow", f"w{i}", None)] for i, t in enumerate(tracers)]
    closed = [False] * 4
    for n, (i, action) in enumerate(ops):
        if i < 0 or action == "flush":
            stream.flush()
        elif closed[i]:
            continue
        elif action == "start":
            stacks[i].append(tracers[i].start("step", f"s{n}", stacks[i][-1], inputs={"n": n}))
        elif action == "end" and len(stacks[i]) > 1:
            tracers[i].end(stacks[i].pop(), "ok", outputs=n)
        elif action == "close":
            while stacks[i]:
                tracers[i].end(stacks[i].pop(), "ok")
            tracers[i].close()
            closed[i] = True
    stream.close()  # what is still open is written as it is: unfinished
    entries = {e.trace_id: e for e in list_traces(path)}
    assert set(entries) == {t.trace_id for t in tracers}
    for i, tracer in enumerate(tracers):
        read = read_trace(path, tracer.trace_id)
        expected = {s.span_id: (s.name, s.status, s.outputs, s.parent_id) for s in tracer.spans}
        assert {
            s.span_id: (s.name, s.status, s.outputs, s.parent_id) for s in read.spans
        } == expected
        assert entries[tracer.trace_id].final == closed[i]
        assert read.header["row"] == str(i)


# ---------------------------------------------------------------- faults and resume

KILLED = """
import sys, time
from treadle.runtime.tracing import Tracer, open_stream
stream = open_stream(sys.argv[1])
n = 0
while True:
    sink = stream.trace(row=str(n), epoch=0)
    tracer = Tracer()
    tracer.attach(sink)
    root = tracer.start("workflow", "w", None)
    step = tracer.start("step", "s", root, step="s", op="noop")
    if n == 5:
        print("running", flush=True)  # this one never ends
        time.sleep(60)
    tracer.end(step, "ok", outputs=n)
    tracer.end(root, "ok")
    tracer.close()
    ref = sink.ref()  # the safe point: on disk before it is reported
    print(f"done {n} {ref.trace_id} {ref.offset}", flush=True)
    n += 1
"""


def test_a_killed_process_leaves_every_reported_row_readable_and_resume_appends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "local.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    reported = []
    for line in proc.stdout:
        if line.startswith("running"):
            break
        reported.append(line.split()[1:])
    time.sleep(3 * jsonl.FLUSH_INTERVAL + 0.2)  # the timer writes the running row's start
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and len(reported) == 5
    for row, trace_id, offset in reported:
        trace = read_trace(path, trace_id, offset=int(offset))
        assert {s.name: s.status for s in trace.spans} == {"w": "ok", "s": "ok"}
        assert trace.header["row"] == row
    entries = list_traces(path)
    assert [e.row for e in entries] == ["0", "1", "2", "3", "4", "5"]
    cut = entries[-1]
    assert not cut.final and cut.status is None
    assert {s.name: s.status for s in read_trace(path, cut.trace_id).spans} == {
        "w": None,
        "s": None,
    }
    # a torn line (a kill mid-write), then a resume appending to the same stream
    with path.open("ab") as f:
        f.write(b'{"event":"span","span_id":"torn')
    size = path.stat().st_size
    with open_stream(path) as again:
        tracer = Tracer()
        tracer.attach(again.trace(row="5", epoch=0))
        tracer.end(tracer.start("workflow", "w", None), "ok")
        tracer.close()
    assert path.stat().st_size > size
    entries = list_traces(path)
    assert [e.row for e in entries] == ["0", "1", "2", "3", "4", "5", "5"]
    assert entries[-1].final and entries[-1].trace_id == tracer.trace_id
    assert len(read_trace(path, tracer.trace_id).spans) == 1
    for row, trace_id, offset in reported:  # what was there before is still read the same
        assert read_trace(path, trace_id, offset=int(offset)).header["row"] == row


def test_a_stream_without_its_index_is_listed_and_read_by_a_scan(tmp_path: Path) -> None:
    path = tmp_path / "local.jsonl"
    ids = []
    with open_stream(path) as stream:
        for i in range(3):
            tracer = Tracer()
            tracer.attach(stream.trace(row=str(i)))
            tracer.end(tracer.start("workflow", "w", None), "ok")
            tracer.close()
            ids.append(tracer.trace_id)
            stream.flush()
    with_index = list_traces(path)
    index_path(path).unlink()
    assert list_traces(path) == with_index
    assert [e.status for e in with_index] == ["ok"] * 3
    assert all(len(read_trace(path, i).spans) == 1 for i in ids)
    with pytest.raises(Exception, match="holds 3 traces"):
        read_trace(path)
    with pytest.raises(Exception, match="holds no trace nope"):
        read_trace(path, "nope")


EVAL_SCRIPT = """
import sys
from treadle.eval.evaluate import evaluate_sync
from treadle.eval.options import RunConfig
from treadle.runtime.models.scripted import ScriptedBackend

model = ScriptedBackend({"": "x"}, delay=0.05)
evaluate_sync(sys.argv[1], sys.argv[2], scorer="exact", results=sys.argv[3],
              run=RunConfig(model=model, cache=False, concurrency=2))
"""


def test_a_killed_evaluation_keeps_its_rows_traces_and_its_resume_appends(
    tmp_path: Path,
) -> None:
    from treadle.eval.evaluate import evaluate_sync, read_results
    from treadle.eval.options import RunConfig

    flow, data, results = tmp_path / "solve.flow", tmp_path / "d.jsonl", tmp_path / "r.jsonl"
    flow.write_text(FLOW)
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "x"}) + "\n"
                            for i in range(30)))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", EVAL_SCRIPT, str(flow), str(data), str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if results.exists() and results.read_text().count("\n") >= 7:  # header + 6 rows
                break
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    _, before = read_results(results, repair=False)
    assert 6 <= len(before) < 30
    stream = tmp_path / "r-traces" / "local.jsonl"
    for row in before:  # every row the results file holds points at a complete trace
        assert row.trace_path == str(stream)
        trace = read_trace(stream, row.trace_id, offset=row.trace_offset)
        assert trace.header["row"] == row.id and len(trace.spans) == SPANS
        assert all(s.status == "ok" for s in trace.spans)
    cut = [e for e in list_traces(stream) if not e.final]  # rows in flight at the kill
    assert len(cut) <= 2
    report = evaluate_sync(
        flow, data, scorer="exact", resume=results,
        run=RunConfig(model=ScriptedBackend({"": "x"}), cache=False),  # the killed run's
    )  # fmt: skip
    assert report.n == 30 and report.errors == 0
    _, after = read_results(results)
    assert len(after) == 30
    entries = {e.trace_id: e for e in list_traces(stream)}
    assert len(entries) == 30 + len(cut)  # appended: the killed run's traces are still there
    for row in after:
        trace = read_trace(stream, row.trace_id, offset=row.trace_offset)
        assert trace.header["row"] == row.id and entries[row.trace_id].final
    assert {r.trace_id for r in before} <= {r.trace_id for r in after}


# ---------------------------------------------------------------- an evaluation's stream


def test_an_evaluation_points_each_row_at_its_trace_and_trace_show_selects_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "solve.flow").write_text(FLOW)
    rows = [{"question": f"q{i}", "answer": "x"} for i in range(6)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = treadle(
        "eval", "solve.flow", "d.jsonl", "--model", 'scripted:{"": "x"}', "--scorer", "exact",
        "--epochs", "2", "--results", "r.jsonl", "--display", "none", "--no-cache", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "r-traces").iterdir()) == [
        "local.jsonl", "local.jsonl.idx"
    ]  # fmt: skip
    stream = tmp_path / "r-traces" / "local.jsonl"
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    assert len(lines) == 12
    for line in lines:
        trace = read_trace(line["trace_path"], line["trace_id"], offset=line["trace_offset"])
        assert trace.header["row"] == line["id"] and trace.header["epoch"] == line["epoch"]
        assert trace.header["group"] == "r.jsonl"
        assert len(trace.spans) == SPANS
    shown = treadle("trace", "show", str(stream), "--row", "3", "--epoch", "1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("trace solve (row 3, epoch 1)") and "ensemble" in shown.stdout
    by_results = treadle("trace", "show", "r.jsonl", "--row", "3", "--epoch", "1", cwd=tmp_path)
    assert by_results.returncode == 0 and by_results.stdout == shown.stdout
    one = next(x for x in lines if x["id"] == "2" and x["epoch"] == 0)
    by_id = treadle("trace", "show", str(stream), "--trace", one["trace_id"], cwd=tmp_path)
    assert by_id.returncode == 0 and "row 2, epoch 0" in by_id.stdout
    listed = treadle("trace", "list", str(stream), "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {(e["trace_id"], e["labels"]["row"], e["labels"]["epoch"], e["status"])
            for e in json.loads(listed.stdout)} == {
        (x["trace_id"], x["id"], x["epoch"], "ok") for x in lines
    }  # fmt: skip
    # the errors a user meets: one paragraph, exit 2
    for args, said in (
        (["--row", "3"], "Row 3 has 2 traces"),
        (["--row", "99"], "holds no trace of row 99"),
        ([], "holds 12 traces: say which one"),
    ):
        bad = treadle("trace", "show", str(stream), *args, cwd=tmp_path)
        assert bad.returncode == 2 and said in bad.stderr and "Traceback" not in bad.stderr
    bad = treadle("trace", "show", "r.jsonl", cwd=tmp_path)
    assert bad.returncode == 2 and "say which row" in bad.stderr


def test_trace_show_on_a_run_s_own_file_still_works(tmp_path: Path) -> None:
    (tmp_path / "solve.flow").write_text(FLOW)
    ran = treadle(
        "run", "solve.flow", "-i", "question=why?", "--model", 'scripted:{"": "x"}',
        "--trace", "t.jsonl", "--no-cache", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    shown = treadle("trace", "show", "t.jsonl", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("trace solve")
    bad = treadle("trace", "show", "t.jsonl", "--row", "1", cwd=tmp_path)
    assert bad.returncode == 2 and "a run's own trace" in bad.stderr
