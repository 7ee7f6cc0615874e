"""`treadle run --otel` exports to a real OTLP receiver: Arize Phoenix, the LLM trace viewer.

Phoenix runs on 127.0.0.1 (its own working directory, telemetry off); the run uses the embedded
model for its `generate` step and the process sandbox for its `run` step; the spans are read
back from Phoenix's REST API and checked: names, kinds, GenAI attributes, tokens, nesting, one
trace, and the same spans as the run's own JSONL trace. A missing Phoenix fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from treadle.runtime.tracing import read_trace

pytestmark = [pytest.mark.slow, pytest.mark.model]

FLOW = """\
workflow demo(question: text) -> reply: text, result: json
  reply = generate from "Answer in one word: {question}" with max_tokens 8
  result = run "print(6 * 7)"
end
"""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def phoenix(
    tmp_path_factory: pytest.TempPathFactory,
    server: Callable[..., AbstractContextManager[Any]],
    free_ports: Callable[[], int],
) -> Iterator[str]:
    """`phoenix serve` on 127.0.0.1; yields its base URL (OTLP/HTTP at /v1/traces)."""
    command = shutil.which("phoenix")
    if command is None:
        pytest.fail("Arize Phoenix is not installed: pip install -e '.[phoenix]'")
    work = tmp_path_factory.mktemp("phoenix")
    port = free_ports()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_ports()),
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    base = f"http://127.0.0.1:{port}"
    ready = f"{base}/v1/projects"
    with server([command, "serve"], ready, work / "phoenix.log", what="phoenix", env=env, cwd=work):
        yield base


def flatten(attrs: Any, prefix: str = "") -> dict[str, Any]:
    """Phoenix may return attributes nested by their dots; make them flat again."""
    if not isinstance(attrs, dict):
        return {prefix.rstrip("."): attrs}
    flat: dict[str, Any] = {}
    for key, value in attrs.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else
                    {f"{prefix}{key}": value})  # fmt: skip
    return flat


def spans_of(base: str, trace_id: str, expected: int) -> list[dict[str, Any]]:
    """The spans of one trace, once Phoenix has stored `expected` of them."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = get_json(f"{base}/v1/projects/default/spans?limit=1000")["data"]
        except urllib.error.HTTPError as e:
            if e.code != 404:  # 404: no project yet, nothing received
                raise
            data = []
        found = [s for s in data if flatten(s["attributes"]).get("treadle.trace_id") == trace_id]
        if len(found) >= expected:
            return found
        time.sleep(0.25)
    pytest.fail(f"Phoenix holds {len(found)} of the {expected} spans of trace {trace_id}")


def test_treadle_run_otel_exports_to_phoenix(phoenix: str, tmp_path: Path) -> None:
    (tmp_path / "demo.flow").write_text(FLOW)
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix,
        "OTEL_SERVICE_NAME": "treadle-test",
        "TREADLE_CACHE_DIR": str(tmp_path / "cache"),
    }
    res = subprocess.run(
        [sys.executable, "-c", "from treadle.cli import main; main()", "run", "demo.flow",
         "-i", "question=What color is the sky?", "--otel", "--sandbox", "process",
         "--no-cache", "--seed", "1", "--trace", "t.jsonl"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    outputs = json.loads(res.stdout)
    assert outputs["result"]["stdout"] == "42\n" and isinstance(outputs["reply"], str)

    local = read_trace(tmp_path / "t.jsonl")
    assert len(local.spans) == 5  # workflow, 2 steps, a model call, a sandbox run
    trace_id = local.header["trace_id"]
    spans = spans_of(phoenix, trace_id, len(local.spans))
    assert len(spans) == len(local.spans)
    assert len({s["context"]["trace_id"] for s in spans}) == 1  # one OpenTelemetry trace
    named = {s["name"]: s for s in spans}
    assert len(named) == len(spans), sorted(named)
    by_id = {sp.span_id: sp for sp in local.spans}
    for s in spans:  # each exported span is one of the JSONL trace's, with the same times
        mine = by_id[flatten(s["attributes"])["treadle.span_id"]]
        assert mine.status == "ok" and mine.end is not None
        start = datetime.fromisoformat(s["start_time"].replace("Z", "+00:00")).timestamp()
        end = datetime.fromisoformat(s["end_time"].replace("Z", "+00:00")).timestamp()
        assert abs(start - mine.start) < 0.001 and abs(end - mine.end) < 0.001
    wf = named["invoke_workflow demo"]
    generate, run = named["execute_tool generate"], named["execute_tool run"]
    (chat_name,) = [n for n in named if n.startswith("chat ")]
    local_sandbox = next(sp for sp in local.spans if sp.kind == "sandbox")
    chat, sandbox = named[chat_name], named[f"sandbox {local_sandbox.step}"]

    # nesting: workflow ▸ steps ▸ the model call and the sandbox run
    def span_id(s: dict[str, Any]) -> str:
        return str(s["context"]["span_id"])

    assert wf["parent_id"] is None
    assert generate["parent_id"] == span_id(wf) and run["parent_id"] == span_id(wf)
    assert chat["parent_id"] == span_id(generate)
    assert sandbox["parent_id"] == span_id(run)
    assert all(s["status_code"] == "OK" for s in spans)
    assert {s["span_kind"] for s in (wf, generate, run)} == {"CHAIN"}
    assert chat["span_kind"] == "LLM" and sandbox["span_kind"] == "TOOL"

    # the model call: GenAI attributes and real token counts from the embedded model
    a = flatten(chat["attributes"])
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "llama"
    assert "SmolLM2" in a["gen_ai.request.model"] and a["gen_ai.request.max_tokens"] == 8
    assert a["gen_ai.request.seed"] == 1
    local_model = next(s for s in local.spans if s.kind == "model")
    assert local_model.tokens_in and local_model.tokens_out
    assert a["gen_ai.usage.input_tokens"] == local_model.tokens_in > 5
    assert 0 < a["gen_ai.usage.output_tokens"] == local_model.tokens_out <= 8
    assert a["llm.token_count.prompt"] == local_model.tokens_in
    assert "What color is the sky?" in a["input.value"]
    # the step and the sandbox run
    assert flatten(generate["attributes"])["gen_ai.tool.name"] == "generate"
    s = flatten(sandbox["attributes"])
    assert s["treadle.exit_code"] == 0 and s["treadle.timed_out"] is False
    assert "42" in s["output.value"]
    # timestamps agree with the JSONL trace
    local_wf = next(sp for sp in local.spans if sp.kind == "workflow")
    assert local_wf.end is not None
    assert flatten(wf["attributes"])["gen_ai.workflow.name"] == "demo"
