"""Where LLM-written code runs: a hardened Docker container by default.

`open_sandbox()` is the one way in. The Docker sandbox is the default, with containers reused
after a verified reset (`isolation="reset"`) or single-use (`isolation="fresh"`); the process
sandbox, which does not isolate, exists only as an explicit `kind="process"` opt-in. Heavy modules
(the docker SDK) load only when a sandbox is opened, so the CLI starts fast.
"""

from __future__ import annotations

from typing import Literal

from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox

__all__ = ["ExecResult", "Limits", "Sandbox", "open_sandbox"]


async def open_sandbox(
    kind: Literal["docker", "process"] = "docker",
    limits: Limits | None = None,
    *,
    pool_size: int = 2,
    image: str | None = None,
    run_id: str | None = None,
    isolation: Literal["fresh", "reset"] | None = None,
    max_runs: int | None = None,
) -> Sandbox:
    """A started sandbox: leftovers of dead processes swept, the warm pool filling.

    `isolation`: "reset" (None: the default) reuses a container after a verified reset,
    "fresh" starts one per run; the process sandbox has neither. `max_runs`: runs before a
    reused container retires.

    Raises `SandboxError` (with how to fix it) when Docker or the image is missing; it never
    falls back to the process sandbox on its own.
    """
    if isolation not in (None, "fresh", "reset"):
        raise ValueError(f"unknown isolation {isolation!r}; use 'fresh' or 'reset'")
    if kind == "process":
        from treadle.runtime.sandbox.process import ProcessSandbox

        return ProcessSandbox(limits)
    if kind != "docker":
        raise ValueError(f"unknown sandbox kind {kind!r}; use 'docker' or 'process'")
    from treadle.runtime.sandbox.docker_sandbox import DEFAULT_ISOLATION, MAX_RUNS, DockerSandbox
    from treadle.runtime.sandbox.image import IMAGE

    sandbox = DockerSandbox(
        limits,
        image=image or IMAGE,
        pool_size=pool_size,
        run_id=run_id,
        isolation=isolation or DEFAULT_ISOLATION,
        max_runs=max_runs or MAX_RUNS,
    )
    return await sandbox.start()
