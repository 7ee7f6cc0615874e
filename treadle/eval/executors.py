"""Executors: the one seam where rows leave the process, as httpx's transport is.

An executor takes the row jobs of an evaluation and calls `on_result` once per finished job,
in the caller's event loop, so the results file, the progress display and the report are built
the same way whatever ran the rows. `LocalExecutor` runs them in this process's session;
`RayExecutor` spreads them over a Ray cluster, each worker with its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from treadle.errors import InputError
from treadle.eval.options import RunConfig
from treadle.eval.report import RowReport
from treadle.eval.runner import RemoteRowRunner, RowJob, RowRunner, run_row

OnResult = Callable[[RowReport], None]
ShouldStop = Callable[[], bool]


class Executor(Protocol):
    """Runs row jobs; `on_result` gets each finished job exactly once; stops early (cleanly)
    when `should_stop()` turns true."""

    async def run(
        self,
        jobs: Sequence[RowJob],
        runner: RowRunner,
        on_result: OnResult,
        should_stop: ShouldStop,
    ) -> None: ...


@dataclass(frozen=True)
class LocalExecutor:
    """Rows in this process: `runner.run_config.row_concurrency` workers pull jobs in order,
    all in the runner's one session."""

    async def run(
        self,
        jobs: Sequence[RowJob],
        runner: RowRunner,
        on_result: OnResult,
        should_stop: ShouldStop,
    ) -> None:
        queue = iter(jobs)
        workers: list[asyncio.Task[None]] = []

        async def worker() -> None:
            for job in queue:
                if should_stop():
                    break
                on_result(await run_row(job, runner))
                if should_stop():
                    break
            if should_stop():  # past the error budget: stop the rows still running, cleanly
                current = asyncio.current_task()
                for w in workers:
                    if w is not current:
                        w.cancel()

        n = max(1, min(runner.run_config.row_concurrency, len(jobs)))
        async with asyncio.TaskGroup() as tg:
            workers.extend(tg.create_task(worker()) for _ in range(n))


@dataclass(frozen=True)
class RayExecutor:
    """Rows on a Ray cluster: `address` of a running one (None: a local cluster held on
    127.0.0.1), `workers` actors (None: one per alive node). Each worker opens its own session
    from the evaluation's `RunConfig`, which therefore must name its model by spec."""

    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--ray-workers must be at least 1, got {self.workers}.")

    def check(self, run: RunConfig) -> RunConfig:
        """The settings as workers get them (they pickle), or an `InputError` now."""
        if not isinstance(run.model, str | None) or run.models:
            raise InputError("executor ray needs the model as a spec string (it goes to workers).")
        return run.with_(cache=run.cache is not False)

    async def run(
        self,
        jobs: Sequence[RowJob],
        runner: RowRunner,
        on_result: OnResult,
        should_stop: ShouldStop,
    ) -> None:
        from treadle.eval.ray_executor import RayOptions, ray_map

        if not jobs:
            return
        settings = self.check(runner.run_config)
        remote = RemoteRowRunner(settings)
        options = RayOptions(
            address=self.address, per_worker=settings.concurrency or 4, workers=self.workers
        )
        stream = ray_map(remote, list(jobs), key=lambda j: (j.row.id, j.epoch), options=options)
        async with contextlib.aclosing(stream) as results:
            async for _, row in results:
                on_result(row)
                if should_stop():
                    break


def executor_of(
    name: str | Executor | None, address: str | None = None, workers: int | None = None
) -> Executor:
    """An executor from the CLI's words: "local" (the default) or "ray"."""
    if name is None or name == "local":
        if address is not None or workers is not None:
            raise InputError("--ray-address and --ray-workers are for --executor ray.")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, workers)
    if isinstance(name, str):
        raise InputError(f"--executor is local or ray, got {name!r}.")
    return name


__all__ = ["Executor", "LocalExecutor", "OnResult", "RayExecutor", "executor_of"]
