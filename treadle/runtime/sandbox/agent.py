"""The in-container agent: the warm pool's idle process, which runs exactly one request.

Its source is passed to the container as `python3 -I -S -c SOURCE`, so it needs nothing from
the host and only the image's Python (3.11 or newer). It must never import treadle, and it
imports only modules built into the interpreter (os, sys, time, select, _signal): every module
read from the image's disk costs a fresh container a few ms of CPU (json + subprocess + tarfile
+ threading cost ~80 ms of wall time per run on a loaded machine), and the sandbox is CPU-bound.

Why an agent instead of `docker exec` + `put_archive`: Docker refuses `put_archive` into a
container whose root is read-only (even when the target is a tmpfs), and one `docker exec`
costs ~80 ms here, while a request written to an already attached stdin costs one spawn.

Protocol, over the container's attached stdin/stdout (the agent writes nothing before a request);
numbers are ASCII decimals, strings UTF-8:
  host -> agent: `TIMEOUT KILL_AFTER OUT_CAP NARGS NFILES STDIN_LEN\\n`,
                 then per argument `LEN\\n` + LEN bytes,
                 then per file `NAME_LEN SIZE MODE\\n` + NAME_LEN bytes of name + SIZE bytes,
                 then STDIN_LEN bytes.
  agent -> host: one JSON line {exit_code, timed_out, oom, stdout_len, stderr_len,
                 stdout_total, stderr_total, duration, error}, then stdout_len bytes of the
                 code's stdout and stderr_len bytes of its stderr.
The code runs under GNU `timeout -k`, in its own process group; output is capped here, inside
the container, while draining the pipes, so a flood never reaches the host's memory.
"""

import _signal
import os
import select
import sys
import time

WORKDIR = "/work"
PATH = "/usr/local/bin:/usr/bin:/bin"


def _read_exact(stream, n):
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("stdin closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _numbers(stream):
    line = stream.readline()
    if not line.endswith(b"\n"):
        raise EOFError("stdin closed")
    return line.split()


def _target(name):
    """The path of a file of the request in the work dir, or ValueError for a bad name."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts or "\x00" in name:
        raise ValueError(f"refused file name {name[:200]!r}")
    return os.path.join(WORKDIR, *parts)


def _write_file(name, data, mode):
    target = _target(name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def _oom_kills():
    """The memory cgroup's OOM-kill counter (v1 or v2), or -1 when unreadable."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except (OSError, ValueError):
            continue
    return -1


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


def _child_env():
    # no LANG: loading a locale costs ~10 ms per process here; UTF-8 mode keeps I/O UTF-8
    return {
        "PATH": PATH,
        "HOME": WORKDIR,
        "PYTHONUTF8": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": "/tmp",
    }


def _spawn(argv, stdin_fd, stdout_fd, stderr_fd):
    # what subprocess.Popen does for a child: default SIGPIPE/SIGXFSZ (Python ignores them),
    # the three standard streams, every other descriptor closed (all of ours are CLOEXEC)
    return os.posix_spawnp(
        argv[0],
        argv,
        _child_env(),
        file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin_fd, 0),
            (os.POSIX_SPAWN_DUP2, stdout_fd, 1),
            (os.POSIX_SPAWN_DUP2, stderr_fd, 2),
        ],
        setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
    )


def _warm_up():
    """Start the tools once while idle: a fresh container's file lookups are slow the first
    time (each goes through the storage driver), and this moves that cost off the request.
    It runs beside the wait for the request; a request that comes first stops it (see
    _stop_warm_up), so a busy pool does not pay for warming containers it uses at once."""
    try:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            return _spawn(["timeout", "5", "python3", "-c", "pass"], null, null, null)
        finally:
            os.close(null)
    except OSError:
        return None


def _stop_warm_up(pid):
    if pid is None:
        return
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        # `timeout` leads its own process group, with its child in it
        for kill, target in ((os.killpg, pid), (os.kill, pid)):
            try:  # noqa: SIM105 - contextlib is read from disk, the agent avoids it
                kill(target, 9)
            except OSError:
                pass
        os.waitpid(pid, 0)
    except OSError:
        pass


def _run(argv, data, cap, drain_grace):
    """Spawn argv with data on its stdin; drain and cap its output. Returns
    (wait status, seconds until it ended, (out, out_total), (err, err_total))."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    try:
        pid = _spawn(argv, in_r, out_w, err_w)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1  # no pidfd: poll for the child's end every 20 ms instead
    kept = {out_r: bytearray(), err_r: bytearray()}
    total = {out_r: 0, err_r: 0}
    poller = select.poll()
    for fd in (out_r, err_r):
        poller.register(fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    view = memoryview(data)
    if view:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
        in_w = -1
    status = None
    elapsed = 0.0
    deadline = -1.0  # set when the child has ended
    pipes = {out_r, err_r}
    while True:
        if status is None and (pidfd < 0 or not pipes):
            waited, st = os.waitpid(pid, 0 if not pipes else os.WNOHANG)
            if waited:
                status = st
        if status is not None and deadline < 0:
            elapsed = time.monotonic() - start
            # processes the code left behind (a setsid sleeper holding the pipes open) must
            # not hold the reply: the container is single-use, so everything but us and init
            # goes
            _kill_others()
            deadline = time.monotonic() + drain_grace
            if in_w >= 0:
                poller.unregister(in_w)
                os.close(in_w)
                in_w = -1
        if status is not None and (not pipes or time.monotonic() >= deadline):
            break
        if status is not None:
            wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
        elif pidfd < 0:
            wait_ms = 20
        else:
            wait_ms = None
        for fd, ev in poller.poll(wait_ms):
            if fd == pidfd:
                poller.unregister(pidfd)
                os.close(pidfd)
                pidfd = -1
                status = os.waitpid(pid, 0)[1]
            elif fd == in_w:
                try:
                    view = view[os.write(in_w, view[:65536]) :]
                except BlockingIOError:
                    continue
                except OSError:
                    view = view[:0]
                if not view:
                    poller.unregister(in_w)
                    os.close(in_w)
                    in_w = -1
            else:
                chunk = os.read(fd, 65536) if ev & (select.POLLIN | select.POLLHUP) else b""
                if chunk:
                    total[fd] += len(chunk)
                    room = cap - len(kept[fd])
                    if room > 0:
                        kept[fd] += chunk[:room]
                else:
                    poller.unregister(fd)
                    os.close(fd)
                    pipes.discard(fd)
    for fd in (in_w, pidfd, *pipes):
        if fd >= 0:
            os.close(fd)
    return status, elapsed, (kept[out_r], total[out_r]), (kept[err_r], total[err_r])


def _json_str(text):
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in '"\\' or o < 0x20 or o > 0x7E:
            if o > 0xFFFF:
                o -= 0x10000
                hi, lo = 0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF)
                out.append(f"\\u{hi:04x}\\u{lo:04x}")
            else:
                out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _reply_line(reply):
    items = []
    for k, v in reply.items():
        if v is None:
            text = "null"
        elif v is True or v is False:
            text = "true" if v else "false"
        elif isinstance(v, str):
            text = _json_str(v)
        else:
            text = repr(v)
        items.append(f'"{k}": {text}')
    return ("{" + ", ".join(items) + "}\n").encode()


def main():
    warm_pid = _warm_up() if "--warm" in sys.argv[1:] else None
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    reply: dict = {
        "exit_code": -1,
        "timed_out": False,
        "oom": False,
        "stdout_len": 0,
        "stderr_len": 0,
        "stdout_total": 0,
        "stderr_total": 0,
        "duration": 0.0,
        "error": None,
    }
    out = err = b""
    try:
        first = stdin.readline()
        _stop_warm_up(warm_pid)
        if not first:
            return  # the host went away before sending a request
        timeout_s, kill_after, out_cap, nargs, nfiles, stdin_len = first.split()
        timeout = float(timeout_s)
        cmd = []
        for _ in range(int(nargs)):
            arg = _read_exact(stdin, int(_numbers(stdin)[0]))
            cmd.append(arg.decode("utf-8", "surrogateescape"))
        files = []
        for _ in range(int(nfiles)):
            name_len, size, mode = (int(x) for x in _numbers(stdin))
            name = _read_exact(stdin, name_len).decode("utf-8", "surrogateescape")
            files.append((name, _read_exact(stdin, size) if size else b"", mode))
        data = _read_exact(stdin, int(stdin_len)) if int(stdin_len) else b""
        for name, _content, _mode in files:
            _target(name)  # refuse the whole request before writing anything
        for name, content, mode in files:
            _write_file(name, content, mode)
        argv = ["timeout", "-k", kill_after.decode(), f"{timeout:.3f}", *cmd]
        oom_before = _oom_kills()
        os.chdir(WORKDIR)
        status, elapsed, (out, out_total), (err, err_total) = _run(
            argv, data, int(out_cap), max(0.5, float(kill_after))
        )
        oom_after = _oom_kills()
        code = os.waitstatus_to_exitcode(status)
        reply["exit_code"] = code
        reply["duration"] = elapsed
        reply["timed_out"] = code in (124, 137, -9) and elapsed >= timeout * 0.98
        reply["oom"] = oom_before >= 0 and oom_after > oom_before
        reply["stdout_len"] = len(out)
        reply["stderr_len"] = len(err)
        reply["stdout_total"] = out_total
        reply["stderr_total"] = err_total
    except Exception as exc:  # report, never hang: the host turns this into SandboxError
        reply["error"] = f"{type(exc).__name__}: {exc}"
        out = err = b""
        reply["stdout_len"] = reply["stderr_len"] = 0
    stdout.write(_reply_line(reply) + bytes(out) + bytes(err))
    stdout.flush()


if __name__ == "__main__":
    main()
