"""`program for PROBLEM [with attempts N, entry "solve"]`: the model writes a program that
computes the answer, the sandbox runs it, errors go back to the model (AFlow's Programmer).

The record's `ok` says whether a run returned a value (the harness's judge process reports it,
never the program's own output); `value` is that value (a number when it
reads as one), so a workflow can cross-check `checked.value` against a vote.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import Limits
from treadle.runtime.sandbox.guest_code import HARNESS_COMMAND, HARNESS_SOURCE
from treadle.runtime.types import Code
from treadle.stdlib_ops import _text
from treadle.stdlib_ops._model_options import ModelOptions, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, constant, prep, register
from treadle.stdlib_ops.test import harness_result


class ProgramArgs(OpArgs):
    problem: str = prep("for", "the problem the program must compute the answer of")


class ProgramOptions(ModelOptions):
    attempts: int = Field(3, ge=1, le=10, description="model tries before giving up")
    entry: str = Field("solve", description="the function the program defines and returns from")
    time_limit: float = Field(10.0, gt=0, le=600, description="seconds for one run")
    max_tokens: int = Field(1024, ge=1, le=32768, description="the most tokens the reply may have")


class ProgramResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    ok: bool
    value: float | str | None
    code: Code
    output: str
    error: str


def _as_value(value: object) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return float(value)
    text = value if isinstance(value, str) else json.dumps(value)
    number = _text.parse_number(text.strip())
    return float(number) if number is not None else text


async def run(ctx: OpContext, args: ProgramArgs, options: ProgramOptions) -> ProgramResult:
    sandbox = await ctx.sandbox()
    feedback = ""
    code, output, error = "", "", ""
    for attempt in range(1, options.attempts + 1):
        content = prompt("program").format(
            entry=options.entry, problem=args.problem, feedback=feedback
        )
        code = _text.code_in(await ask(ctx, options, content))
        result = await sandbox.run(
            [*HARNESS_COMMAND, "program", str(options.time_limit), options.entry],
            files={"harness.py": HARNESS_SOURCE.encode(), "solution.py": code.encode()},
            limits=Limits(timeout_s=options.time_limit + 1),
        )
        data = harness_result(result)
        output = str((data or {}).get("printed") or "")
        if data is None:
            error = "timed out" if result.timed_out else (
                "out of memory" if result.oom_killed else result.stderr.strip()[-1500:]
            ) or f"exit code {result.exit_code}"  # fmt: skip
        elif "error" in data:
            error = str(data["error"])
        else:
            ctx.event("program.ok", attempt=attempt)
            return ProgramResult(
                ok=True,
                value=_as_value(data.get("value")),
                code=Code(code),
                output=output,
                error="",
            )
        ctx.event("program.error", attempt=attempt, error=error[:300])
        feedback = (
            f"\nYour previous program:\n```python\n{code}```\nfailed with:\n{error}\n"
            "Fix the error.\n"
        )
    return ProgramResult(ok=False, value=None, code=Code(code), output=output, error=error)


register(
    Operator(
        name="program",
        summary="The model writes solve(); it runs in the sandbox; errors go back, N attempts.",
        args=ProgramArgs,
        options=ProgramOptions,
        output=ProgramResult,
        run=run,
        ablation=constant(
            {"ok": False, "value": None, "code": "", "output": "", "error": "removed"},
            "a program that did not run",
        ),
        uses_model=True,
        uses_sandbox=True,
    )
)
