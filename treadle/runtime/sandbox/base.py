"""The sandbox interface the operators use; implementations live beside it."""

from __future__ import annotations

import abc

from pydantic import BaseModel, ConfigDict


class Limits(BaseModel):
    """Every limit is on by default; loosening one (e.g. `network=True`) is explicit."""

    model_config = ConfigDict(frozen=True)

    timeout_s: float = 10.0
    memory_mb: int = 256
    cpus: float = 1.0
    pids: int = 64
    workdir_mb: int = 64
    output_bytes: int = 1 << 20
    network: bool = False


class ExecResult(BaseModel):
    """What one sandbox run did: its output, exit status and the limits it hit."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False
    oom_killed: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


class Sandbox(abc.ABC):
    @abc.abstractmethod
    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run `command` in a fresh, isolated work dir holding `files`; never raises for what
        the code did (that is in the result), only `SandboxError` when the sandbox failed."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Stop background work (the warm pool) and remove what this sandbox started."""
