"""Verdicts the code under test cannot forge, and the host's own deadline and lost-agent paths.

Every attack here is a wrong solution that passes only if its attack works. Each first runs
against a deliberately naive harness (tests in a readable file and in the judge's memory, the
solution and the tests in one namespace, one uid, the verdict taken from the stdout the
solution shares) in the same Docker sandbox, where it must pass: that shows the attack is real.
Then it runs against treadle's harness, where it must fail. Every test runs in both isolation
modes.
"""

from __future__ import annotations

import asyncio
import random
import textwrap
from typing import Any

import pytest
from test_ops_sandbox import SandboxContext  # tests/sandbox is on sys.path (rootdir mode)

from treadle.runtime.sandbox import docker_sandbox as ds
from treadle.runtime.sandbox.base import Limits, Sandbox
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox
from treadle.runtime.sandbox.guest_code import MARKER
from treadle.stdlib_ops.program import ProgramArgs, ProgramOptions
from treadle.stdlib_ops.program import run as program_run
from treadle.stdlib_ops.test import TestReport, check_solution, report_from

pytestmark = pytest.mark.docker

#: what the tests expect: 15 digits no solution can compute from its input
SECRET = random.SystemRandom().randrange(10**14, 10**15)
TESTS = f"def check(candidate):\n    assert candidate(2) == {SECRET}\n"
TESTS_ABS = f"def check(candidate):\n    assert abs(candidate(2) - {SECRET}) < 1\n"
FAKE = MARKER + '{"results": [null], "printed": ""}'

#: the naive harness: reads the tests, forks, runs solution and tests in one namespace and
#: prints the verdict on the stdout the solution shares
NAIVE = f"""
import json, os
tests = open("tests.py").read()
entry = open("entry_point.txt").read().strip()
if os.fork() == 0:
    ns = {{"__name__": "__main__"}}
    try:
        exec(open("solution.py").read(), ns)
        exec(tests, ns)
        ns["check"](ns[entry])
        results = [None]
    except BaseException as exc:
        results = [repr(exc)]
    print("\\n" + {MARKER!r} + json.dumps({{"results": results, "printed": ""}}), flush=True)
    os._exit(0)
os.wait()
"""

#: finds `== SECRET` in the memory of process `pid` (readable regions of /proc/PID/mem)
SCAN = r"""
import re
def scan(pid):
    pattern = re.compile(rb"== (\d{15})\b")
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", 0)
    except OSError:
        return None
    with mem:
        for line in maps:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if "r" not in perms or hi - lo > 256 << 20 or line.endswith(("[vvar]", "[vsyscall]")):
                continue
            try:
                mem.seek(lo)
                found = pattern.search(mem.read(hi - lo))
            except (OSError, ValueError, OverflowError):
                continue
            if found:
                return int(found.group(1))
    return None
def others():
    import os
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
"""

FORGERIES: dict[str, tuple[str, str]] = {
    "a fake verdict on stdout, then os._exit(0)": (TESTS, f"""
        import os, sys
        sys.stdout.write("\\n" + {FAKE!r} + "\\n"); sys.stdout.flush()
        os._exit(0)
    """),
    "a fake verdict on fd 1 and 2 at call time, then os._exit(0)": (TESTS, f"""
        import os
        def square(x):
            for fd in (1, 2):
                os.write(fd, ("\\n" + {FAKE!r} + "\\n").encode())
            os._exit(0)
    """),
    "read the tests from the files it can reach": (TESTS, r"""
        import os, re
        def square(x):
            for d in (".", "/work", "/tmp", "/dev/shm"):
                for root, _dirs, files in os.walk(d):
                    for name in files:
                        try:
                            m = re.search(r"== (\d{15})\b", open(os.path.join(root, name)).read())
                        except (OSError, UnicodeDecodeError):
                            continue
                        if m:
                            return int(m.group(1))
            return 0
    """),
    "walk the stack to the judge's tests": (TESTS, r"""
        import re, sys
        def square(x):
            frame = sys._getframe()
            while frame is not None:
                for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                    m = re.search(r"== (\d{15})\b", value) if isinstance(value, str) else None
                    if m:
                        return int(m.group(1))
                frame = frame.f_back
            return 0
    """),
    "scan its own memory for the tests": (
        TESTS, SCAN + "import os\ndef square(x):\n    return scan(os.getpid()) or 0\n"
    ),
    "scan every other process's memory through /proc/PID/mem": (
        TESTS, SCAN + "def square(x):\n    return next(filter(None, map(scan, others())), 0)\n"
    ),
    "an int equal to everything": (TESTS, """
        class Yes(int):
            def __eq__(self, other): return True
            __hash__ = int.__hash__
        def square(x): return Yes(0)
    """),
    "an object equal to everything": (TESTS, """
        class Yes:
            def __eq__(self, other): return True
        def square(x): return Yes()
    """),
    "shadow the builtin the tests use": (TESTS_ABS, """
        def abs(x): return 0
        def square(x): return 0
    """),
    "patch the builtin the tests use through the builtins module": (TESTS_ABS, """
        import builtins
        builtins.abs = lambda x: 0
        def square(x): return 0
    """),
}  # fmt: skip


async def naive_check(sandbox: Sandbox, solution: str, tests: str, entry: str) -> TestReport:
    """The naive harness's verdict, read the way treadle reads its own."""
    files = {
        "naive.py": NAIVE.encode(),
        "solution.py": solution.encode(),
        "tests.py": tests.encode(),
        "entry_point.txt": entry.encode(),
    }
    result = await sandbox.run(["python3", "naive.py"], files=files, limits=Limits(timeout_s=5))
    return report_from(result)


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_test_verdicts_fail(sandbox: DockerSandbox, name: str) -> None:
    tests, attack = FORGERIES[name]
    solution = textwrap.dedent(attack)
    naive = await naive_check(sandbox, solution, tests, "square")
    assert naive.passed, ("the attack does not even work against a naive harness", name, naive)
    report = await check_solution(
        sandbox, solution, tests, entry_point="square", time_limit=5, per_test_limit=3
    )
    assert not report.passed, (name, report)
    # the sandbox keeps working afterwards
    good = await check_solution(sandbox, f"def square(x):\n    return {SECRET}\n", tests,
                                entry_point="square")  # fmt: skip
    assert good.passed and good.total == 1, good


#: a correct solution that attacks the judge: it must neither stop the verdict nor change it
DISRUPTIONS = {
    "SIGSTOP the judge": """
        import os, signal
        for p in os.listdir("/proc"):
            if p.isdigit() and int(p) != os.getpid():
                try:
                    os.kill(int(p), signal.SIGSTOP)
                except OSError:
                    pass
    """,
    "SIGKILL every process it sees": """
        import os, signal
        def _kill():
            for p in os.listdir("/proc"):
                if p.isdigit() and int(p) != os.getpid():
                    try:
                        os.kill(int(p), signal.SIGKILL)
                    except OSError:
                        pass
        _kill()
    """,
    "a storm of SIGINT, SIGALRM and SIGWINCH at every process while the tests run": """
        import os, signal, time
        if os.fork() == 0:
            end = time.time() + 3
            while time.time() < end:
                for p in os.listdir("/proc"):
                    if p.isdigit() and int(p) not in (os.getpid(), os.getppid()):
                        for sig in (signal.SIGINT, signal.SIGALRM, signal.SIGWINCH):
                            try:
                                os.kill(int(p), sig)
                            except OSError:
                                pass
            os._exit(0)
        time.sleep(0.2)
    """,
}


@pytest.mark.parametrize("name", list(DISRUPTIONS))
async def test_attacks_on_the_judge_leave_the_verdict_alone(
    sandbox: DockerSandbox, name: str
) -> None:
    """The judge and the solution share no uid: signals from the solution never reach it (on
    the old harness, one uid for both, each of these failed a correct solution)."""
    solution = textwrap.dedent(DISRUPTIONS[name]) + f"\ndef square(x):\n    return {SECRET}\n"
    report = await check_solution(
        sandbox, solution, TESTS, entry_point="square", time_limit=6, per_test_limit=4
    )
    assert report.passed and report.total == 1, (name, report)
    assert "cannot start" not in report.feedback


async def test_ptrace_and_process_memory_calls_are_refused(sandbox: DockerSandbox) -> None:
    """PTRACE_ATTACH, process_vm_readv and pidfd_getfd on every other process (the judge
    included) fail with EPERM: the agent's filter refuses them whatever the uids."""
    solution = textwrap.dedent(
        """
        import ctypes, os
        def square(x):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            errors = set()
            for p in os.listdir("/proc"):
                if not p.isdigit() or int(p) == os.getpid():
                    continue
                pid = int(p)
                for nr, args in ((101, (16, pid, 0, 0)), (310, (pid, 0, 0, 0, 0, 0)),
                                 (438, (pid, 0, 0))):
                    ctypes.set_errno(0)
                    if libc.syscall(nr, *args) == 0:
                        return f"syscall {nr} on {pid} worked"
                    errors.add(ctypes.get_errno())
            return sorted(errors)
        """
    )
    tests = "def check(candidate):\n    assert candidate(0) == [1]\n"  # EPERM only
    report = await check_solution(sandbox, solution, tests, entry_point="square")
    assert report.passed, report


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
