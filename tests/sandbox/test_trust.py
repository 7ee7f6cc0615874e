"""Issue 16's sandbox holes, each closed: a run finds nothing of an earlier run in its own
memory; the helpers the tests call come from the trusted prompt; asserts outside `check` count;
the judge never unmarshals the solution's bytes; the roots of the writable places keep no
attributes, ACLs or times; a run that used the network retires its container; containers do
not share uids; the agent's seccomp filter refuses io_uring and the other listed calls.
"""

from __future__ import annotations

import asyncio
import marshal
import random
import textwrap
from typing import Any

import pytest
from test_forgery import SCAN  # tests/sandbox is on sys.path (rootdir mode)
from test_reuse import run_py, same_container

from treadle.runtime.sandbox.docker_sandbox import DockerSandbox
from treadle.runtime.sandbox.guest_code import HARNESS_SOURCE
from treadle.stdlib_ops.test import check_solution

pytestmark = pytest.mark.docker


async def test_a_run_finds_no_earlier_runs_tests_in_its_own_memory(sandbox: DockerSandbox) -> None:
    """Run 1's hidden expected value is nowhere in run 2's memory (on the old agent, whose
    forks carried its freed heap, run 2 found it and passed)."""
    secret = random.SystemRandom().randrange(10**14, 10**15)
    tests = f"def check(candidate):\n    assert candidate(1) == {secret}\n"
    first = await check_solution(sandbox, "def f(x):\n    return 0\n", tests, entry_point="f")
    assert not first.passed
    thief = SCAN + "\nimport os\ndef f(x):\n    return scan(os.getpid()) or 0\n"
    second = await check_solution(sandbox, thief, tests, entry_point="f")
    assert not second.passed and "got 0" in second.feedback, second
    if sandbox.isolation == "reset":
        assert not sandbox.retired, sandbox.retired  # the same container served both


HELPER_PROMPT = '''import math


def poly(xs: list, x: float):
    """Evaluates polynomial with coefficients xs at point x."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def find_zero(xs: list):
    """Returns a zero of the polynomial xs."""
'''
HELPER_TESTS = """
def check(candidate):
    for coeffs in ([1, 2], [-6, 11, -6, 1], [1, 0, 0, 3]):
        assert math.fabs(poly(coeffs, candidate(coeffs))) < 1e-4
"""


async def test_helpers_the_tests_call_come_from_the_prompt(sandbox: DockerSandbox) -> None:
    """HumanEval/32's shape: a completion that redefines `poly` to return 0 passes any answer
    when the tests take `poly` from the solution; with the prompt as the trusted preamble it
    fails, and an honest completion still passes."""
    cheat = HELPER_PROMPT + "    return 0.0\n\n\ndef poly(xs, x):\n    return 0\n"
    fooled = await check_solution(sandbox, cheat, HELPER_TESTS, entry_point="find_zero")
    assert fooled.passed  # what the tests allow without the preamble: the attack is real
    report = await check_solution(
        sandbox, cheat, HELPER_TESTS, entry_point="find_zero", preamble=HELPER_PROMPT
    )
    assert not report.passed and report.total == 1, report  # the loop is one test
    honest = HELPER_PROMPT + textwrap.indent(
        textwrap.dedent(
            """
            lo, hi = -100.0, 100.0
            while poly(xs, lo) * poly(xs, hi) > 0:
                lo, hi = lo * 2, hi * 2
            for _ in range(200):
                mid = (lo + hi) / 2
                if poly(xs, lo) * poly(xs, mid) <= 0:
                    hi = mid
                else:
                    lo = mid
            return lo
            """
        ),
        "    ",
    )
    good = await check_solution(
        sandbox, honest, HELPER_TESTS, entry_point="find_zero", preamble=HELPER_PROMPT
    )
    assert good.passed, good


async def test_asserts_outside_check_are_tests(sandbox: DockerSandbox) -> None:
    tests = "assert 1 + 1 == 3\n\ndef check(candidate):\n    assert candidate(2) == 4\n"
    report = await check_solution(sandbox, "def f(x):\n    return x * 2\n", tests, entry_point="f")
    assert not report.passed and report.total == 2, report
    assert "1 + 1 == 3" in report.feedback


def test_the_judge_reads_the_solutions_bytes_with_a_strict_decoder() -> None:
    """Replies are decoded by the harness's own reader: plain data round-trips; code objects,
    back-references and other marshal types are refused (marshal.loads would build them)."""
    ns: dict[str, Any] = {"__name__": "harness"}
    exec(compile(HARNESS_SOURCE, "harness.py", "exec"), ns)
    decode, garbled = ns["_decode"], ns["_Garbled"]
    for value in (
        None,
        True,
        -(2**80),
        1.5,
        2j,
        b"b",
        "s\ud800",
        (1, [2, {3: "x"}]),
        {4},
        frozenset(),
    ):
        assert decode(marshal.dumps(value, 2)) == value
    code = marshal.dumps(compile("1", "x", "eval"))
    with_refs = marshal.dumps(("abc", "abc") * 2, 4)  # version 4 writes back-references
    for bad in (code, with_refs, b"", b"N!", b"(\xff\xff\xff\x7f"):
        with pytest.raises(garbled):
            decode(bad)
    judge_side = HARNESS_SOURCE.split("def _reply(self):")[1].split("def request(")[0]
    assert "marshal.loads" not in judge_side and "_decode(" in judge_side


ROOT_ATTACK = """
import os
acl = bytes.fromhex("02000000" "01000000ffffffff" "04000000ffffffff" "20000000ffffffff")
for d in ("/work", "/tmp", "/dev/shm"):
    os.setxattr(d, "user.secret", b"s3cr3t-" + d.encode())
    os.utime(d, (123456789, 123456789))
os.setxattr("/tmp", "system.posix_acl_default", acl)  # new files in /tmp: mode 000
print("planted", flush=True)
"""
ROOT_PROBE = """
import os, tempfile
for d in ("/work", "/tmp", "/dev/shm"):
    st = os.stat(d)
    print("ROOT", d, sorted(os.listxattr(d)), int(st.st_mtime) == 123456789)
path = tempfile.mkdtemp()
with open(os.path.join(path, "x"), "w") as f:
    f.write("ok")
print("TMP ok")
"""


async def test_roots_keep_no_attributes_acls_or_times(sandbox: DockerSandbox) -> None:
    """user.* xattrs, a default ACL and timestamps on /work, /tmp and /dev/shm are gone for the
    next run (the old reset kept them: the ACL made the next run's mkdtemp + write fail)."""
    r1 = await run_py(sandbox, ROOT_ATTACK)
    assert "planted" in r1.stdout, r1
    r2 = await run_py(sandbox, ROOT_PROBE)
    assert r2.ok and "TMP ok" in r2.stdout, r2
    for d in ("/work", "/tmp", "/dev/shm"):
        assert f"ROOT {d} [] False" in r2.stdout, r2.stdout
    same_container(sandbox, r1, r2)


async def test_a_run_that_used_the_network_retires_its_container(sandbox: DockerSandbox) -> None:
    """TIME_WAIT sockets and loopback counters are what a run leaves in the network namespace
    (readable by the next run): such a container is never reused."""
    talk = """
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
    c = socket.create_connection(s.getsockname()); a, _ = s.accept()
    c.close(); a.close(); s.close()
    print("talked", flush=True)
    """
    r1 = await run_py(sandbox, talk)
    assert "talked" in r1.stdout, r1
    r2 = await run_py(sandbox, "print('TCP', open('/proc/net/tcp').read().count('\\n'))")
    assert "TCP 1" in r2.stdout, r2.stdout  # the header line only
    if sandbox.isolation == "reset":
        assert any("network" in why for _cid, why in sandbox.retired), sandbox.retired


async def test_containers_do_not_share_uids(docker_api: Any) -> None:
    """Two containers' runs get different uids (the old agent gave every container's first run
    uid 200001), so a run holding every inotify instance of its uid starves no other
    container's run."""
    async with DockerSandbox(pool_size=0, api=docker_api, isolation="fresh") as sb:
        hog = """
        import ctypes, os, time
        libc = ctypes.CDLL(None, use_errno=True)
        held = 0
        while libc.inotify_init() >= 0:
            held += 1
        print("HELD", held, os.getuid(), flush=True)
        time.sleep(4)
        """
        probe = """
        import ctypes, os, time
        time.sleep(1.5)
        libc = ctypes.CDLL(None, use_errno=True)
        print("PROBE", libc.inotify_init() >= 0, os.getuid(), flush=True)
        """
        r1, r2 = await asyncio.gather(run_py(sb, hog), run_py(sb, probe))
        assert "HELD" in r1.stdout and "PROBE True" in r2.stdout, (r1, r2)
        uid1 = int(r1.stdout.split("HELD")[1].split()[1])
        uid2 = int(r2.stdout.split("PROBE")[1].split()[1])
        assert uid1 != uid2 and min(uid1, uid2) >= 1 << 24


async def test_the_agents_seccomp_filter_refuses_io_uring_and_the_rest(
    sandbox: DockerSandbox,
) -> None:
    """Not only that a filter is loaded: two are stacked (Docker's and the agent's), and each
    call the agent's refuses fails with EPERM in a plain run and in the judge's code."""
    probe = """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # io_uring_setup/enter/register, userfaultfd, perf_event_open, bpf, keyctl, add_key, kcmp,
    # unshare, setns, process_vm_readv
    calls = {425: (1, 0), 426: (0, 0, 0, 0, 0, 0), 427: (0, 0, 0, 0), 323: (0,),
             298: (0, 0, -1, -1, 0), 321: (0, 0, 0), 250: (0, 0), 248: (0, 0, 0, 0, 0),
             312: (1, 1, 0, 0, 0), 272: (0,), 308: (-1, 0), 310: (1, 0, 0, 0, 0, 0)}
    errors = {}
    for nr, args in calls.items():
        ctypes.set_errno(0)
        rc = libc.syscall(nr, *args)
        errors[nr] = ctypes.get_errno() if rc < 0 else "allowed"
    status = open("/proc/self/status").read()
    filters = next(l.split()[1] for l in status.splitlines() if l.startswith("Seccomp_filters"))
    print("ERRORS", sorted(set(errors.values()), key=str), "FILTERS", filters)
    """
    r = await run_py(sandbox, probe)
    assert "ERRORS [1] FILTERS 2" in r.stdout, r.stdout + r.stderr
