"""The attack and fault suite, against the real Docker engine.

Each test runs hostile code and asserts the contained outcome (killed, capped, denied, absent)
and that the host is unaffected. Nothing here sends traffic outside loopback.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from treadle.errors import SandboxError
from treadle.runtime.sandbox import labels as lbl
from treadle.runtime.sandbox.base import ExecResult, Limits
from treadle.runtime.sandbox.docker_sandbox import KILL_AFTER, DockerSandbox

pytestmark = pytest.mark.docker


def py(code: str) -> tuple[list[str], dict[str, bytes]]:
    return ["python3", "main.py"], {"main.py": textwrap.dedent(code).encode()}


async def run_py(sb: DockerSandbox, code: str, **kw: Any) -> ExecResult:
    cmd, files = py(code)
    return await sb.run(cmd, files=files, **kw)


async def test_hello_and_stdin(sandbox: DockerSandbox) -> None:
    r = await run_py(sandbox, "import sys; print(sys.stdin.read().upper())", stdin=b"abc")
    assert r.ok and r.stdout == "ABC\n"


async def test_infinite_loop_times_out(sandbox: DockerSandbox) -> None:
    t = time.monotonic()
    r = await run_py(sandbox, "while True: pass", limits=Limits(timeout_s=1.5))
    assert r.timed_out and not r.ok
    assert time.monotonic() - t < 1.5 + KILL_AFTER + 3


async def test_cpu_burn_is_capped_by_quota(sandbox: DockerSandbox) -> None:
    code = """
    import multiprocessing as mp, os, time
    def burn():
        end = time.time() + 2
        while time.time() < end: pass
    ps = [mp.Process(target=burn) for _ in range(4)]
    t = time.time()
    [p.start() for p in ps]; [p.join() for p in ps]
    wall = time.time() - t
    c = os.times()
    print(round(c.children_user + c.children_system, 2), round(wall, 2))
    """
    r = await run_py(sandbox, code, limits=Limits(cpus=0.5, timeout_s=20))
    assert r.ok, r.stderr
    cpu, wall = map(float, r.stdout.split())
    # 4 burners for >= 2 s of wall time would use ~4 cores-worth without the quota
    assert cpu <= 0.5 * wall * 1.3 + 0.3, (cpu, wall)


async def test_memory_bomb_is_oom_killed(sandbox: DockerSandbox) -> None:
    code = """
    chunks = []
    while True:
        chunks.append(bytearray(16 << 20))
    """
    r = await run_py(sandbox, code, limits=Limits(memory_mb=128, timeout_s=20))
    assert r.oom_killed and r.exit_code == 137 and not r.ok


async def test_fork_bomb_is_contained(sandbox: DockerSandbox) -> None:
    before = len(os.listdir("/proc"))
    code = """
    import os
    n = 0
    while True:
        try:
            if os.fork() == 0:
                while True: pass
            n += 1
        except OSError:
            print("fork refused after", n, flush=True)
            break
    """
    r = await run_py(sandbox, code, limits=Limits(timeout_s=3, pids=32))
    assert "fork refused after" in r.stdout
    assert int(r.stdout.split()[-1]) < 32
    await asyncio.sleep(0.5)
    assert len(os.listdir("/proc")) < before + 20  # no process explosion on the host


async def test_100mb_of_output_is_capped(sandbox: DockerSandbox) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = """
    import sys
    block = b"x" * (1 << 20)
    for _ in range(100):
        sys.stdout.buffer.write(block)
    sys.stderr.write("e" * 5000)
    """
    r = await run_py(sandbox, code, limits=Limits(output_bytes=64 * 1024, timeout_s=30))
    assert r.exit_code == 0, r.stderr
    assert r.stdout_truncated and len(r.stdout) == 64 * 1024
    assert not r.stderr_truncated and len(r.stderr) == 5000
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss_after - rss_before < 50 * 1024  # KiB: the 100 MB never reached the host


async def test_disk_fill_of_work_dir_is_capped(sandbox: DockerSandbox) -> None:
    code = """
    import errno
    n = 0
    try:
        with open("big", "wb") as f:
            while True:
                f.write(b"\\0" * (1 << 20)); f.flush(); n += 1
    except OSError as e:
        print(errno.errorcode[e.errno], n)
    """
    r = await run_py(sandbox, code, limits=Limits(workdir_mb=16, timeout_s=20))
    code_name, mb = r.stdout.split()
    assert code_name == "ENOSPC" and int(mb) <= 16


async def test_100000_small_files_are_contained(sandbox: DockerSandbox) -> None:
    code = """
    import os
    n = 0
    try:
        for i in range(100_000):
            with open(f"f{i}", "w") as f:
                f.write("x")
            n += 1
    except OSError as e:
        print("stopped", n, e.strerror)
    else:
        print("made", n)
    """
    r = await run_py(sandbox, code, limits=Limits(workdir_mb=16, timeout_s=30))
    assert r.exit_code == 0, r.stderr
    words = r.stdout.split()
    assert words[0] == "stopped" and int(words[1]) < 100_000  # the tmpfs size bounds it
    after = await sandbox.run(["python3", "-c", "import os; print(len(os.listdir('.')))"])
    assert after.stdout.strip() == "0"  # and the next run starts clean


async def test_root_filesystem_is_read_only(sandbox: DockerSandbox) -> None:
    code = """
    for path in ("/etc/evil", "/usr/bin/evil", "/evil", "/var/evil"):
        try:
            open(path, "w").write("x")
            print("WROTE", path)
        except OSError as e:
            print("denied", path, e.strerror)
    """
    r = await run_py(sandbox, code)
    assert "WROTE" not in r.stdout and r.stdout.count("denied") == 4


async def test_tmp_and_shm_do_not_leak_to_next_run(sandbox: DockerSandbox) -> None:
    token = uuid.uuid4().hex
    write = f"""
    for d in ("/tmp", "/dev/shm", "/work"):
        open(d + "/leak-{token}", "w").write("x")
    print("written")
    """
    r = await run_py(sandbox, write)
    assert r.stdout.strip() == "written", r.stderr
    look = f"""
    import os
    print(sum(os.path.exists(d + "/leak-{token}") for d in ("/tmp", "/dev/shm", "/work")))
    """
    for _ in range(3):  # warm and cold containers alike
        assert (await run_py(sandbox, look)).stdout.strip() == "0"


async def test_no_network_interface_but_lo(sandbox: DockerSandbox) -> None:
    r = await sandbox.run(
        ["python3", "-c", "import os; print(sorted(os.listdir('/sys/class/net')))"]
    )
    assert r.stdout.strip() == "['lo']"


async def test_host_files_and_proc1_root_are_not_reachable(
    sandbox: DockerSandbox, tmp_path: Path
) -> None:
    secret = Path("/tmp") / f"treadle-host-secret-{uuid.uuid4().hex}"
    secret.write_text("host secret")
    try:
        code = f"""
        import os
        hits = []
        for p in ({str(secret)!r}, "/proc/1/root{secret}", "/proc/1/root/etc/hostname.host",
                  "/host", "/proc/1/root/work/../../{secret.name}"):
            try:
                if "host secret" in open(p).read():
                    hits.append(p)
            except OSError:
                pass
        print("hits", hits)
        print("hostname", open("/etc/hostname").read().strip())
        """
        r = await run_py(sandbox, code)
        assert "hits []" in r.stdout, r.stdout + r.stderr
        assert os.uname().nodename not in r.stdout.split("hostname", 1)[1]
    finally:
        secret.unlink()


async def test_docker_socket_is_absent(sandbox: DockerSandbox) -> None:
    code = """
    import os
    print([p for p in ("/var/run/docker.sock", "/run/docker.sock", "/docker.sock")
           if os.path.exists(p)])
    """
    assert (await run_py(sandbox, code)).stdout.strip() == "[]"


async def test_no_capabilities_and_no_new_privileges(sandbox: DockerSandbox) -> None:
    r = await sandbox.run(["cat", "/proc/self/status"])
    status = dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap].strip(), 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"].strip() == "1"
    uids = {int(u) for u in status["Uid"].split()} | {int(g) for g in status["Gid"].split()}
    assert min(uids) >= 200000 and len(uids) == 1  # a uid of its own, never root
    assert status["Groups"].strip() == ""
    assert status["Seccomp"].strip() == "2"  # the engine's default seccomp profile


async def test_host_environment_is_not_visible(sandbox: DockerSandbox) -> None:
    os.environ["TREADLE_HOST_SECRET"] = "s3cr3t"
    try:
        r = await sandbox.run(["python3", "-c", "import os; print(dict(os.environ))"])
        assert "s3cr3t" not in r.stdout and "TREADLE_HOST_SECRET" not in r.stdout
        r1 = await sandbox.run(["cat", "/proc/1/environ"])
        assert "s3cr3t" not in r1.stdout
    finally:
        del os.environ["TREADLE_HOST_SECRET"]


async def test_sigterm_ignored_is_killed(sandbox: DockerSandbox) -> None:
    code = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ignoring", flush=True)
    while True: time.sleep(0.1)
    """
    t = time.monotonic()
    r = await run_py(sandbox, code, limits=Limits(timeout_s=1))
    assert r.timed_out and r.exit_code == 137 and r.stdout == "ignoring\n"
    assert time.monotonic() - t < 1 + KILL_AFTER + 3


async def test_zombies_are_reaped_and_nothing_survives_timeout(
    sandbox: DockerSandbox, docker_api: Any, containers_of: Any
) -> None:
    code = """
    import os, time
    for _ in range(5):          # orphans that exit: the init process must reap them
        if os.fork() == 0:
            if os.fork() == 0:
                time.sleep(0.2); os._exit(0)
            os._exit(0)
        os.wait()
    time.sleep(1)
    zombies = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            zombies += open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            pass
    print("zombies", zombies, flush=True)
    if os.fork() == 0:          # a detached sleeper that outlives the time limit
        os.setsid(); time.sleep(1000)
    time.sleep(1000)
    """
    r = await run_py(sandbox, code, limits=Limits(timeout_s=3))
    assert r.timed_out and "zombies 0" in r.stdout
    if sandbox.isolation == "reset":  # a timed-out run retires its container
        look = "import os; print([p for p in os.listdir('/proc') if p.isdigit()])"
        after = await sandbox.run(["python3", "-c", look])
        assert len(eval(after.stdout)) == 4, after  # init, the agent, its zygote, this process
        assert [why for _, why in sandbox.retired] == ["timed out"]
    for _ in range(50):  # the container (with the setsid sleeper) is removed after the run
        await asyncio.sleep(0.1)
        if len(containers_of(docker_api, sandbox.run_id)) <= sandbox.pool_size:
            break
    ids = {c["Id"] for c in containers_of(docker_api, sandbox.run_id)}
    pooled = {w.cid for w in list(sandbox._pool._queue)}  # type: ignore[attr-defined]
    assert ids <= pooled


async def test_archive_names_with_dotdot_are_refused(sandbox: DockerSandbox) -> None:
    for bad in ("../evil.py", "a/../../evil.py", "/etc/evil", ""):
        with pytest.raises(SandboxError, match="Refused file name"):
            await sandbox.run(["true"], files={bad: b"x"})
    r = await sandbox.run(["python3", "pkg/m.py"], files={"pkg/m.py": b"print('nested')"})
    assert r.stdout == "nested\n"


async def test_invalid_utf8_output_is_returned_safely(sandbox: DockerSandbox) -> None:
    code = r"""
    import sys
    sys.stdout.buffer.write(b"ok \xff\xfe\xc3(\n")
    sys.stderr.buffer.write(b"\x80err")
    """
    r = await run_py(sandbox, code)
    assert r.ok and r.stdout.startswith("ok ") and "\ufffd" in r.stdout
    assert r.stderr.endswith("err")


async def test_host_killed_mid_run_leftovers_are_swept(docker_api: Any, tmp_path: Path) -> None:
    script = tmp_path / "victim.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from treadle.runtime.sandbox.base import Limits
            from treadle.runtime.sandbox.docker_sandbox import DockerSandbox

            async def main():
                sb = await DockerSandbox(pool_size=1).start()
                task = asyncio.ensure_future(sb.run(["sleep", "100"], limits=Limits(timeout_s=100)))
                await asyncio.sleep(2)
                print("RUNNING", flush=True)
                await task

            asyncio.run(main())
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "RUNNING"
        owner = lbl.owner_label(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    left = docker_api.containers(all=True, filters={"label": f"{lbl.LABEL_OWNER}={owner}"})
    assert left, "the killed process should have left its containers behind"
    assert lbl.owner_alive(owner) is False
    sb = await DockerSandbox(pool_size=0, api=docker_api).start()  # a new start sweeps
    try:
        assert {c["Id"] for c in left} <= set(sb.swept)
        assert not docker_api.containers(all=True, filters={"label": f"{lbl.LABEL_OWNER}={owner}"})
    finally:
        await sb.aclose()


async def test_sweep_spares_live_owners(docker_api: Any, containers_of: Any) -> None:
    a = await DockerSandbox(pool_size=1, api=docker_api).start()
    try:
        await asyncio.sleep(1.5)  # its warm container exists now
        mine = containers_of(docker_api, a.run_id)
        assert mine
        b = await DockerSandbox(pool_size=0, api=docker_api).start()
        await b.aclose()
        assert not {c["Id"] for c in mine} & set(b.swept)
        r = await a.run(["python3", "-c", "print('alive')"])
        assert r.stdout == "alive\n"
    finally:
        await a.aclose()


async def test_50_runs_at_once(sandbox: DockerSandbox) -> None:
    async def one(i: int) -> str:
        r = await sandbox.run(["python3", "-c", f"print({i} * {i})"], limits=Limits(timeout_s=60))
        assert r.ok, r
        return r.stdout.strip()

    outs = await asyncio.gather(*(one(i) for i in range(50)))
    assert outs == [str(i * i) for i in range(50)]
