"""The in-container agent: the container's long-lived process, which serves runs one at a time.

Its source is passed to the container as `python3 -I -S -c SOURCE`, so it needs nothing from
the host and only the image's Python (3.11 or newer). It must never import treadle, and it
imports only modules built into the interpreter (os, sys, time, select, _signal, _socket) plus
ctypes (for prctl, seccomp and the SysV IPC calls the standard library lacks), and ast and _json
for the judges it forks: every module read from the image's disk costs a fresh container CPU
(and, imported by a judge instead, costs it on every run).

Privileges: the agent is uid 0 in the container with the 7 capabilities the reset needs
(SETUID, SETGID, SETPCAP, KILL, CHOWN, DAC_OVERRIDE, FOWNER; no-new-privileges on everything),
under Docker's seccomp filter and one of its own stacked on it (io_uring, ptrace,
process_vm_*, pidfd_getfd, bpf, perf_event_open, userfaultfd, keyrings, kcmp, unshare, setns
and other architectures' system calls refused), which every process of the container inherits.
Each run executes as fresh uids, never reused in this container and drawn from a random block
per container (so per-user kernel limits are not shared with other containers), with an empty
capability bounding set, in directories only the run's code uid can read. A run cannot signal,
trace or open the files of the agent, so the reply (exit status, output, verdict) is the
agent's alone.

A judge run (a command starting with FORKABLE: the `test`/`program` harness) runs as the run's
judge uid in a fork of this interpreter; the code it judges runs as the run's code uid, in
processes forked on the judge's request (over the descriptor JUDGE_FD) from the zygote: a fork
of this agent made before the first request, so it holds no request's data. The judge and
the code share no uid: the code cannot signal, trace or read the judge, and it never holds
the tests, which reach the judge on its stdin.

After a run (when the request asks for a reset) the agent kills every process of the run and
checks none is left, wipes every writable location (/work, /tmp, /dev/shm, /dev/mqueue) and
strips their roots' extended attributes (ACLs included) and times, removes SysV IPC objects,
checks no unix socket of the run remains and the network namespace shows no trace of traffic,
and reports whether the container is clean; the host retires it on any doubt. Without a reset
it kills what is left, replies and exits (the container is single-use).

Protocol, over the container's attached stdin/stdout (the agent writes nothing before a request);
numbers are ASCII decimals, strings UTF-8:
  host -> agent: `TIMEOUT KILL_AFTER OUT_CAP NARGS NFILES STDIN_LEN [RESET]\\n`,
                 then per argument `LEN\\n` + LEN bytes,
                 then per file `NAME_LEN SIZE MODE\\n` + NAME_LEN bytes of name + SIZE bytes,
                 then STDIN_LEN bytes.
  agent -> host: one JSON line {exit_code, timed_out, oom, stdout_len, stderr_len,
                 stdout_total, stderr_total, duration, error, clean, reset_error, runs}, then
                 stdout_len bytes of the code's stdout and stderr_len bytes of its stderr.
  judge -> agent (JUDGE_FD, a unix socket): `w N ARGS` with 3 descriptors (the code's
                 stdout, its request pipe, its reply pipe): kill the code's processes and start
                 `SCRIPT worker ARGS` as the code uid; `k N`: kill the code's processes. The
                 agent answers `w N` or `k N` (`e N` when it could not), N the message's
                 number.
The agent enforces the time limit itself (SIGKILL to every process of the run at the deadline);
output is capped here, inside the container, while draining the pipes, so a flood never
reaches the host's memory.
"""

import _signal
import _socket
import os
import select
import sys
import time

WORKDIR = "/work"
PATH = "/usr/local/bin:/usr/bin:/bin"
#: the writable places a run can reach; each is wiped and checked after a run
WRITABLE = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")
#: the ones handed to the run's uid (mode 0700) for the length of the run
PRIVATE = ("/work", "/tmp", "/dev/shm")
#: each container draws a block of UID_BLOCK uids at random from [UID_LOW, UID_HIGH); run r uses
#: base + 2r (its judge) and base + 2r + 1 (its code)
UID_BLOCK = 1024
UID_LOW, UID_HIGH = 1 << 24, (1 << 32) - (1 << 24)
#: where a judge finds its socket to the agent
JUDGE_FD = 3
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
IPC_RMID = 0
#: system calls no run needs that widen the kernel's attack surface or reach other processes,
#: per architecture (audit arch, numbers); Docker's own filter still applies underneath
DENIED_SYSCALLS = {
    # io_uring_setup/enter/register, ptrace, process_vm_readv/writev, pidfd_getfd, userfaultfd,
    # perf_event_open, bpf, keyctl, add_key, request_key, kcmp, unshare, setns
    "x86_64": (0xC000003E, (425, 426, 427, 101, 310, 311, 438, 323, 298, 321, 250, 248, 249,
                            312, 272, 308)),
    "aarch64": (0xC00000B7, (425, 426, 427, 117, 270, 271, 438, 282, 241, 280, 219, 217, 218,
                             272, 97, 268)),
}  # fmt: skip
EPERM = 1

_libc = None
_last_cap = 40
_zygote_pid = -1
_zygote_sock = None
#: the agent's own unix sockets (to the zygote): the only ones allowed between runs
_own_sockets: set[int] = set()


def _load_libc():
    global _libc, _last_cap
    if _libc is not None:
        return _libc
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            _last_cap = int(f.read())
    except (OSError, ValueError):
        pass
    return _libc


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


def _others():
    """Every process but init, the agent and its zygote (the container holds nothing else
    between runs)."""
    keep = (1, os.getpid(), _zygote_pid)
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) not in keep]


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


def _kill_uid(uid):
    """SIGKILL every process of `uid` at once: kill(-1) as that uid, from a forked helper (the
    agent itself may signal the zygote; a uid's kill(-1) cannot reach it). kill(-1) walks the
    task list under the kernel's lock, so a fork racing with it cannot slip through. When the
    run holds every pid of the container (no fork possible), its processes one by one: the
    reply must not become an agent error (a failed test would turn into an unscored one)."""
    try:
        pid = os.fork()
    except OSError:
        for other in _pids_of(uid):
            try:  # noqa: SIM105 - contextlib is read from disk
                os.kill(other, 9)
            except OSError:
                pass
        return
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, 9)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _pids_of(uid):
    """The processes whose real uid is `uid` (from /proc/PID/status: a non-dumpable process's
    /proc entry is root's)."""
    found = []
    for pid in _others():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(pid)
                        break
        except (OSError, ValueError, IndexError):
            continue
    return found


def _kill_all(uids, patience=2.0):
    """SIGKILL every process of the run (its `uids`) and anything else but init, the agent and
    the zygote, until none is left; False if one survives. Pid by pid first (no fork: what a
    run leaves is usually one exiting process); a process still there after that (one forking
    as fast as it is killed) meets kill(-1) as each uid."""
    end = time.monotonic() + patience
    rounds = 0
    while True:
        left = _others()
        if not left:
            return True
        if rounds:
            for uid in uids:
                _kill_uid(uid)
        for pid in left:
            try:  # noqa: SIM105 - contextlib is read from disk
                os.kill(pid, 9)
            except OSError:
                pass
        _reap()
        if not _others():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.002)
        rounds += 1


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


def _drop_to(uid):
    """In a forked child: an empty capability bounding set, no groups, uid and gid `uid` (the
    permitted, effective and ambient sets empty themselves on the change from uid 0)."""
    libc = _load_libc()
    for cap in range(_last_cap + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


#: `python3 -I -S -X utf8 SCRIPT.py ...` is what the agent itself runs as: such a command is a
#: judge, run in a fork of the agent's own (pre-imported) interpreter instead of a new one (the
#: `test` harness: ~1 ms instead of ~20 ms of interpreter start-up per run), and the code it
#: judges in forks of the zygote
FORKABLE = ["python3", "-I", "-S", "-X", "utf8"]
_compiled: dict[bytes, object] = {}


def _forkable(argv):
    return argv[:5] == FORKABLE and len(argv) > 5 and argv[5].endswith(".py")


def _precompile(argv, files):
    """A judge's script, compiled in the agent once per distinct source (the harness is the
    same for every run), so each fork starts from bytecode: (code, source) or None."""
    if not _forkable(argv):
        return None
    src = next((c for n, c, _m in files if n == argv[5]), None)
    if src is None or len(src) > 1 << 20:
        return None
    code = _compiled.get(src)
    if code is None:
        if len(_compiled) > 4:
            _compiled.clear()
        code = _compiled[src] = compile(src, argv[5], "exec", dont_inherit=True)
    return code, src


def _run_python(argv, code, env=None):
    """In the forked run: what `python3 -I -S -X utf8 SCRIPT ARGS` does, without starting an
    interpreter: fresh __main__, argv, environment and standard streams."""
    import builtins

    os.environ.clear()
    os.environ.update(_child_env())
    os.environ.update(env or {})
    sys.argv = argv[5:]
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    main = type(sys)("__main__")
    main.__file__ = argv[5]
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    status = 0
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:
        if exc.code is None:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is read from disk
            stream.flush()
        except BaseException:
            pass
    os._exit(status)


def _place_fds(fds):
    """Make `fds` descriptors 0, 1, 2, ... (through high numbers, so none overwrites another)
    and close every other one."""
    high = [os.dup2(fd, 200 + i) for i, fd in enumerate(fds)]
    for i, fd in enumerate(high):
        os.dup2(fd, i)
    os.closerange(len(fds), 65536)


def _spawn(argv, uid, stdin_fd, stdout_fd, stderr_fd, code=None, judge_fd=-1):
    """fork, drop to `uid` in a session of its own, exec argv (or run `code`, the compiled
    script of a judge, in this interpreter, with its socket to the agent as JUDGE_FD)."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        _place_fds([stdin_fd, stdout_fd, stderr_fd] + ([judge_fd] if judge_fd >= 0 else []))
        _drop_to(uid)
        if code is not None:
            os.chdir("/")  # the judge never enters the code's work dir
            _run_python(argv, code, {"TREADLE_JUDGE_FD": str(JUDGE_FD)})
        os.chdir(WORKDIR)
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        os.execvpe(argv[0], argv, _child_env())
    except BaseException as exc:
        try:  # noqa: SIM105 - contextlib is read from disk
            os.write(2, f"[treadle] cannot start {argv[0]!r}: {exc}\n".encode())
        except BaseException:
            pass
    os._exit(127)


# ---------------------------------------------------------------------- the zygote


def _send_fds(sock, data, fds):
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _fd_bytes(fds))] if fds else [])


def _fd_bytes(fds):
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _recv_fds(sock, size, most):
    """A message and the descriptors that came with it (at most `most`; extra ones closed)."""
    data, anc, _flags, _addr = sock.recvmsg(size, _socket.CMSG_SPACE(4 * most))
    fds = []
    for level, kind, raw in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(raw) - len(raw) % 4
            fds += [int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    for fd in fds[most:]:
        os.close(fd)
    return data, fds[:most]


def _start_zygote():
    """Fork the zygote before the first request: the code's processes are forked from it, so
    they hold nothing of any request (the agent's freed memory keeps earlier runs' data)."""
    global _zygote_pid, _zygote_sock
    mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    _own_sockets.update(os.fstat(s.fileno()).st_ino for s in (mine, theirs))
    pid = os.fork()
    if pid == 0:
        try:
            mine.close()
            _zygote(theirs)
        except BaseException:
            pass
        os._exit(0)
    theirs.close()
    _zygote_pid, _zygote_sock = pid, mine


def _zygote(sock):
    """Serve the agent's `UID NARGS\\n` + NUL-ended arguments + script, with the code's
    stdout, request and reply descriptors: fork a process that runs the script as UID."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)  # the kernel reaps the code's processes
    codes: dict[bytes, object] = {}
    while True:
        data, fds = _recv_fds(sock, 1 << 21, 3)
        if not data:
            os._exit(0)
        pid = -1
        try:
            head, _, rest = data.partition(b"\n")
            uid, nargs = (int(x) for x in head.split())
            parts = rest.split(b"\0", nargs)
            argv = [a.decode("utf-8", "surrogateescape") for a in parts[:nargs]]
            source = parts[nargs]
            code = codes.get(source)
            if code is None:
                codes.clear()
                code = codes[source] = compile(source, argv[0], "exec", dont_inherit=True)
            if len(fds) == 3:
                pid = os.fork()
                if pid == 0:
                    try:
                        os.setsid()
                        out, req, rep = fds
                        _place_fds([null, out, out, req, rep])
                        _drop_to(uid)
                        os.chdir(WORKDIR)
                        _run_python([*FORKABLE, *argv], code)
                    except BaseException:
                        pass
                    os._exit(127)
        except Exception:
            pid = -1
        for fd in fds:
            os.close(fd)
        sock.send(b"%d" % pid)


def _start_code(script, source, args, fds, uid):
    """Ask the zygote for a process of the code (`SCRIPT worker ARGS` as `uid`); its pid or -1."""
    argv = [script, "worker", *args]
    head = f"{uid} {len(argv)}\n".encode()
    body = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in argv)
    zygote = _zygote_sock
    if zygote is None:
        return -1
    _send_fds(zygote, head + body + source, fds)
    try:
        return int(zygote.recv(64) or b"-1")
    except ValueError:
        return -1


def _serve_judge(sock, script, source, code_uid, forbidden, started):
    """One message of the judge (`KIND NUMBER [MODE]`): start the code's process (`w`), or kill
    its processes (`k`; `started`: whether one was started before in this run). The answer is
    the kind (`e` when it failed) and the message's number. False when the judge has closed
    its socket."""
    try:
        data, fds = _recv_fds(sock, 512, 3)
    except OSError:
        return False
    if not data:
        return False
    words = data.split()
    kind = words[0] if words else b""
    answer = b"e"
    try:
        if kind == b"k":
            _kill_uid(code_uid)
            answer = b"k"
        # never the run's own stdin/stdout/stderr pipes: those carry the verdict
        elif (
            kind == b"w"
            and len(fds) == 3
            and not any(os.fstat(fd).st_ino in forbidden for fd in fds)
        ):
            if started:
                _kill_uid(code_uid)
            args = [w.decode("utf-8", "replace") for w in words[2:10]]
            if _start_code(script, source, args, fds, code_uid) > 0:
                answer = b"w"
    except Exception:
        answer = b"e"
    finally:
        for fd in fds:
            os.close(fd)
    try:
        sock.send(b" ".join((answer, words[1][:20] if len(words) > 1 else b"0")))
    except OSError:
        return False
    return True


def _warm_up():
    """Start the interpreter once while idle: a fresh container's file lookups are slow the
    first time (each goes through the storage driver), and this moves that cost off the first
    request. A request that comes first stops it (see _stop_warm_up)."""
    try:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            return os.posix_spawn(
                "/usr/bin/python3", ["python3", "-c", "pass"], {}, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                    (os.POSIX_SPAWN_DUP2, null, 2),
                ],
            )  # fmt: skip
        finally:
            os.close(null)
    except OSError:
        return None


def _stop_warm_up(pid):
    if pid is None:
        return
    try:
        if not os.waitpid(pid, os.WNOHANG)[0]:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    except OSError:
        pass


def _prepare(uid):
    """Hand the private directories to the run's uid, mode 0700."""
    for d in PRIVATE:
        os.chown(d, uid, uid)
        os.chmod(d, 0o700)


def _write_files(files, uid):
    """Write the request's files as the run's uid (so they are its own, and a name can never
    lead the agent's privileges anywhere)."""
    os.setegid(uid)
    os.seteuid(uid)
    try:
        for name, content, mode in files:
            _write_file(name, content, mode)
    finally:
        os.seteuid(0)
        os.setegid(0)


def _run(argv, uids, data, cap, timeout, drain_grace, judge=None):
    """Spawn argv with data on its stdin; drain and cap its output; SIGKILL every process of
    the run at the deadline. `uids`: the run's (judge, code) uids; a plain command runs as the
    code uid, a judge (`judge`: its compiled script and source) as the judge uid, and starts
    the code's processes through its socket to the agent. Returns (wait status, seconds until
    it ended, timed out, (out, out_total), (err, err_total))."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    judge_sock = theirs = None
    if judge is not None:
        judge_sock, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    theirs_fd = -1 if theirs is None else theirs.fileno()
    start = time.monotonic()
    deadline_run = start + timeout
    try:
        if judge is None:
            pid = _spawn(argv, uids[1], in_r, out_w, err_w)
        else:
            pid = _spawn(argv, uids[0], in_r, out_w, err_w, judge[0], theirs_fd)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        if theirs is not None:
            theirs.close()
    forbidden = {os.fstat(fd).st_ino for fd in (in_w, out_r, err_r)}
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
    judge_fd = -1
    started = False  # a process of the code was started (a restart kills it first)
    if judge_sock is not None:
        judge_fd = judge_sock.fileno()
        poller.register(judge_fd, select.POLLIN)
    view = memoryview(data)
    if view:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
        in_w = -1
    status = None
    timed_out = False
    elapsed = 0.0
    deadline = -1.0  # set when the child has ended
    pipes = {out_r, err_r}
    while True:
        now = time.monotonic()
        if status is None and not timed_out and now >= deadline_run:
            timed_out = True
            for uid in uids:  # everything of the run; the child is reaped just below
                _kill_uid(uid)
        if status is None and (pidfd < 0 or not pipes or timed_out):
            waited, st = os.waitpid(pid, 0 if (not pipes or timed_out) else os.WNOHANG)
            if waited:
                status = st
        if status is not None and deadline < 0:
            elapsed = time.monotonic() - start
            # processes the code left behind (a setsid sleeper holding the pipes open) must
            # not hold the reply
            _kill_all(uids, 0.5)
            if judge_fd >= 0:
                poller.unregister(judge_fd)
                judge_fd = -1
            deadline = time.monotonic() + drain_grace
            if in_w >= 0:
                poller.unregister(in_w)
                os.close(in_w)
                in_w = -1
        if status is not None and (not pipes or time.monotonic() >= deadline):
            break
        if status is not None:
            wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
        else:
            wait_ms = max(1, int((deadline_run - time.monotonic()) * 1000) + 1)
            if pidfd < 0:
                wait_ms = min(wait_ms, 20)
        for fd, ev in poller.poll(wait_ms):
            if fd == judge_fd:
                served = _serve_judge(judge_sock, argv[5], judge[1], uids[1], forbidden, started)
                started = True
                if not served:
                    poller.unregister(judge_fd)
                    judge_fd = -1
            elif fd == pidfd:
                poller.unregister(pidfd)
                os.close(pidfd)
                pidfd = -1
                if status is None:
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
    if judge_sock is not None:
        judge_sock.close()
    return status, elapsed, timed_out, (kept[out_r], total[out_r]), (kept[err_r], total[err_r])


# ---------------------------------------------------------------------- the verified reset


def _wipe(top):
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)


def _ipc_objects():
    """SysV IPC objects in the container's private IPC namespace: (kind, id, creator uid)."""
    found = []
    # the column of the id and of the creator's uid in each /proc/sysvipc table
    for kind, cuid_col in (("shm", 9), ("msg", 9), ("sem", 6)):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > cuid_col:
                found.append((kind, int(cols[1]), int(cols[cuid_col])))
    return found


def _remove_ipc():
    """IPC_RMID each object as its creator's uid (the agent holds no CAP_SYS_ADMIN)."""
    objects = _ipc_objects()
    if not objects:
        return
    libc = _load_libc()
    for kind, ident, cuid in objects:
        os.seteuid(cuid)
        try:
            if kind == "shm":
                libc.shmctl(ident, IPC_RMID, None)
            elif kind == "msg":
                libc.msgctl(ident, IPC_RMID, None)
            else:
                libc.semctl(ident, 0, IPC_RMID)
        finally:
            os.seteuid(0)


def _unix_sockets():
    """Unix sockets of the container's network namespace that are not the agent's own."""
    try:
        with open("/proc/net/unix") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return 0
    inodes = [int(cols[6]) for cols in map(str.split, lines) if len(cols) > 6]
    return len([i for i in inodes if i not in _own_sockets])


#: what the network namespace keeps of a run's traffic: its counters, and its socket counts.
#: The counts (/proc/net/sockstat*) stand for the socket tables (/proc/net/tcp, udp, raw, v4
#: and v6): every entry of those is a hashed socket (`inuse`) or a TIME_WAIT one (`tw`), and
#: reading a table walks the whole host's hash table (~5 ms of CPU per run here)
NET_COUNTERS = ("/proc/net/dev", "/proc/net/snmp", "/proc/net/snmp6", "/proc/net/netstat")
NET_SOCKETS = ("/proc/net/sockstat", "/proc/net/sockstat6")
#: fields of sockstat counted for the whole host, not the namespace: never a run's trace alone
HOST_WIDE = {(b"TCP:", b"orphan"), (b"TCP:", b"alloc"), (b"TCP:", b"mem"), (b"UDP:", b"mem")}
_net_clean = None


def _read_or_empty(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _socket_counts(text):
    """The namespace's own socket counts of a sockstat file: (protocol, field, value)."""
    counts = []
    for line in text.splitlines():
        words = line.split()
        for i in range(1, len(words) - 1, 2):
            if (words[0], words[i]) not in HOST_WIDE:
                counts.append((words[0], words[i], words[i + 1]))
    return counts


def _net_state():
    return [_read_or_empty(p) for p in NET_COUNTERS] + [
        _socket_counts(_read_or_empty(p)) for p in NET_SOCKETS
    ]


def _reset_roots():
    """The writable roots as a new container has them: no extended attributes (user.* data,
    POSIX ACLs), owner root, mode 0700 (the private ones), times zero."""
    for d in WRITABLE:
        if not os.path.isdir(d):
            continue
        for name in _xattrs(d):
            os.removexattr(d, name)
        if d in PRIVATE:
            os.chown(d, 0, 0)
            os.chmod(d, 0o700)
        os.utime(d, (0, 0))


def _xattrs(path):
    try:
        return os.listxattr(path)
    except OSError:  # a file system without extended attributes (mqueue)
        return []


def _roots_left():
    """Roots that still carry something of the run: entries, attributes, owner, mode, times."""
    left = []
    for d in WRITABLE:
        if not os.path.isdir(d):
            continue
        st = os.stat(d)
        private = d in PRIVATE and (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (0, 0, 0o700)
        if os.listdir(d) or _xattrs(d) or private or st.st_mtime_ns or st.st_atime_ns:
            left.append(d)
    return left


def _reset(uids):
    """Back to the clean state, verified; returns None, or why the container must retire."""
    if not _kill_all(uids, 2.0):
        return f"processes survived the kill: {_others()[:10]}"
    for d in WRITABLE:
        if os.path.isdir(d):
            _wipe(d)
    _remove_ipc()
    # check, do not assume (listing a root updates its access time: reset the roots after)
    left = [d for d in WRITABLE if os.path.isdir(d) and os.listdir(d)]
    if left:
        return f"not empty after the wipe: {left}"
    _reset_roots()
    left = _roots_left()
    if left:
        return f"roots keep attributes or times after the reset: {left}"
    if _ipc_objects():
        return f"SysV IPC objects remain: {_ipc_objects()[:5]}"
    for _ in range(50):  # a dead process's sockets go away with it, not always at once
        if not _unix_sockets():
            break
        time.sleep(0.002)
    else:
        return "unix sockets remain"
    if _net_state() != _net_clean:
        return "the run left traces in the network namespace (traffic counters or sockets)"
    if _others():
        return f"a process appeared during the reset: {_others()[:10]}"
    return None


# ---------------------------------------------------------------------- replies


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


def serve_one(stdin, first, uids, runs):
    """Read the rest of one request, run it as `uids` (judge, code), reset if asked; (reply,
    out, err, keep going)."""
    reply = {
        "exit_code": -1,
        "timed_out": False,
        "oom": False,
        "stdout_len": 0,
        "stderr_len": 0,
        "stdout_total": 0,
        "stderr_total": 0,
        "duration": 0.0,
        "error": None,
        "clean": False,
        "reset_error": None,
        "runs": runs,
    }
    out = err = b""
    fields = first.split()
    reset = len(fields) > 6 and fields[6] == b"1"
    try:
        timeout_s, kill_after, out_cap, nargs, nfiles, stdin_len = fields[:6]
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
        if _filter_error:
            raise OSError(f"the agent's seccomp filter is not in place: {_filter_error}")
        judge = _precompile(cmd, files)
        _prepare(uids[1])
        _write_files(files, uids[1])
        oom_before = _oom_kills()
        status, elapsed, timed_out, (out, out_total), (err, err_total) = _run(
            cmd, uids, data, int(out_cap), timeout, max(0.5, float(kill_after)), judge
        )
        oom_after = _oom_kills()
        code = os.waitstatus_to_exitcode(status)
        reply["exit_code"] = code
        reply["duration"] = elapsed
        reply["timed_out"] = timed_out
        reply["oom"] = oom_before >= 0 and oom_after > oom_before
        reply["stdout_len"] = len(out)
        reply["stderr_len"] = len(err)
        reply["stdout_total"] = out_total
        reply["stderr_total"] = err_total
    except EOFError:
        raise
    except Exception as exc:  # report, never hang: the host turns this into SandboxError
        reply["error"] = f"{type(exc).__name__}: {exc}"
        out = err = b""
        reply["stdout_len"] = reply["stderr_len"] = 0
    if reset:
        try:
            why = _reset(uids)
        except Exception as exc:  # any doubt retires the container
            why = f"{type(exc).__name__}: {exc}"
        if why is None and 2 * runs + 3 >= UID_BLOCK:
            why = "the container's block of uids is used up"
        reply["clean"] = why is None
        reply["reset_error"] = why
    else:
        _kill_all(uids, 0.5)
    return reply, out, err, reset and reply["clean"]


def _uid_base():
    """This container's block of uids, at random: containers share the host's uids (no user
    namespace), and per-user kernel limits (inotify instances, message queue bytes, ...) are
    counted per uid across all of them."""
    blocks = (UID_HIGH - UID_LOW) // UID_BLOCK
    return UID_LOW + int.from_bytes(os.urandom(8), "big") % blocks * UID_BLOCK


_filter_error = None


def _deny_syscalls():
    """Stack this agent's seccomp filter on Docker's (see DENIED_SYSCALLS): a refused call
    fails with EPERM; a call of another architecture's ABI (x32, i386) is refused whole."""
    import ctypes

    arch, numbers = DENIED_SYSCALLS[os.uname().machine]
    refuse, allow = 0x00050000 | EPERM, 0x7FFF0000  # SECCOMP_RET_ERRNO | errno, RET_ALLOW
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, refuse), (ld, 0, 0, 0)]
    prog += [(jge, len(numbers) + 1, 0, 0x40000000)]  # x32 system calls
    prog += [(jeq, len(numbers) - i, 0, nr) for i, nr in enumerate(numbers)]
    prog += [(ret, 0, 0, allow), (ret, 0, 0, refuse)]

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint)]  # fmt: skip

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    insns = (Insn * len(prog))(*[Insn(*i) for i in prog])
    libc = _load_libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    fprog = Prog(len(prog), insns)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def main():
    global _filter_error, _net_clean
    warm_pid = _warm_up() if "--warm" in sys.argv[1:] else None
    _load_libc()
    try:
        _deny_syscalls()
    except Exception as exc:  # every request is refused: the host sees why
        _filter_error = f"{type(exc).__name__}: {exc}"
    import _json  # noqa: F401 - the judge's verdict encoder (read from the image's disk)
    import ast  # noqa: F401 - for the harness, which forks from here
    import gc
    import marshal  # noqa: F401

    gc.freeze()  # what is loaded now is never collected: forks do not copy it to scan it
    _start_zygote()
    _net_clean = _net_state()
    base = _uid_base()

    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    runs = 0
    while True:
        first = stdin.readline()
        _stop_warm_up(warm_pid)
        warm_pid = None
        if not first:
            return  # the host went away
        runs += 1
        try:
            uids = (base + 2 * runs, base + 2 * runs + 1)
            reply, out, err, again = serve_one(stdin, first, uids, runs)
        except EOFError:
            return
        stdout.write(_reply_line(reply) + bytes(out) + bytes(err))
        stdout.flush()
        if not again:
            return


if __name__ == "__main__":
    main()
