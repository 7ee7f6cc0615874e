"""The shipped examples end to end through `treadle run`: compiler, scheduler, operators, a
scripted model and (for the program cross-check) the real Docker sandbox."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import treadle as run_treadle
from default_signals import with_default_signals

from treadle.runtime.tracing import read_trace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODEL = 'scripted:{"": "Let me think.\\nAnswer: 4\\n```python\\nprint(2 + 2)\\n```"}'


#: `treadle ARGS` in a fresh process, with this file's time budget
treadle = functools.partial(run_treadle, timeout=300)


def test_answer_example(tmp_path: Path) -> None:
    res = treadle(
        "run", str(EXAMPLES / "answer.flow"), "-i", "question=2+2?", "--model", MODEL,
        "--trace", "t.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["answer"].startswith("Let me think.")


@pytest.mark.docker
def test_solve_math_example_with_the_docker_sandbox(tmp_path: Path) -> None:
    res = treadle(
        "run", str(EXAMPLES / "solve_math.flow"), "-i", "problem=What is 2+2?",
        "--model", MODEL, "--trace", "t.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"answer": 4}
    spans = read_trace(tmp_path / "t.jsonl").spans
    sandbox = [s for s in spans if s.kind == "sandbox"]
    assert sandbox and all(s.status == "ok" for s in sandbox)
    assert {s.status for s in spans} == {"ok"}


@pytest.mark.docker
def test_ctrl_c_during_a_sandbox_run_stops_its_containers(tmp_path: Path) -> None:
    import signal
    import time

    sleepy = 'scripted:{"": "```python\\nimport time\\ntime.sleep(8)\\nprint(4)\\n```"}'
    trace = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        with_default_signals(
            [sys.executable, "-c", "from treadle.cli import main; main()", "run",
             str(EXAMPLES / "solve_math.flow"), "-i", "problem=x", "--model", sleepy,
             "--no-cache", "--trace", str(trace)]
        ),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            spans = read_trace(trace).spans if trace.exists() else []
            if any(s.kind == "sandbox" for s in spans):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    spans = read_trace(trace).spans
    assert next(s for s in spans if s.kind == "sandbox").status == "cancelled"
    run_id = spans[0].trace_id[:12]

    def running() -> str:
        return subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=treadle.run={run_id}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    # idle warm containers stop once their agent sees its stdin closed: allow a few seconds
    deadline = time.monotonic() + 15
    while running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running() == ""
