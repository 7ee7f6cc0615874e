"""`executor="ray"` with no address: a local cluster that stays on 127.0.0.1.

The report equals the local executor's, and every TCP connection of the driver and of the
cluster's processes (found by this run's own temp dir in their command lines) is between
loopback addresses (127.0.0.0/8, ::1; never a wildcard such as 0.0.0.0): nothing goes to, or
listens on, the machine's interface addresses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loopback import assert_cluster_on_loopback

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data" / "arithmetic.jsonl"
FLOW = """workflow solve(problem: text) -> answer: number
  reply = generate from "{problem}"
  answer = extract number from reply
end
"""


def test_local_ray_stays_on_loopback_and_matches_local(ray_temp: Path, tmp_path: Path) -> None:
    from treadle.eval import ray_executor
    from treadle.eval.evaluate import evaluate_sync
    from treadle.eval.executors import RayExecutor
    from treadle.eval.options import RunConfig
    from treadle.runtime.session import SandboxConfig

    flow = tmp_path / "solve.flow"
    flow.write_text(FLOW)
    rows = [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()][:6]
    # right on the first three rows, wrong on the others
    answers = {r["problem"]: f"Answer: {r['answer'] + (i >= 3)}" for i, r in enumerate(rows)}
    model = "scripted:" + json.dumps(answers)
    run = RunConfig(model=model, cache=False, sandbox=SandboxConfig("process"))
    common: dict[str, Any] = dict(scorer="numeric", limit=6)
    local = evaluate_sync(flow, DATA, results=tmp_path / "l.jsonl", run=run, **common)
    ray_executor.ensure_ray(_temp_dir=str(ray_temp), num_cpus=2)
    import ray

    nodes = ray.nodes()
    assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
    fresh = run.with_(sandbox=SandboxConfig("process", "fresh"))
    remote = evaluate_sync(
        flow, DATA, results=tmp_path / "r.jsonl", executor=RayExecutor(workers=1), run=fresh,
        **common,
    )  # fmt: skip
    assert ray_executor.LAST_RUN["workers"] == 1
    # the workers got the driver's settings, the sandbox's isolation included
    assert ray_executor.LAST_RUN["settings"] == {"run_config": fresh}
    sent = ray_executor.LAST_RUN["settings"]["run_config"]
    assert (sent.model, sent.cache, sent.sandbox.kind, sent.sandbox.isolation) == (
        model,
        False,
        "process",
        "fresh",
    )
    keys = ("n", "scored", "errors", "mean", "model_calls", "tokens_in", "tokens_out")
    assert {k: getattr(remote, k) for k in keys} == {k: getattr(local, k) for k in keys}
    assert [(r.id, r.output, r.score) for r in remote.rows] == [
        (r.id, r.output, r.score) for r in local.rows
    ]
    assert local.mean == 0.5
    # one trace stream per worker process; each row's pointer reads its trace back
    from treadle.runtime.tracing import read_trace

    streams = sorted((tmp_path / "r-traces").glob("*.jsonl"))
    assert len(streams) == 1 and streams[0].name.startswith("ray-"), streams
    for row in remote.rows:
        assert row.trace_path == str(streams[0]) and row.trace_id is not None
        trace = read_trace(row.trace_path, row.trace_id, offset=row.trace_offset)
        assert trace.header["row"] == row.id and trace.header["group"] == "r.jsonl"
        assert {s.name for s in trace.spans} >= {"solve", "reply", "answer"}
    assert_cluster_on_loopback(ray_temp)
