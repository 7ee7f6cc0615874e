"""`executor="ray"`: rows spread over a Ray cluster, results streamed back as they finish.

Why an actor per worker and not a task per row: a row needs the compiled flow, model backends
(an embedded model takes seconds to load) and a warm sandbox pool. Each actor builds those once
(`RowRunner.setup`) and then runs many rows concurrently in its own event loop. The driver keeps
a bounded number of rows in flight per actor and yields each result as it arrives, so the
caller appends it to the results file at once, exactly as the local executor does.

A worker that dies (its node lost, its process killed) loses only its rows in flight: the driver
sends them again to a live actor (starting new actors where nodes remain), and keeps the first
result for each task key, so every row ends in the report exactly once.

Network: `ray.init()` with no address starts a local cluster held on 127.0.0.1
(`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`; no dashboard). By default Ray
advertises the machine's interface address, so traffic would leave loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from treadle.errors import TreadleError

log = logging.getLogger(__name__)

T = TypeVar("T")


class RayExecutorError(TreadleError):
    """Ray is missing, the cluster cannot be reached, or no worker is left to run the rows."""

    exit_code = 3


class RowRunner(Protocol):
    """What a Ray worker runs: built once per actor, then called for many tasks.

    The object is pickled to each worker, so it holds only plain data (flow source or IR,
    model specs, options); `setup` builds the heavy parts inside the worker's event loop.
    """

    async def setup(self) -> None: ...

    async def run(self, task: Any) -> Any: ...

    async def aclose(self) -> None: ...


@dataclass
class RayOptions:
    """How the driver uses the cluster."""

    #: `host:port` of a running cluster; None starts a local one on 127.0.0.1
    address: str | None = None
    #: actors to start; None: one per alive node
    workers: int | None = None
    #: tasks in flight per actor (each actor runs them concurrently)
    per_worker: int = 4
    #: how many times one task may be lost with its worker before the run gives up
    max_attempts: int = 3
    #: CPUs each actor reserves (0: actors do not compete with Ray's own CPU accounting)
    num_cpus: float = 0.0
    #: extra arguments for ray.init
    init_kwargs: dict[str, Any] = field(default_factory=dict)


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise RayExecutorError(
            f'--executor ray needs Ray ({e}). Install it with `pip install "treadle[ray]"`.'
        ) from e
    return ray


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> Any:
    """Connect to `address`, or start a local cluster that stays on 127.0.0.1."""
    if address is None:
        # seen with Ray 2.60: a local node advertises the interface address (even with
        # `_node_ip_address`) unless clusters are "disabled"; Ray reads this at import, and the
        # processes it starts inherit it
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _ray()
    if ray.is_initialized():
        return ray
    if address is None and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # when Ray was imported before the line above
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        "ignore_reinit_error": True,
    }
    kwargs.update(init_kwargs)
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError across versions
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise RayExecutorError(f"Could not start or join {where}: {e}") from e
    return ray


class _Worker:
    """The actor body (wrapped by ray.remote on first use, so importing this needs no Ray)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self._ready: asyncio.Task[None] | None = None

    async def _setup(self) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self.runner.setup())
        await self._ready

    async def run(self, task: Any) -> Any:
        await self._setup()
        return await self.runner.run(task)

    async def node(self) -> str:
        return str(_ray().get_runtime_context().get_node_id())

    async def close(self) -> None:
        if self._ready is not None:
            await self.runner.aclose()


_remote_worker: Any = None

#: what the last `ray_map` did: the node of each actor it started, rows sent again, and the
#: settings its workers were given
LAST_RUN: dict[str, Any] = {}


def _settings(runner: Any) -> dict[str, Any]:
    """What a runner hands its workers (its pickled state, when it is plain data)."""
    state = getattr(runner, "__getstate__", lambda: None)()
    return dict(state) if isinstance(state, dict) else {}


def _worker_class() -> Any:
    global _remote_worker
    if _remote_worker is None:
        _remote_worker = _ray().remote(max_restarts=0, max_task_retries=0)(_Worker)
    return _remote_worker


@dataclass
class _Slot(Generic[T]):
    actor: Any
    inflight: int = 0


def _alive_nodes(ray: Any) -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


def _start_actors(
    ray: Any, runner: Any, options: RayOptions, count: int | None = None
) -> list[Any]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = _alive_nodes(ray)
    if not nodes:
        return []
    n = count if count is not None else (options.workers or len(nodes))
    ref = ray.put(runner)
    cls = _worker_class()
    actors = []
    for i in range(n):
        strategy = NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False)
        actors.append(
            cls.options(num_cpus=options.num_cpus, scheduling_strategy=strategy).remote(ref)
        )
    return actors


async def ray_map(
    runner: RowRunner,
    tasks: Sequence[T],
    *,
    key: Any = None,
    options: RayOptions | None = None,
) -> AsyncGenerator[tuple[T, Any], None]:
    """Run every task on the cluster's actors; yield (task, result) as each finishes.

    `key(task)` names a task (default: its index); a task whose worker died is sent again, and
    a result for a key already yielded is dropped, so each task is yielded exactly once. An
    exception the runner raises for a task (not a lost worker) propagates to the caller.
    """
    opts = options or RayOptions()
    ray = ensure_ray(opts.address, **opts.init_kwargs)
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    lost_errors: tuple[type[BaseException], ...] = (
        RayActorError,
        ActorDiedError,
        ActorUnavailableError,
    )
    keyof = key or (lambda t: None)
    pending: list[tuple[Hashable, T, int]] = []
    for i, t in enumerate(tasks):
        k = keyof(t)
        pending.append((i if k is None else k, t, 0))
    pending.reverse()  # pop() from the end keeps the given order
    slots = [_Slot[T](a) for a in _start_actors(ray, runner, opts)]
    if not slots:
        raise RayExecutorError("The Ray cluster has no alive node to run rows on.")
    nodes = await asyncio.to_thread(ray.get, [s.actor.node.remote() for s in slots])
    LAST_RUN.clear()
    LAST_RUN.update(nodes=list(nodes), resent=0, workers=len(slots), settings=_settings(runner))
    log.info("ray executor: %d workers on nodes %s", len(slots), nodes)
    done: set[Hashable] = set()
    # ObjectRef → (slot, key, task, attempt)
    running: dict[Any, tuple[_Slot[T], Hashable, T, int]] = {}
    try:
        while pending or running:
            for slot in slots:
                while pending and slot.inflight < opts.per_worker:
                    k, t, attempt = pending.pop()
                    if k in done:
                        continue
                    ref = slot.actor.run.remote(t)
                    slot.inflight += 1
                    running[ref] = (slot, k, t, attempt)
            if not running:
                break
            ready, _ = await asyncio.to_thread(ray.wait, list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                slot, k, t, attempt = running.pop(ref)
                slot.inflight -= 1
                try:
                    result = await asyncio.to_thread(ray.get, ref)
                except lost_errors as e:
                    if attempt + 1 >= opts.max_attempts:
                        raise RayExecutorError(
                            f"Row {k!r} was lost with its Ray worker {attempt + 1} times; "
                            f"giving up ({e})."
                        ) from e
                    log.warning("ray worker lost with row %r; sending it again: %s", k, e)
                    if slot in slots:
                        slots.remove(slot)
                    pending.append((k, t, attempt + 1))
                    LAST_RUN["resent"] = LAST_RUN.get("resent", 0) + 1
                    continue
                if k in done:
                    continue
                done.add(k)
                yield t, result
            if pending and not slots:
                new = _start_actors(ray, runner, opts, count=1)
                if not new:
                    raise RayExecutorError("Every Ray worker was lost and no node is left.")
                slots = [_Slot[T](a) for a in new]
    finally:
        for ref in list(running):
            with contextlib.suppress(Exception):  # already finished or its worker is gone
                ray.cancel(ref)
        closing = []
        for slot in slots:
            with contextlib.suppress(Exception):  # the actor may already be gone
                closing.append(slot.actor.close.remote())
        if closing:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(ray.wait, closing, num_returns=len(closing), timeout=10)


__all__ = ["RayExecutorError", "RayOptions", "RowRunner", "ensure_ray", "ray_map"]
