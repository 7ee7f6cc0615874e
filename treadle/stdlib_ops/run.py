"""`run CODE [with stdin TEXT, files {...}]`: run a code value or script in the sandbox.

The sandbox's defaults apply (no network, read-only root, limits); a step may tighten or loosen
them with options, and loosening the network is an explicit `with network true`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import Limits
from treadle.runtime.types import Code
from treadle.stdlib_ops.registry import OpArgs, Operator, OpOptions, constant, register, subject


def _as_code(value: object) -> object:
    return Code(value) if isinstance(value, str) and not isinstance(value, Code) else value


#: a `code` parameter that accepts any text (the scheduler passes plain strings)
CodeArg = Annotated[Code, BeforeValidator(_as_code)]


class RunArgs(OpArgs):
    code: CodeArg = subject("the Python code (or a `#!` script) to run")


class RunCodeOptions(OpOptions):
    stdin: str | None = Field(None, description="text fed to the program's standard input")
    files: dict[str, str] | None = Field(None, description="extra files for the work dir")
    language: Literal["python", "shell"] = Field("python", description="how to run the code")
    time_limit: float = Field(10.0, gt=0, le=3600, description="seconds before it is killed")
    memory_mb: int = Field(256, ge=16, le=65536, description="memory limit (memory+swap)")
    network: bool = Field(False, description="give the code a network (off by default)")


class RunOutput(BaseModel):
    ok: bool
    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    oom_killed: bool
    truncated: bool
    duration: float


async def run(ctx: OpContext, args: RunArgs, options: RunCodeOptions) -> RunOutput:
    sandbox = await ctx.sandbox()
    code = str(args.code)
    script = "main.py" if options.language == "python" else "main.sh"
    command = ["python3", script] if options.language == "python" else ["sh", script]
    files = {name: text.encode() for name, text in (options.files or {}).items()}
    files[script] = code.encode()
    limits = Limits(
        timeout_s=options.time_limit, memory_mb=options.memory_mb, network=options.network
    )
    if options.network:
        ctx.event("run.network_enabled")
    stdin = options.stdin.encode() if options.stdin is not None else None
    r = await sandbox.run(command, files=files, stdin=stdin, limits=limits)
    return RunOutput(
        ok=r.ok,
        stdout=r.stdout,
        stderr=r.stderr,
        exit_code=r.exit_code,
        timed_out=r.timed_out,
        oom_killed=r.oom_killed,
        truncated=r.stdout_truncated or r.stderr_truncated,
        duration=r.duration_s,
    )


register(
    Operator(
        name="run",
        summary="Run code in the sandbox (stdin and files optional); stdout, stderr, exit code.",
        args=RunArgs,
        options=RunCodeOptions,
        output=RunOutput,
        run=run,
        ablation=constant(
            {
                "ok": True,
                "stdout": "",
                "stderr": "",
                "exit_code": 0,
                "timed_out": False,
                "oom_killed": False,
                "truncated": False,
                "duration": 0.0,
            },
            "a clean run with no output",
        ),
        uses_sandbox=True,
    )
)
