"""Runs that share a container (isolation="reset") must not reach each other.

Each attack runs, then a probe runs in the same container (checked through the container id in
/proc/self/cgroup) and must find nothing of it: no process, no file, no IPC object, no socket,
no environment. Every test also runs with isolation="fresh", where the probe gets a container
of its own.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from typing import Any

import pytest

from treadle.runtime.sandbox.base import ExecResult, Limits
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox

pytestmark = pytest.mark.docker

#: prints the container's id and the run's uid, first thing
WHO = """
import os as _os
_cg = open("/proc/self/cgroup").read()
print("WHO", _cg.split("/docker/")[-1].split()[0][:12] if "/docker/" in _cg else _cg[:40],
      _os.getuid(), flush=True)
"""

#: the processes a run can see that are neither init, the agent (root) nor its own
FOREIGN = """
def foreign():
    me = _os.getuid()
    found = []
    for p in _os.listdir("/proc"):
        if not p.isdigit() or p == "1":
            continue
        try:
            with open(f"/proc/{p}/status") as f:
                uid = int(next(l for l in f if l.startswith("Uid:")).split()[1])
            comm = open(f"/proc/{p}/comm").read().strip()
        except (OSError, StopIteration):
            continue
        if uid not in (0, me):
            found.append((p, uid, comm))
    return found
"""


async def run_py(sb: DockerSandbox, code: str, **kw: Any) -> ExecResult:
    src = WHO + textwrap.dedent(code)
    return await sb.run(["python3", "main.py"], files={"main.py": src.encode()}, **kw)


def who(r: ExecResult) -> tuple[str, int]:
    line = next(x for x in r.stdout.splitlines() if x.startswith("WHO "))
    _, cid, uid = line.split()
    return cid, int(uid)


def same_container(sb: DockerSandbox, first: ExecResult, then: ExecResult) -> None:
    """In reset mode the probe really ran where the attack did, as another uid."""
    (c1, u1), (c2, u2) = who(first), who(then)
    if sb.isolation == "reset":
        assert c1 == c2, "the probe did not reuse the attacked container"
        assert u1 != u2, "a uid was reused within a container"
    else:
        assert c1 != c2


async def test_each_run_gets_a_fresh_uid_in_a_reused_container(sandbox: DockerSandbox) -> None:
    runs = [await run_py(sandbox, "pass") for _ in range(3)]
    ids = [who(r) for r in runs]
    if sandbox.isolation == "reset":
        assert len({cid for cid, _ in ids}) == 1 and len({uid for _, uid in ids}) == 3
    else:
        assert len({cid for cid, _ in ids}) == 3


async def test_daemon_does_not_survive_into_the_next_run(sandbox: DockerSandbox) -> None:
    attack = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open("/proc/self/comm", "w") as f:
                f.write("kworker/0:1")
            for fd in range(3):
                os.close(fd)
            end = time.time() + 60
            while time.time() < end:   # steal what the next run brings
                for d in ("/work", "/tmp"):
                    try:
                        for name in os.listdir(d):
                            data = open(os.path.join(d, name), "rb").read()
                            open(f"/dev/shm/stolen-{name}", "wb").write(data)
                    except OSError:
                        pass
                time.sleep(0.005)
            os._exit(0)
        os._exit(0)
    time.sleep(0.3)
    print("daemon started")
    """
    r1 = await run_py(sandbox, attack)
    assert "daemon started" in r1.stdout, r1
    probe = FOREIGN + textwrap.dedent(
        """
        import sys, time
        secret = sys.stdin.read()
        time.sleep(0.3)
        print("FOREIGN", foreign())
        print("SHM", sorted(_os.listdir("/dev/shm")))
        """
    )
    r2 = await sandbox.run(
        ["python3", "main.py"],
        files={"main.py": (WHO + probe).encode(), "secret.txt": b"s3cr3t"},
        stdin=b"next run's stdin",
    )
    assert "FOREIGN []" in r2.stdout and "SHM []" in r2.stdout, r2
    same_container(sandbox, r1, r2)


async def test_files_planted_in_every_writable_place_are_gone(sandbox: DockerSandbox) -> None:
    token = uuid.uuid4().hex[:8]
    attack = f"""
    import ctypes, os, json
    planted = []
    for root, dirs, files in os.walk("/"):
        if root.startswith(("/proc", "/sys")):
            dirs[:] = []
            continue
        path = os.path.join(root, "planted-{token}")
        try:
            with open(path, "w") as f:
                f.write("x")
            planted.append(path)
        except OSError:
            pass
    os.makedirs("/work/deep/er", exist_ok=True)
    open("/work/deep/er/f", "w").write("x")
    os.symlink("/etc/passwd", "/tmp/link-{token}")
    os.mkfifo("/tmp/fifo-{token}")
    os.mkdir("/tmp/locked-{token}")
    open("/tmp/locked-{token}/f", "w").write("x")
    os.chmod("/tmp/locked-{token}", 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mq_open.restype = ctypes.c_int
    mq = libc.mq_open(b"/mq-{token}", os.O_CREAT | os.O_RDWR, 0o600, None)
    print("MQ", mq, os.listdir("/dev/mqueue"))
    print("PLANTED", json.dumps(planted))
    """
    r1 = await run_py(sandbox, attack)
    planted = json.loads(r1.stdout.split("PLANTED ", 1)[1])
    assert "/work/planted-" + token in planted and "/tmp/planted-" + token in planted, r1
    assert f"mq-{token}" in r1.stdout
    probe = f"""
    import os
    left = [p for p in {planted!r} if os.path.lexists(p)]
    for d in ("/work", "/tmp", "/dev/shm", "/dev/mqueue"):
        left += [os.path.join(d, n) for n in os.listdir(d) if n != "main.py"]
    print("LEFT", left)
    """
    r2 = await run_py(sandbox, probe)
    assert "LEFT []" in r2.stdout, r2
    same_container(sandbox, r1, r2)


async def test_sysv_ipc_objects_do_not_survive(sandbox: DockerSandbox) -> None:
    attack = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shm = libc.shmget(0x7EAD, 4096, 0o1000 | 0o666)
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, b"secret from run 1", 17)
    msq = libc.msgget(0x7EAE, 0o1000 | 0o666)
    buf = ctypes.create_string_buffer(b"\\1\\0\\0\\0\\0\\0\\0\\0secret message", 32)
    sent = libc.msgsnd(msq, buf, 14, 0)
    sem = libc.semget(0x7EAF, 1, 0o1000 | 0o666)
    print("IPC", shm >= 0, msq >= 0, sent == 0, sem >= 0)
    """
    r1 = await run_py(sandbox, attack)
    assert "IPC True True True True" in r1.stdout, r1
    probe = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    tables = {k: open(f"/proc/sysvipc/{k}").read().splitlines()[1:] for k in ("shm", "msg", "sem")}
    print("TABLES", tables)
    print("GET", libc.shmget(0x7EAD, 0, 0), libc.msgget(0x7EAE, 0), libc.semget(0x7EAF, 0, 0))
    """
    r2 = await run_py(sandbox, probe)
    assert "TABLES {'shm': [], 'msg': [], 'sem': []}" in r2.stdout, r2
    assert "GET -1 -1 -1" in r2.stdout
    same_container(sandbox, r1, r2)


async def test_abstract_unix_socket_listener_does_not_survive(sandbox: DockerSandbox) -> None:
    name = f"treadle-{uuid.uuid4().hex[:8]}"
    attack = f"""
    import os, socket, time
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\\0{name}")
    s.listen(8)
    if os.fork() == 0:
        os.setsid()
        for fd in range(3):
            os.close(fd)
        while True:
            conn, _ = s.accept()
            conn.sendall(b"hello from run 1")
            conn.close()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect("\\0{name}")
    print("LISTENING", c.recv(100))
    """
    r1 = await run_py(sandbox, attack)
    assert "LISTENING b'hello from run 1'" in r1.stdout, r1
    probe = f"""
    import socket
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect("\\0{name}")
        print("REACHED", c.recv(100))
    except OSError as e:
        print("REFUSED", type(e).__name__)
    print("UNIX", len(open("/proc/net/unix").read().splitlines()) - 1)
    """
    r2 = await run_py(sandbox, probe)
    # its own socket and the agent's pair with its zygote
    assert "REFUSED" in r2.stdout and "UNIX 3" in r2.stdout, r2
    same_container(sandbox, r1, r2)


async def test_fork_racing_the_reset_is_killed(sandbox: DockerSandbox) -> None:
    attack = """
    import os, time
    for _ in range(4):
        if os.fork() == 0:
            os.setsid()
            for fd in range(3):
                os.close(fd)
            while True:   # a moving pid: the parent exits as soon as its child exists
                try:
                    if os.fork():
                        os._exit(0)
                except OSError:
                    pass
    time.sleep(0.2)
    print("racing")
    """
    r1 = await run_py(sandbox, attack, limits=Limits(timeout_s=5))
    assert "racing" in r1.stdout, r1
    probe = FOREIGN + "\nimport time; time.sleep(0.2); print('FOREIGN', foreign())\n"
    r2 = await run_py(sandbox, probe)
    assert "FOREIGN []" in r2.stdout, r2
    same_container(sandbox, r1, r2)


async def test_environment_and_working_directory_do_not_leak(sandbox: DockerSandbox) -> None:
    attack = """
    import os
    os.environ["LEAK"] = "1"
    os.putenv("LEAK2", "1")
    open(os.path.expanduser("~/.profile"), "w").write("export LEAK=1")
    os.makedirs("/work/sub", exist_ok=True)
    os.chdir("/work/sub")
    print("done")
    """
    r1 = await run_py(sandbox, attack)
    assert "done" in r1.stdout, r1
    probe = """
    import os
    print("ENV", sorted(os.environ.items()))
    print("CWD", os.getcwd(), sorted(os.listdir(".")), oct(os.stat(".").st_mode & 0o777))
    """
    r2 = await run_py(sandbox, probe)
    env = dict(eval(r2.stdout.split("ENV ", 1)[1].splitlines()[0]))
    assert "LEAK" not in env and "LEAK2" not in env
    assert env["HOME"] == "/work" and set(env) <= {
        "PATH", "HOME", "PYTHONUTF8", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "TMPDIR",
        "LC_CTYPE",
    }  # fmt: skip
    assert "CWD /work ['main.py'] 0o700" in r2.stdout, r2
    same_container(sandbox, r1, r2)


async def test_another_runs_files_are_not_readable(sandbox: DockerSandbox) -> None:
    """Sequentially (the same container, after the reset) and at the same time (two
    containers of one sandbox)."""
    writer = """
    import os, sys, time
    for d in ("/work", "/tmp", "/dev/shm"):
        open(d + "/secret", "w").write("s3cr3t")
    print("PID", os.getpid(), flush=True)
    time.sleep(float(sys.argv[1]))
    """
    reader = """
    import os, glob
    hits = []
    for p in ["/work/secret", "/tmp/secret", "/dev/shm/secret",
              *glob.glob("/proc/[0-9]*/cwd/secret"), *glob.glob("/proc/[0-9]*/root/tmp/secret")]:
        try:
            if "s3cr3t" in open(p).read():
                hits.append(p)
        except OSError:
            pass
    print("HITS", hits)
    """
    files = {"main.py": (WHO + textwrap.dedent(writer)).encode()}
    r1 = await sandbox.run(["python3", "main.py", "0"], files=files)
    r2 = await run_py(sandbox, reader)
    assert "HITS []" in r2.stdout, r2
    same_container(sandbox, r1, r2)
    slow = asyncio.ensure_future(sandbox.run(["python3", "main.py", "2"], files=files))
    await asyncio.sleep(1.0)
    r3 = await run_py(sandbox, reader)
    assert "HITS []" in r3.stdout, r3
    assert (await slow).ok


async def test_reset_mode_retires_after_max_runs_timeouts_and_ooms(docker_api: Any) -> None:
    sb = DockerSandbox(pool_size=1, api=docker_api, isolation="reset", max_runs=2)
    await sb.start()
    try:
        cids = [who(await run_py(sb, "pass"))[0] for _ in range(3)]
        assert cids[0] == cids[1] != cids[2]
        assert [why for _, why in sb.retired] == ["max runs"]
        slow = await run_py(sb, "while True: pass", limits=Limits(timeout_s=1))
        assert slow.timed_out
        hog = await run_py(
            sb, "x = []\nwhile True: x.append(bytearray(16 << 20))", limits=Limits(timeout_s=20)
        )
        assert hog.oom_killed
        assert [why for _, why in sb.retired][1:] == ["timed out", "out of memory"]
    finally:
        await sb.aclose()
