"""`treadle run` and `treadle trace show` as a user runs them: real processes, real servers.

Every failure must give one clear paragraph on stderr, no traceback, the right exit code, and
the trace so far on disk.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import treadle
from default_signals import with_default_signals
from rt_helpers import program, r, step

from treadle.runtime import ir
from treadle.runtime.tracing import read_trace

LAUNCHER = Path(__file__).with_name("cli_launcher.py")

ANSWER_FLOW = """\
workflow answer(question: text, n: number) -> reply: text
  reply = generate from "Q{n}: {question}"
end
"""


def launcher(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def error_paragraph(stderr: str) -> str:
    """The error part of stderr: everything after the `trace:` line, which must be one
    paragraph with no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("trace: ")]
    text = "\n".join(lines).strip()
    assert text and "\n\n" not in text, stderr
    return text


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "answer.flow"
    path.write_text(ANSWER_FLOW)
    return path


def write_ir(tmp_path: Path, prog: ir.Program) -> Path:
    path = tmp_path / "prog.json"
    path.write_text(prog.model_dump_json())
    return path


# ---------------------------------------------------------------- success


def test_run_prints_outputs_and_writes_trace(flow_file: Path, tmp_path: Path) -> None:
    res = treadle(
        "run", str(flow_file), "--input", "question=why?", "--input", "n=2",
        "--model", 'scripted:["because"]', cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"reply": "because"}
    trace_line = next(ln for ln in res.stderr.splitlines() if ln.startswith("trace: "))
    path = tmp_path / trace_line.removeprefix("trace: ")
    assert path.parent == tmp_path / ".treadle" / "traces"
    trace = read_trace(path)
    kinds = sorted(s.kind for s in trace.spans)
    assert kinds == ["model", "step", "workflow"]
    assert all(s.status == "ok" for s in trace.spans)
    model = next(s for s in trace.spans if s.kind == "model")
    assert model.inputs["value"][0]["content"] == "Q2: why?"

    shown = treadle("trace", "show", str(path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "answer" in shown.stdout and "reply (generate)" in shown.stdout
    assert "ok" in shown.stdout and "tokens" in shown.stdout


def test_inputs_file_and_overrides(flow_file: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"question": "a", "n": 1}))
    res = treadle(
        "run", str(flow_file), "--inputs", str(inputs), "--input", "n=7",
        "--model", 'scripted:{"Q7: a": "seven"}', "--trace", "t.jsonl", "--no-cache",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"reply": "seven"}
    assert (tmp_path / "t.jsonl").is_file()


# ---------------------------------------------------------------- bad input: exit 2


def test_compile_error_exits_2_with_diagnostics(tmp_path: Path) -> None:
    bad = tmp_path / "bad.flow"
    bad.write_text("workflow w(x: text) -> y: text\n  y = generat from x\nend\n")
    res = treadle("run", str(bad), "--input", "x=1", cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "bad.flow:2" in res.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input", "question=q"], "missing input n"),
        (["--input", "question=q", "--input", "n=1", "--input", "m=2"], "unknown input m"),
        (["--input", "question=q", "--input", "n=abc"], "must be JSON"),
        (["--input", "question=q", "--input", 'n="3"'], "input n must be number, got text"),
        (["--input", "nonsense"], "NAME=VALUE"),
    ],
)
def test_wrong_inputs_exit_2(
    flow_file: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    res = treadle("run", str(flow_file), *args, cwd=tmp_path)
    assert res.returncode == 2
    text = error_paragraph(res.stderr)
    assert expected in text
    if "missing" in expected or "unknown" in expected:
        assert "It takes: question: text, n: number" in text


def test_missing_flow_file_exits_2(tmp_path: Path) -> None:
    res = treadle("run", "nope.flow", cwd=tmp_path)
    assert res.returncode == 2 and "no file nope.flow" in error_paragraph(res.stderr)


# ---------------------------------------------------------------- runtime faults: exit 3


def run_answer(flow_file: Path, tmp_path: Path, *extra: str) -> tuple[str, Path]:
    res = treadle(
        "run", str(flow_file), "-i", "question=q", "-i", "n=1", "--trace", "t.jsonl", *extra,
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 3, (res.returncode, res.stderr)
    text = error_paragraph(res.stderr)
    assert "The trace so far is in t.jsonl" in text
    return text, tmp_path / "t.jsonl"


def test_missing_model_file(flow_file: Path, tmp_path: Path) -> None:
    text, trace = run_answer(flow_file, tmp_path, "--model", f"llama:{tmp_path}/none.gguf")
    assert "Step 'reply' (generate)" in text and "none.gguf" in text
    spans = {s.kind: s for s in read_trace(trace).spans}
    assert spans["step"].status == "error" and spans["workflow"].status == "error"


def test_model_server_refusing_connections(
    flow_file: Path, tmp_path: Path, unused_port: int
) -> None:
    url = f"http://127.0.0.1:{unused_port}/v1#m"
    text, trace = run_answer(flow_file, tmp_path, "--model", f"openai:{url}")
    assert "Step 'reply' (generate) at answer.flow:2:3 failed" in text
    model = next(s for s in read_trace(trace).spans if s.kind == "model")
    assert model.status == "error"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Faulty OpenAI-compatible endpoints, chosen by the first path segment."""

    release = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        kind = self.path.strip("/").split("/")[0]
        if kind == "hang":
            self.release.wait(60)
            return
        if kind == "garbage":
            self._send(200, b"<html>this is not json</html>", "text/html")
        elif kind == "e500":
            self._send(500, b'{"error": {"message": "internal"}}')
        elif kind == "e429":
            self._send(429, b'{"error": {"message": "rate limited"}}')
        elif kind == "ok":
            body = {
                "choices": [{"message": {"role": "assistant", "content": "fine"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                "model": "m",
            }  # fmt: skip
            self._send(200, json.dumps(body).encode())

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Handler.release.set()
        server.shutdown()
        server.server_close()


def test_model_server_answering_ok(flow_file: Path, tmp_path: Path, faulty_server: str) -> None:
    res = treadle(
        "run", str(flow_file), "-i", "question=q", "-i", "n=1", "--no-cache",
        "--model", f"openai:{faulty_server}/ok/v1#m", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"reply": "fine"}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("garbage", "not JSON"), ("e500", "500"), ("e429", "429")],
)
def test_model_server_faults(
    flow_file: Path, tmp_path: Path, faulty_server: str, kind: str, expected: str
) -> None:
    text, _ = run_answer(
        flow_file, tmp_path, "--no-cache", "--model", f"openai:{faulty_server}/{kind}/v1#m"
    )
    assert "Step 'reply' (generate) at answer.flow:2:3 failed" in text and expected in text


def test_model_server_hanging_hits_the_step_timeout(
    flow_file: Path, tmp_path: Path, faulty_server: str
) -> None:
    t0 = time.monotonic()
    text, trace = run_answer(
        flow_file, tmp_path, "--no-cache", "--model", f"openai:{faulty_server}/hang/v1#m",
        "--step-timeout", "1", "--retries", "0",
    )  # fmt: skip
    assert time.monotonic() - t0 < 60
    assert "time limit" in text
    statuses = {s.kind: s.status for s in read_trace(trace).spans}
    assert statuses == {"workflow": "error", "step": "error", "model": "cancelled"}


def test_step_that_raises(tmp_path: Path) -> None:
    prog = write_ir(tmp_path, program(step("kaboom", "t.boom", value="x"), outputs={}))
    res = launcher("run", str(prog), "--trace", "t.jsonl", cwd=tmp_path)
    assert res.returncode == 3
    text = error_paragraph(res.stderr)
    assert "Step 'kaboom' (t.boom) failed: ValueError: boom: x" in text


# ---------------------------------------------------------------- Ctrl-C: exit 130


def test_ctrl_c_cancels_everything_and_keeps_the_trace(tmp_path: Path) -> None:
    prog = write_ir(
        tmp_path,
        program(
            step("quick", "t.sleep", value=1, seconds=0.01),
            step("long1", "t.sleep", value=1, seconds=60),
            step("long2", "t.sleep", value=2, seconds=60),
            outputs={"a": r("long1"), "b": r("long2")},
        ),
    )
    trace = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        with_default_signals(
            [sys.executable, str(LAUNCHER), "run", str(prog), "--trace", str(trace)]
        ),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            spans = read_trace(trace).spans if trace.exists() else []
            started = sum(s.op == "t.sleep" for s in spans)
            if started == 3 and any(s.name == "quick" and s.status == "ok" for s in spans):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 130, err
    assert out == ""
    text = error_paragraph(err)
    assert text.startswith("Interrupted") and str(trace) in text
    final = {s.name: s.status for s in read_trace(trace).spans}
    assert final == {"main": "cancelled", "quick": "ok", "long1": "cancelled", "long2": "cancelled"}
    shown = treadle("trace", "show", str(trace), cwd=tmp_path)
    assert shown.returncode == 0 and "cancelled" in shown.stdout


# ---------------------------------------------------------------- options


def three_sleeps(tmp_path: Path) -> Path:
    return write_ir(
        tmp_path,
        program(
            *(step(f"s{i}", "t.sleep", value=i, seconds=0.3) for i in range(3)),
            outputs={f"o{i}": r(f"s{i}") for i in range(3)},
        ),
    )


def gaps(trace: Path) -> list[float]:
    """Seconds between the ends of the three 0.3 s steps, in end order (a step's span opens
    before it gets a slot, so ends tell how many ran at once)."""
    spans = [s for s in read_trace(trace).spans if s.op == "t.sleep"]
    assert len(spans) == 3 and all(s.status == "ok" for s in spans)
    ends = sorted(s.end or 0 for s in spans)
    return [b - a for a, b in itertools.pairwise(ends)]


def test_concurrency_limits_steps_running_at_once(tmp_path: Path) -> None:
    prog = three_sleeps(tmp_path)
    one = launcher("run", str(prog), "-j", "1", "--trace", "one.jsonl", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {"o0": 0, "o1": 1, "o2": 2}
    assert all(gap >= 0.25 for gap in gaps(tmp_path / "one.jsonl"))  # one after another
    three = launcher("run", str(prog), "--concurrency", "3", "--trace", "3.jsonl", cwd=tmp_path)
    assert three.returncode == 0, three.stderr
    assert sum(gaps(tmp_path / "3.jsonl")) < 0.25  # all at once
    zero = launcher("run", str(prog), "-j", "0", cwd=tmp_path)
    assert zero.returncode == 2 and "--concurrency must be at least 1" in error_paragraph(
        zero.stderr
    )


def test_seed_reaches_the_model_call_and_the_trace(flow_file: Path, tmp_path: Path) -> None:
    res = treadle(
        "run", str(flow_file), "-i", "question=q", "-i", "n=1", "--seed", "7", "--no-cache",
        "--model", 'scripted:["x"]', "--trace", "t.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    trace = read_trace(tmp_path / "t.jsonl")
    assert trace.header["seed"] == 7
    model = next(s for s in trace.spans if s.kind == "model")
    assert model.attrs["gen_ai.request.seed"] == 7
    unseeded = treadle(
        "run", str(flow_file), "-i", "question=q", "-i", "n=1", "--no-cache",
        "--model", 'scripted:["x"]', "--trace", "u.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert unseeded.returncode == 0, unseeded.stderr
    model = next(s for s in read_trace(tmp_path / "u.jsonl").spans if s.kind == "model")
    assert "gen_ai.request.seed" not in model.attrs


TWO_WORKFLOWS = """\
workflow first(x: text) -> y: text
  y = generate from "first {x}"
end

workflow second(x: text) -> y: text
  y = generate from "second {x}"
end
"""


def test_workflow_picks_which_one_runs(tmp_path: Path) -> None:
    path = tmp_path / "two.flow"
    path.write_text(TWO_WORKFLOWS)
    model = 'scripted:{"first": "one", "second": "two"}'
    default = treadle("run", str(path), "-i", "x=a", "-m", model, "--no-cache", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    picked = treadle(
        "run", str(path), "-i", "x=a", "-m", model, "--no-cache", "--workflow", "second",
        "--trace", "t.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout) == {"y": "two"} != json.loads(default.stdout)
    assert read_trace(tmp_path / "t.jsonl").header["workflow"] == "second"
    wrong = treadle("run", str(path), "-i", "x=a", "-w", "third", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "no workflow named 'third'" in error_paragraph(wrong.stderr)
    assert "first, second" in wrong.stderr


SANDBOXED = """\
workflow calc() -> result: json
  result = run "import sys; print(6 * 7); print('err', file=sys.stderr)"
end
"""


def test_sandbox_process_runs_code_and_says_it_does_not_isolate(tmp_path: Path) -> None:
    path = tmp_path / "calc.flow"
    path.write_text(SANDBOXED)
    res = treadle("run", str(path), "--sandbox", "process", "--trace", "t.jsonl", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)["result"]
    assert result["ok"] is True and result["stdout"] == "42\n" and result["stderr"] == "err\n"
    assert "WARNING" in res.stderr and "does NOT isolate" in res.stderr
    (span,) = [s for s in read_trace(tmp_path / "t.jsonl").spans if s.kind == "sandbox"]
    assert span.status == "ok" and span.attrs["exit_code"] == 0
    assert span.outputs["value"]["stdout"] == "42\n"
    bad = treadle("run", str(path), "--sandbox", "vm", cwd=tmp_path)
    assert bad.returncode == 2 and "--sandbox is docker or process" in bad.stderr


def test_otel_without_an_endpoint_prints_spans_on_stderr(
    flow_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    res = treadle(
        "run", str(flow_file), "-i", "question=q", "-i", "n=1", "--otel", "--no-cache",
        "--model", 'scripted:["x"]', cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"reply": "x"}
    for name in ("invoke_workflow answer", "execute_tool generate", "chat scripted"):
        assert f'"name": "{name}"' in res.stderr
    assert '"gen_ai.usage.output_tokens": 1' in res.stderr
