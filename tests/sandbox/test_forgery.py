"""Verdicts the code under test cannot forge, and the host's own deadline and lost-agent paths.

A solution that fakes the harness's result line, writes into the judge's descriptors, returns
an object equal to everything, stops or kills the judge or the agent must end as a failed or
timed-out run, never a pass. Every test runs in both isolation modes.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest
from test_ops_sandbox import SandboxContext  # tests/sandbox is on sys.path (rootdir mode)

from treadle.runtime.sandbox import docker_sandbox as ds
from treadle.runtime.sandbox.base import Limits
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox
from treadle.runtime.sandbox.guest_code import MARKER
from treadle.stdlib_ops.program import ProgramArgs, ProgramOptions
from treadle.stdlib_ops.program import run as program_run
from treadle.stdlib_ops.test import check_solution

pytestmark = pytest.mark.docker

TESTS = (
    "def check(candidate):\n"
    "    assert candidate(2) == 4\n"
    "    assert abs(candidate(3) - 9) < 1e-9 and isinstance(candidate(3), int)\n"
    "    assert candidate(4)\n"
)
FAKE = MARKER + '{"results": [null, null], "printed": ""}'

FORGERIES = {
    "marker then os._exit(0)": f"""
        import os, sys
        sys.stdout.write("\\n" + {FAKE!r} + "\\n"); sys.stdout.flush()
        os._exit(0)
        def square(x): return 0
    """,
    "marker on fd 1 and 2 at call time": f"""
        import os
        def square(x):
            for fd in (1, 2):
                os.write(fd, ("\\n" + {FAKE!r} + "\\n").encode())
            os._exit(0)
    """,
    "write into the judge's stdout through /proc": f"""
        import os
        def square(x):
            for fd in os.listdir(f"/proc/{{os.getppid()}}/fd"):
                try:
                    with open(f"/proc/{{os.getppid()}}/fd/{{fd}}", "w") as f:
                        f.write("\\n" + {FAKE!r} + "\\n")
                except OSError:
                    pass
            return 0
    """,
    "an int equal to everything": """
        class Yes(int):
            def __eq__(self, other): return True
            __hash__ = int.__hash__
        def square(x): return Yes(0)
    """,
    "an object equal to everything": """
        class Yes:
            def __eq__(self, other): return True
        def square(x): return Yes()
    """,
    "patch the judge's assert through the builtins": """
        import builtins
        builtins.AssertionError = type("Nothing", (Exception,), {})
        def square(x): return 0
    """,
    "shadow the builtins the tests use": """
        def abs(x): return 0
        def isinstance(*a): return True
        def square(x): return 0.5
    """,
    "an object that is truthy": """
        def square(x): return iter([x * x])
    """,
    "SIGSTOP the judge": """
        import os, signal
        os.kill(os.getppid(), signal.SIGSTOP)
        def square(x): return 0
    """,
    "SIGKILL the judge": """
        import os, signal
        def square(x):
            os.kill(os.getppid(), signal.SIGKILL)
            return x * x
    """,
    "SIGSTOP and SIGKILL every process it sees (the agent and init too)": """
        import os, signal
        def square(x):
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for p in os.listdir("/proc"):
                    if p.isdigit() and int(p) != os.getpid():
                        try:
                            os.kill(int(p), sig)
                        except OSError:
                            pass
            return x * x
    """,
    "ptrace the judge": """
        import ctypes, os
        def square(x):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.ptrace(16, os.getppid(), None, None) == 0:  # PTRACE_ATTACH
                os._exit(0)
            return 0
    """,
}


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_test_verdicts_fail(sandbox: DockerSandbox, name: str) -> None:
    solution = textwrap.dedent(FORGERIES[name])
    report = await check_solution(
        sandbox, solution, TESTS, entry_point="square", time_limit=2, per_test_limit=1
    )
    assert not report.passed, (name, report)
    # the sandbox keeps working afterwards
    good = await check_solution(
        sandbox, "def square(x):\n    return x * x\n", TESTS, entry_point="square"
    )
    assert good.passed and good.total == 3, good


async def test_forged_program_value_is_not_taken(sandbox: DockerSandbox) -> None:
    fake = MARKER + '{"value": 42, "printed": ""}'
    answer = textwrap.dedent(
        f"""
        ```python
        import os, sys
        def solve():
            sys.stdout.write("\\n" + {fake!r} + "\\n"); sys.stdout.flush()
            os.write(1, ("\\n" + {fake!r} + "\\n").encode())
            os._exit(0)
        ```
        """
    )
    ctx = SandboxContext(sandbox, [answer])
    res = await program_run(
        ctx, ProgramArgs(problem="6 * 7?"), ProgramOptions(attempts=1, time_limit=2)
    )
    assert not res.ok and res.value is None, res


async def _agent_pids(api: Any, cid: str, signal: int) -> None:
    """Signal the agent from outside (docker exec as root in its container)."""
    code = (
        "import os\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        cmd = open(f'/proc/{p}/cmdline', 'rb').read()\n"
        "        root = os.stat(f'/proc/{p}').st_uid == 0 and p != '1'\n"
        "        if root and int(p) != os.getpid() and b'\\0-c\\0' in cmd:\n"
        f"            os.kill(int(p), {signal})\n"
    )
    exe = await asyncio.to_thread(api.exec_create, cid, ["python3", "-c", code], user="0:0")
    await asyncio.to_thread(api.exec_start, exe["Id"])


async def _serving(sb: DockerSandbox, docker_api: Any) -> tuple[asyncio.Future[Any], str]:
    """Start a long run and find the container serving it."""
    before = {c["Id"] for c in docker_api.containers(filters={"label": f"treadle.run={sb.run_id}"})}
    pooled = {w.cid for w in list(sb._pool._queue)}  # type: ignore[attr-defined]
    task = asyncio.ensure_future(
        sb.run(["python3", "-c", "import time; time.sleep(30)"], limits=Limits(timeout_s=2))
    )
    await asyncio.sleep(0.5)
    idle = {w.cid for w in list(sb._pool._queue)}  # type: ignore[attr-defined]
    busy = (pooled | before) - idle
    assert len(busy) == 1, (busy, pooled, idle)
    return task, busy.pop()


async def test_stopped_agent_hits_the_host_deadline(
    sandbox: DockerSandbox, docker_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ds, "HOST_GRACE", 0.5)
    await asyncio.sleep(1.0)  # the warm container exists
    task, cid = await _serving(sandbox, docker_api)
    await _agent_pids(docker_api, cid, 19)  # SIGSTOP
    r = await task
    assert r.timed_out and not r.ok and "no reply before the deadline" in r.stderr
    await sandbox.aclose()
    assert not docker_api.containers(all=True, filters={"id": cid})


async def test_killed_agent_is_a_failed_run(sandbox: DockerSandbox, docker_api: Any) -> None:
    await asyncio.sleep(1.0)
    task, cid = await _serving(sandbox, docker_api)
    await _agent_pids(docker_api, cid, 9)  # SIGKILL
    r = await task
    assert not r.ok and "ended before replying" in r.stderr, r
    await sandbox.aclose()
    assert not docker_api.containers(all=True, filters={"id": cid})
