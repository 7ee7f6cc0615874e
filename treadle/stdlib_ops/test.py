"""`test SOLUTION against TESTS [with entry_point NAME]`: run a solution against tests in the
sandbox and report per test (AFlow's Test operator, without the model call).

Tests are HumanEval-style (`def check(candidate): assert ...`, with `entry_point` naming the
candidate) or plain top-level asserts. Each assert is reported on its own, with the value the
solution produced, so `revise ... using report.feedback` knows what to fix.

The verdict comes from a judge process the solution's process cannot write to, read or
signal; the solution never holds the tests, only plain data crosses between them, and the
helpers the tests call come from the trusted `preamble` (the prompt) when one is given (see
`treadle/runtime/sandbox/guest/harness.py` and the threat model in docs/sandbox.md).
`check_solution` is the function-level entry point (the `pass` scorer of evaluation calls it).
"""

from __future__ import annotations

import json
import marshal

from pydantic import BaseModel, Field

from treadle.errors import SandboxError
from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox
from treadle.runtime.sandbox.guest_code import HARNESS_COMMAND, HARNESS_SOURCE, MARKER
from treadle.stdlib_ops.registry import (
    OpArgs,
    Operator,
    OpOptions,
    constant,
    prep,
    register,
    subject,
)
from treadle.stdlib_ops.run import CodeArg


class TestArgs(OpArgs):
    solution: CodeArg = subject("the solution code")
    tests: str = prep("against", "HumanEval-style `check(candidate)` tests, or plain asserts")


class TestOptions(OpOptions):
    entry_point: str | None = Field(None, description="the function `check` is called with")
    preamble: str | None = Field(
        None,
        description="trusted code the tests may call (the prompt's helpers): the names it "
        "defines come from it, never from the solution",
    )
    time_limit: float = Field(10.0, gt=0, le=600, description="seconds for the whole test run")
    per_test_limit: float = Field(3.0, gt=0, le=600, description="seconds for one assertion")
    memory_mb: int = Field(256, ge=16, le=16384, description="memory limit of the run")


class TestReport(BaseModel):
    passed: bool
    failures: list[str]
    feedback: str
    total: int = 0
    timed_out: bool = False


def harness_result(result: ExecResult) -> dict[str, object] | None:
    """The harness's JSON reply, or None when it never came. Only the judge process writes
    the harness's stdout (the solution's output goes to the judge, which caps it into
    `printed`), so the reply is its one marked line, at the end."""
    _, sep, tail = result.stdout.rpartition(MARKER)
    if not sep or result.timed_out or result.exit_code != 0:
        return None
    try:
        data = _valid_text(json.loads(tail.splitlines()[0]))
    except (ValueError, IndexError):
        return None
    return data if isinstance(data, dict) else None


def _valid_text(value: object) -> object:
    """`value` with every lone surrogate written out as `\\udXXX`: a solution's error
    message or its object's text crosses as a Python string, and a string that does not encode
    as UTF-8 breaks whatever records the verdict (orjson refuses it)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_valid_text(v) for v in value]
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    return value


def _crash_note(result: ExecResult) -> str:
    if result.timed_out:
        return "the run timed out (an infinite loop, or far too slow)"
    if result.oom_killed:
        return "the run ran out of memory"
    tail = "\n".join(result.stderr.strip().splitlines()[-8:])
    return f"the run crashed with exit code {result.exit_code}" + (f":\n{tail}" if tail else "")


def report_from(result: ExecResult) -> TestReport:
    data = harness_result(result)
    if data is None:
        note = _crash_note(result)
        if not result.oom_killed:
            # the judge's reply never came (the host's deadline passed, the judge died): that
            # is no verdict on the code, so it is an error, never a failed test (a 0)
            raise SandboxError(f"the sandbox gave no verdict: {note}")
        return TestReport(
            passed=False, failures=[note], feedback=f"Tests did not finish: {note}.",
            timed_out=result.timed_out,
        )  # fmt: skip
    if data.get("load_error"):
        note = f"the solution failed before any test ran: {data['load_error']}"
        return TestReport(passed=False, failures=[note], feedback=note[0].upper() + note[1:])
    results = list(data.get("results") or [])  # type: ignore[call-overload]
    failures = [str(r) for r in results if r is not None]
    total = len(results)
    if not total:
        return TestReport(passed=False, failures=["no tests ran"], feedback="No tests ran.")
    if not failures:
        return TestReport(
            passed=True, failures=[], feedback=f"All {total} tests passed.", total=total
        )
    lines = [f"{len(failures)} of {total} tests failed:"]
    lines += [f"- {f}" for f in failures[:10]]
    if len(failures) > 10:
        lines.append(f"- ... and {len(failures) - 10} more")
    printed = str(data.get("printed") or "").strip()
    if printed:
        lines.append("The solution printed:\n" + printed[:500])
    return TestReport(passed=False, failures=failures, feedback="\n".join(lines), total=total)


async def check_solution(
    sandbox: Sandbox,
    solution: str,
    tests: str,
    *,
    entry_point: str | None = None,
    preamble: str | None = None,
    time_limit: float = 10.0,
    per_test_limit: float = 3.0,
    memory_mb: int = 256,
) -> TestReport:
    """Run `solution` against `tests` in `sandbox` and give the verdict (one sandbox run). The
    tests, the entry point and the trusted `preamble` reach the judge on its stdin, never as a
    file of the work dir the solution runs in."""
    files = {"harness.py": HARNESS_SOURCE.encode(), "solution.py": solution.encode()}
    job = {
        "solution": solution,
        "tests": tests,
        "entry_point": entry_point or "",
        "preamble": preamble or "",
    }
    limits = Limits(timeout_s=time_limit, memory_mb=memory_mb)
    result = await sandbox.run(
        [*HARNESS_COMMAND, "test", str(per_test_limit)],
        files=files,
        stdin=marshal.dumps(job, 2),  # read by the judge, whatever its Python's version
        limits=limits,
    )
    return report_from(result)


async def run(ctx: OpContext, args: TestArgs, options: TestOptions) -> TestReport:
    report = await check_solution(
        await ctx.sandbox(),
        str(args.solution),
        args.tests,
        entry_point=options.entry_point,
        preamble=options.preamble,
        time_limit=options.time_limit,
        per_test_limit=options.per_test_limit,
        memory_mb=options.memory_mb,
    )
    ctx.event("test.result", passed=report.passed, total=report.total, failed=len(report.failures))
    return report


register(
    Operator(
        name="test",
        summary="Run a solution against tests in the sandbox; passed, per-test failures, feedback.",
        args=TestArgs,
        options=TestOptions,
        output=TestReport,
        run=run,
        ablation=constant(
            {"passed": True, "failures": [], "feedback": "", "total": 0, "timed_out": False},
            "a passing report",
        ),
        uses_sandbox=True,
    )
)
