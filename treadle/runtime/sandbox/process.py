"""The process sandbox: for machines without Docker, opted into explicitly. IT DOES NOT ISOLATE.

The code runs as a child process of the host with the same user, filesystem and network. What
is still enforced: a temporary work dir, a scrubbed environment, rlimits (address space, CPU
time, file size, core dumps, open files), the wall-clock timeout (SIGTERM to the process group,
then SIGKILL) and the output cap. Use it for trusted code or throwaway machines only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox
from treadle.runtime.sandbox.docker_sandbox import KILL_AFTER, check_files

WARNING = (
    "WARNING: treadle is using the PROCESS sandbox, which does NOT isolate code: it runs as "
    "you, with your files and your network. Only rlimits and timeouts are enforced. Use the "
    "Docker sandbox for LLM-written code (`treadle sandbox doctor`)."
)


class ProcessSandbox(Sandbox):
    def __init__(self, limits: Limits | None = None, *, warn: bool = True) -> None:
        self.limits = limits or Limits()
        if warn:
            print(WARNING, file=sys.stderr, flush=True)

    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        limits = limits or self.limits
        files = files or {}
        check_files(files)
        with tempfile.TemporaryDirectory(prefix="treadle-proc-") as work:
            for name, data in files.items():
                path = Path(work, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return await self._run(command, work, stdin or b"", limits)

    async def _run(self, command: list[str], work: str, data: bytes, limits: Limits) -> ExecResult:
        mem = limits.memory_mb * 1024 * 1024
        cpu = max(1, int(limits.timeout_s) + 1)
        fsize = limits.workdir_mb * 1024 * 1024

        def preexec() -> None:
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

        env = {
            "PATH": os.defpath + ":/usr/local/bin",
            "HOME": work,
            "TMPDIR": work,
            "PYTHONUTF8": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [sys.executable if c in ("python3", "python") and i == 0 else c
               for i, c in enumerate(command)]  # fmt: skip
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=work,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=preexec,
        )
        cap = limits.output_bytes

        async def drain(stream: asyncio.StreamReader) -> tuple[bytes, int]:
            kept = bytearray()
            total = 0
            while chunk := await stream.read(1 << 16):
                total += len(chunk)
                if len(kept) < cap:
                    kept += chunk[: cap - len(kept)]
            return bytes(kept), total

        async def feed() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(data)
                await proc.stdin.drain()
            proc.stdin.close()

        assert proc.stdout is not None and proc.stderr is not None
        tasks = asyncio.gather(drain(proc.stdout), drain(proc.stderr), feed())
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), limits.timeout_s)
        except TimeoutError:
            timed_out = True
            _killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), KILL_AFTER)
        _killpg(proc.pid, signal.SIGKILL)  # whatever the code left behind in its group
        await proc.wait()
        try:
            (out, out_total), (err, err_total), _ = await asyncio.wait_for(tasks, 2.0)
        except TimeoutError:
            (out, out_total), (err, err_total) = (b"", 0), (b"", 0)
        code = proc.returncode if proc.returncode is not None else -9
        if code < 0:
            code = 128 - code
        return ExecResult(
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            exit_code=124 if timed_out and code == 128 + signal.SIGTERM else code,
            timed_out=timed_out,
            stdout_truncated=out_total > len(out),
            stderr_truncated=err_total > len(err),
            duration_s=time.monotonic() - start,
        )


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
