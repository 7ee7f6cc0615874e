"""`executor="ray"`: rows spread over a Ray cluster, results streamed back as they finish.

Why an actor per worker and not a task per row: a row needs the compiled flow, model backends
(an embedded model takes seconds to load) and a warm sandbox pool. Each actor builds those once
(`RowRunner.setup`) and then runs many rows concurrently in its own event loop. The driver keeps
a bounded number of rows in flight per actor and yields each result as it arrives, so the
caller appends it to the results file at once, exactly as the local executor does.

A worker that dies (its node lost, its process killed) or becomes unreachable loses only its
rows in flight: the driver sends them again to a live actor, starts a new actor in its place on
a node that is still alive (the least used first), and keeps the first result for each task
key, so every row ends in the report exactly once. A worker that was only unreachable
(`ActorUnavailableError`) may still be running: it is asked to close its session (its sandbox
pool) and then killed, so it neither keeps containers nor goes on with rows sent elsewhere. A
lost result (`ObjectLostError`: the worker is fine, the object is gone) is sent again.

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
from typing import Any, Protocol, TypeVar

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


@dataclass(eq=False)  # one slot per actor, compared by identity
class _Slot:
    actor: Any
    #: the node it was placed on
    node: str
    inflight: int = 0


def _alive_nodes(ray: Any) -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


def _start_actors(
    ray: Any, runner: Any, options: RayOptions, count: int | None = None, used: Sequence[str] = ()
) -> list[_Slot]:
    """Start `count` actors (None: `options.workers`, else one per alive node) on the alive
    nodes, those with the fewest of the `used` actors first."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(_alive_nodes(ray), key=lambda n: sum(1 for u in used if u == n))
    if not nodes:
        return []
    n = count if count is not None else (options.workers or len(nodes))
    ref = ray.put(runner)
    cls = _worker_class()
    slots = []
    for i in range(n):
        node = nodes[i % len(nodes)]
        strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        actor = cls.options(num_cpus=options.num_cpus, scheduling_strategy=strategy).remote(ref)
        slots.append(_Slot(actor, node))
    return slots


def _retire(ray: Any, actor: Any, timeout: float = 10.0) -> None:
    """Close a lost actor's session (its sandbox pool) if it still runs, then kill it."""
    with contextlib.suppress(Exception):  # dead, or unreachable past the timeout
        ray.get(actor.close.remote(), timeout=timeout)
    with contextlib.suppress(Exception):  # already gone
        ray.kill(actor, no_restart=True)


async def ray_map(
    runner: RowRunner,
    tasks: Sequence[T],
    *,
    key: Any = None,
    options: RayOptions | None = None,
) -> AsyncGenerator[tuple[T, Any], None]:
    """Run every task on the cluster's actors; yield (task, result) as each finishes.

    `key(task)` names a task (default: its index); a task whose worker was lost, or whose
    result was, is sent again, and a result for a key already yielded is dropped, so each task
    is yielded exactly once. An exception the runner raises for a task (not a lost worker or
    object) propagates to the caller.
    """
    opts = options or RayOptions()
    ray = ensure_ray(opts.address, **opts.init_kwargs)
    from ray.exceptions import ObjectLostError, RayActorError

    keyof = key or (lambda t: None)
    pending: list[tuple[Hashable, T, int]] = []
    for i, t in enumerate(tasks):
        k = keyof(t)
        pending.append((i if k is None else k, t, 0))
    pending.reverse()  # pop() from the end keeps the given order
    slots = _start_actors(ray, runner, opts)
    if not slots:
        raise RayExecutorError("The Ray cluster has no alive node to run rows on.")
    target = len(slots)
    nodes = await asyncio.to_thread(ray.get, [s.actor.node.remote() for s in slots])
    LAST_RUN.clear()
    LAST_RUN.update(
        nodes=list(nodes), resent=0, workers=len(slots), replaced=0, retired=0,
        settings=_settings(runner),
    )  # fmt: skip
    log.info("ray executor: %d workers on nodes %s", len(slots), nodes)
    done: set[Hashable] = set()
    # ObjectRef → (slot, key, task, attempt)
    running: dict[Any, tuple[_Slot, Hashable, T, int]] = {}
    retiring: list[asyncio.Future[None]] = []

    def send_again(k: Hashable, t: T, attempt: int, e: BaseException, what: str) -> None:
        if attempt + 1 >= opts.max_attempts:
            raise RayExecutorError(
                f"Row {k!r} was lost ({what}) {attempt + 1} times; giving up ({e})."
            ) from e
        log.warning("ray: row %r lost (%s); sending it again: %s", k, what, e)
        pending.append((k, t, attempt + 1))
        LAST_RUN["resent"] += 1

    def drop(slot: _Slot) -> None:
        """Take a lost actor out of service: its other rows go to live actors (their results
        from it are never read), and it is closed and killed in the background."""
        slots.remove(slot)
        for ref, (owner, k, t, attempt) in list(running.items()):
            if owner is slot:
                del running[ref]
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
                pending.append((k, t, attempt))
        retiring.append(asyncio.ensure_future(asyncio.to_thread(_retire, ray, slot.actor)))
        LAST_RUN["retired"] += 1

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
                if ref not in running:  # its actor was dropped while this batch was read
                    continue
                slot, k, t, attempt = running.pop(ref)
                slot.inflight -= 1
                try:
                    result = await asyncio.to_thread(ray.get, ref)
                except ObjectLostError as e:
                    send_again(k, t, attempt, e, "its result object")
                    continue
                except RayActorError as e:  # died, or unavailable (and maybe still running)
                    send_again(k, t, attempt, e, "with its worker")
                    if slot in slots:
                        drop(slot)
                    continue
                if k in done:
                    continue
                done.add(k)
                yield t, result
            if pending and len(slots) < target:
                new = _start_actors(
                    ray, runner, opts, count=target - len(slots), used=[s.node for s in slots]
                )
                LAST_RUN["replaced"] += len(new)
                slots += new
                if not slots:
                    raise RayExecutorError("Every Ray worker was lost and no node is left.")
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
        if retiring:
            await asyncio.gather(*retiring, return_exceptions=True)


__all__ = ["RayExecutorError", "RayOptions", "RowRunner", "ensure_ray", "ray_map"]
