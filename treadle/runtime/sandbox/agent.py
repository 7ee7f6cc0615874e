"""The in-container agent: the warm pool's idle process, which runs exactly one request.

Its source is passed to the container as `python3 -c SOURCE`, so it needs nothing from the host
and only the standard library of the image's Python (3.11 or newer). It must never import treadle.

Why an agent instead of `docker exec` + `put_archive`: Docker refuses `put_archive` into a
container whose root is read-only (even when the target is a tmpfs), and one `docker exec`
costs ~80 ms here, while a request written to an already attached stdin costs one fork.

Protocol, over the container's attached stdin/stdout (the agent writes nothing before a request):
  host -> agent: one JSON line {cmd, timeout, kill_after, out_cap, files_len, stdin_len},
                 then files_len bytes of tar (extracted into the work dir), then stdin_len bytes.
  agent -> host: one JSON line {exit_code, timed_out, oom, stdout, stderr (base64),
                 stdout_total, stderr_total, duration, error}.
The code runs under GNU `timeout -k`, in its own process group; output is capped here, inside
the container, while draining the pipes, so a flood never reaches the host's memory.
"""

import base64
import contextlib
import json
import os
import subprocess
import sys
import tarfile
import threading
import time

WORKDIR = "/work"


def _read_exact(stream, n):
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("stdin closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _safe_member(member):
    name = member.name
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts:
        return False
    return member.isfile() or member.isdir()


def _extract(data):
    import io

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        bad = [m.name for m in members if not _safe_member(m)]
        if bad:
            raise ValueError(f"refused archive members: {bad[:5]!r}")
        for m in members:
            target = os.path.join(WORKDIR, *[p for p in m.name.split("/") if p not in ("", ".")])
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tar.extractfile(m)
            with open(target, "wb") as out:
                out.write(src.read() if src is not None else b"")
            os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)


def _oom_kills():
    """The memory cgroup's OOM-kill counter (v1 or v2), or -1 when unreadable."""
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == key:
                        return int(v)
        except (OSError, ValueError):
            continue
    return -1


def _drain(pipe, cap, box):
    kept = bytearray()
    total = 0
    while True:
        chunk = pipe.read(65536)
        if not chunk:
            break
        total += len(chunk)
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
    box.append(bytes(kept))
    box.append(total)


def _kill_others():
    me = os.getpid()
    for _ in range(3):
        found = False
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (1, me):
                try:
                    os.kill(int(name), 9)
                    found = True
                except OSError:
                    pass
        if not found:
            return
        time.sleep(0.01)


def _feed(pipe, data):
    try:
        if data:
            pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _child_env():
    # no LANG: loading a locale costs ~10 ms per process here; UTF-8 mode keeps I/O UTF-8
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORKDIR,
        "PYTHONUTF8": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": "/tmp",
    }


def _warm_up():
    """Start the tools once while idle: a fresh container's file lookups are slow the first
    time (each goes through the storage driver), and this moves that cost off the request."""
    with contextlib.suppress(Exception):
        subprocess.run(
            ["timeout", "5", "python3", "-c", "pass"],
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            timeout=10,
        )


def main():
    if "--warm" in sys.argv[1:]:
        _warm_up()
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    header = stdin.readline()
    if not header:
        return
    req = json.loads(header)
    files = _read_exact(stdin, req["files_len"]) if req["files_len"] else b""
    data = _read_exact(stdin, req["stdin_len"]) if req["stdin_len"] else b""
    reply = {
        "exit_code": -1,
        "timed_out": False,
        "oom": False,
        "stdout": "",
        "stderr": "",
        "stdout_total": 0,
        "stderr_total": 0,
        "duration": 0.0,
        "error": None,
    }
    try:
        if files:
            _extract(files)
        timeout = float(req["timeout"])
        cmd = ["timeout", "-k", str(req["kill_after"]), f"{timeout:.3f}", *req["cmd"]]
        oom_before = _oom_kills()
        env = _child_env()
        env.update(req.get("env") or {})
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=WORKDIR,
            env=env,
        )
        out: list = []
        err: list = []
        threads = [
            threading.Thread(target=_drain, args=(proc.stdout, req["out_cap"], out)),
            threading.Thread(target=_drain, args=(proc.stderr, req["out_cap"], err)),
            threading.Thread(target=_feed, args=(proc.stdin, data)),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        code = proc.wait()
        elapsed = time.monotonic() - start
        # processes the code left behind (a setsid sleeper holding the pipes open) must not
        # hold the reply: the container is single-use, so everything but us and init goes
        _kill_others()
        for t in threads[:2]:
            t.join(max(0.5, req["kill_after"]))
        oom_after = _oom_kills()
        reply["exit_code"] = code
        reply["duration"] = elapsed
        reply["timed_out"] = code in (124, 137, -9) and elapsed >= timeout * 0.98
        reply["oom"] = oom_before >= 0 and oom_after > oom_before
        if len(out) == 2:
            reply["stdout"] = base64.b64encode(out[0]).decode()
            reply["stdout_total"] = out[1]
        if len(err) == 2:
            reply["stderr"] = base64.b64encode(err[0]).decode()
            reply["stderr_total"] = err[1]
    except Exception as exc:  # report, never hang: the host turns this into SandboxError
        reply["error"] = f"{type(exc).__name__}: {exc}"
    stdout.write(json.dumps(reply).encode() + b"\n")
    stdout.flush()


if __name__ == "__main__":
    main()
