"""`executor="ray"` on a real two-node Ray cluster, kept off the machine's own interfaces.

The cluster runs in two network namespaces this test creates (a veth pair, addresses it
assigns): the head and the driver in one, the worker node in the other. Ray never sees the
machine's interface addresses, and teardown kills every process in both namespaces (they are
ours by construction) and deletes them, on failure too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
PORT = 6390


@dataclass
class Cluster:
    head_ns: str
    worker_ns: str
    head_ip: str
    worker_ip: str
    temp: Path
    modules: Path

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{PORT}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
            RAY_health_check_period_ms="500",
            RAY_health_check_timeout_ms="1000",
            RAY_health_check_failure_threshold="3",
            PYTHONPATH=f"{self.modules}{os.pathsep}{ROOT}",
        )
        return env

    def run_in(self, ns: str, args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *args],
            env=self.env(),
            text=True,
            capture_output=True,
            **kw,
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _kill_namespace(ns: str) -> None:
    """SIGKILL every process living in `ns` (all started by this test), until none is left."""
    for _ in range(50):
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _ray_bin() -> str:
    found = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    assert Path(found).exists(), "the `ray` command is missing: pip install 'treadle[ray]'"
    return found


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    assert shutil.which("ip"), "the `ip` command (iproute2) is needed to create namespaces"
    tag = f"{os.getpid() % 100000}"
    octet = 16 + os.getpid() % 200
    c = Cluster(
        head_ns=f"trd-h{tag}",
        worker_ns=f"trd-w{tag}",
        head_ip=f"10.{octet}.77.1",
        worker_ip=f"10.{octet}.77.2",
        temp=Path(f"/tmp/trdray{tag}"),
        modules=tmp_path_factory.mktemp("raymods"),
    )
    (c.modules / "trd_slow_scorer.py").write_text(SLOW_SCORER)
    veth_h, veth_w = f"trdh{tag}", f"trdw{tag}"
    created: list[str] = []
    try:
        for ns in (c.head_ns, c.worker_ns):
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", veth_h, "type", "veth", "peer", "name", veth_w)
        _ip("link", "set", veth_h, "netns", c.head_ns)
        _ip("link", "set", veth_w, "netns", c.worker_ns)
        for ns, dev, addr in ((c.head_ns, veth_h, c.head_ip), (c.worker_ns, veth_w, c.worker_ip)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        ray = _ray_bin()
        common = ["--disable-usage-stats", "--num-cpus", "2"]
        head = c.run_in(
            c.head_ns,
            [
                ray, "start", "--head", "--node-ip-address", c.head_ip, "--port", str(PORT),
                "--include-dashboard=false", f"--temp-dir={c.temp}-h", *common,
            ],
            timeout=120,
        )  # fmt: skip
        assert head.returncode == 0, head.stdout + head.stderr
        worker = c.run_in(
            c.worker_ns,
            [
                ray, "start", "--address", c.address, "--node-ip-address", c.worker_ip,
                f"--temp-dir={c.temp}-w", *common,
            ],
            timeout=120,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stdout + worker.stderr
        yield c
    finally:
        for ns in reversed(created):
            _kill_namespace(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for suffix in ("-h", "-w"):
            shutil.rmtree(f"{c.temp}{suffix}", ignore_errors=True)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert c.head_ns not in left and c.worker_ns not in left


DRIVER = textwrap.dedent(
    """
    import json, sys
    from treadle.eval import ray_executor
    from treadle.eval.evaluate import evaluate_sync
    from treadle.eval.executors import RayExecutor
    from treadle.eval.options import RunConfig
    args = json.loads(sys.argv[1])
    report = evaluate_sync(
        args.pop("flow"), args.pop("data"), run=RunConfig(**args.pop("run")),
        executor=RayExecutor(args.pop("ray_address")), **args,
    )
    run = {k: v for k, v in ray_executor.LAST_RUN.items() if k != "settings"}
    print(json.dumps({"report": report.model_dump(mode="json"), "run": run}))
    """
)

FLOW = """workflow solve(problem: text) -> answer: number
  reply = generate from "{problem}"
  answer = extract number from reply
end
"""

SLOW_SCORER = """
import asyncio

async def slow_numeric(output, target):
    await asyncio.sleep(1.5)
    return float(output == target)
"""

DATA = ROOT / "examples" / "data" / "arithmetic.jsonl"


def _rows(n: int) -> list[dict[str, Any]]:
    return [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()][:n]


def _scripted(rows: list[dict[str, Any]]) -> str:
    """Right on every other row, wrong on the rest: a report with something to compare."""
    answers = {
        r["problem"]: f"Answer: {r['answer'] + (0 if i % 2 == 0 else 1)}"
        for i, r in enumerate(rows)
    }
    return "scripted:" + json.dumps(answers)


def _driver(c: Cluster, args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", c.head_ns, sys.executable, "-c", DRIVER, json.dumps(args)],
        env=c.env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "scored", "errors", "mean", "ci_low", "ci_high", "tokens_in", "tokens_out",
            "model_calls", "cached_calls", "sandbox_runs", "scorers")  # fmt: skip
    rows = [
        (r["id"], r["output"], r["score"], r["status"], r["scores"], r["inputs_digest"])
        for r in report["rows"]
    ]
    return {**{k: report[k] for k in keep}, "rows": rows}


def test_two_node_report_equals_local(cluster: Cluster, tmp_path: Path) -> None:
    from treadle.eval.evaluate import evaluate_sync
    from treadle.eval.options import RunConfig

    flow = tmp_path / "solve.flow"
    flow.write_text(FLOW)
    rows = _rows(16)
    run = dict(model=_scripted(rows), cache=False, sandbox="process", concurrency=3)
    common = dict(flow=str(flow), data=str(DATA), scorer="numeric", limit=16, run=run)
    local = evaluate_sync(
        **{**common, "run": RunConfig(**run), "results": str(tmp_path / "local.jsonl")}
    )
    assert local.n == 16 and local.mean == 0.5
    proc = _driver(
        cluster,
        {**common, "ray_address": cluster.address, "results": str(tmp_path / "ray.jsonl")},
    )  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert len(set(result["run"]["nodes"])) == 2, result["run"]  # one actor on each node
    assert _comparable(result["report"]) == _comparable(local.model_dump(mode="json"))
    lines = [json.loads(x) for x in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert sorted(x["id"] for x in lines if x["kind"] == "row") == sorted(r["id"] for r in rows)


def test_killing_the_worker_mid_run_keeps_every_row_once(cluster: Cluster, tmp_path: Path) -> None:
    flow = tmp_path / "solve.flow"
    flow.write_text(FLOW)
    rows = _rows(24)
    results = tmp_path / "ray.jsonl"
    proc = _driver(
        cluster,
        {"flow": str(flow), "data": str(DATA), "scorer": "trd_slow_scorer:slow_numeric",
         "limit": 24, "ray_address": cluster.address, "results": str(results),
         "run": {"model": _scripted(rows), "cache": False, "sandbox": "process",
                 "concurrency": 3}},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists():
                done = results.read_text().count('"kind":"row"')
                if done >= 3:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert 3 <= done < 24, done
        _kill_namespace(cluster.worker_ns)  # the worker node dies: raylet, its actor, all
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    report = result["report"]
    assert result["run"]["resent"] >= 1, result["run"]  # rows in flight on the worker were lost
    ids = [r["id"] for r in report["rows"]]
    assert sorted(ids) == sorted(r["id"] for r in rows) and len(ids) == len(set(ids)) == 24
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    keys = [(x["id"], x["epoch"]) for x in lines if x["kind"] == "row"]
    assert len(keys) == len(set(keys)) == 24
    assert report["errors"] == 0 and report["mean"] == 0.5
