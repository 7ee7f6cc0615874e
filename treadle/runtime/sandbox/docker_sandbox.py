"""The Docker sandbox: every hardening option on, a warm pool, and two isolation modes.

`isolation="reset"` (the default): a pooled container serves many runs, one at a time. Each run
executes as a fresh uid with no capabilities; afterwards the container's agent (see guest/agent.py)
kills whatever the run left, wipes every writable place, removes IPC objects and verifies the
container is clean, and the host puts it back in the pool only on a verified reset and fewer
than `max_runs` runs; any doubt retires it. `isolation="fresh"`: every run gets a container of
its own, removed afterwards (the strictest mode; ~350 ms of engine CPU per run here).

Limits that shape the container (memory, CPUs, pids, work dir size, network) come from the pool
when they match it, else a container is started for that run alone (and removed after it).

The docker SDK blocks, so its calls run on a small thread pool; the attached socket is driven by
the event loop directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any, Literal

from treadle.errors import SandboxError
from treadle.runtime.sandbox import labels as lbl
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox
from treadle.runtime.sandbox.guest_code import AGENT_SOURCE
from treadle.runtime.sandbox.image import IMAGE, image_exists

WORKDIR = "/work"
#: the process sandbox: seconds between SIGTERM and SIGKILL at the deadline; the agent (which
#: SIGKILLs at the deadline) drains the run's output this long after it ended
KILL_AFTER = 1.0
#: extra seconds the host waits (agent start, extraction, reply) before removing the container
HOST_GRACE = 5.0
#: the warm pool grows to the number of runs in progress, up to this many idle containers
MAX_POOL = 8
#: in reset mode, a container retires after this many runs (any doubt retires it earlier)
MAX_RUNS = 200
#: what the agent (uid 0 in the container) may do, and a run (a fresh uid, no capabilities)
#: never can: run as other uids, drop the bounding set, kill, own and wipe the run's files
AGENT_CAPS = ("SETUID", "SETGID", "SETPCAP", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER")

Isolation = Literal["fresh", "reset"]
ISOLATIONS: tuple[str, ...] = ("fresh", "reset")
DEFAULT_ISOLATION: Isolation = "reset"


def connect() -> Any:
    """A low-level docker API client, or SandboxError saying how to get one."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxError(
            "The Docker sandbox needs the `docker` Python package: `pip install 'treadle[run]'` "
            "(or `pip install docker`)."
        ) from exc
    try:
        client = docker.from_env(max_pool_size=64, timeout=120)
        api = client.api
        api.ping()
    except Exception as exc:
        raise SandboxError(diagnose_connect_error(exc)) from exc
    return api


def diagnose_connect_error(exc: BaseException) -> str:
    import os

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    text = str(exc)
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        if not os.path.exists(path):
            return (
                f"No Docker engine: the socket {path} does not exist. Install and start Docker "
                "(`systemctl start docker` or `dockerd &`), or set DOCKER_HOST. On a machine "
                "without Docker, opt in to the non-isolating process sandbox explicitly."
            )
        if not os.access(path, os.R_OK | os.W_OK):
            return (
                f"No permission on the Docker socket {path}. Add your user to the `docker` "
                "group (`sudo usermod -aG docker $USER`, then log in again) or run as root."
            )
    return f"Cannot reach the Docker engine at {host}: {text}. Is the daemon running?"


def check_files(files: dict[str, bytes]) -> None:
    """Refuse names that could escape the work dir (absolute, `..`, empty)."""
    for name in files:
        p = PurePosixPath(name)
        if not name or p.is_absolute() or ".." in p.parts or "\\" in name or "\x00" in name:
            raise SandboxError(
                f"Refused file name {name!r}: sandbox file names must be relative paths inside "
                "the work dir, without `..`."
            )


def encode_request(
    command: list[str],
    files: dict[str, bytes],
    stdin: bytes,
    limits: Limits,
    *,
    reset: bool = False,
) -> bytes:
    """The agent's request (see guest/agent.py): a header line, the arguments, the files, stdin.
    `reset`: the agent resets and verifies the container after the run, for the next one."""
    check_files(files)
    parts = [
        f"{float(limits.timeout_s)!r} {float(KILL_AFTER)!r} {int(limits.output_bytes)} "
        f"{len(command)} {len(files)} {len(stdin)}{' 1' if reset else ''}\n".encode()
    ]
    for arg in command:
        raw = str(arg).encode("utf-8", "surrogateescape")
        parts += [b"%d\n" % len(raw), raw]
    for name, data in files.items():
        raw = str(PurePosixPath(name)).encode("utf-8", "surrogateescape")
        mode = 0o755 if data.startswith(b"#!") else 0o644
        parts += [b"%d %d %d\n" % (len(raw), len(data), mode), raw, data]
    parts.append(stdin)
    return b"".join(parts)


def _shape(limits: Limits) -> tuple[Any, ...]:
    """The limits fixed at container creation; timeout and output cap are per run."""
    return (limits.memory_mb, limits.cpus, limits.pids, limits.workdir_mb, limits.network)


class _Warm:
    """A started container with its agent waiting on the attached socket."""

    def __init__(self, cid: str, sock: socket.socket, keep: Any, pooled: bool) -> None:
        self.cid = cid
        self.sock = sock
        self._keep = keep  # the SocketIO/response objects that own the socket
        self.pooled = pooled  # made with the pool's shape, so it may go back to the pool
        self.runs = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class DockerSandbox(Sandbox):
    """Hardened containers, reused after a verified reset or single-use (`isolation`);
    `start()` sweeps leftovers and fills the warm pool."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        image: str = IMAGE,
        pool_size: int = 2,
        run_id: str | None = None,
        sweep: bool = True,
        api: Any = None,
        isolation: Isolation = DEFAULT_ISOLATION,
        max_runs: int = MAX_RUNS,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise SandboxError(f"unknown isolation {isolation!r}; use 'fresh' or 'reset'")
        self.isolation: Isolation = isolation
        self.max_runs = max(1, max_runs)
        self.limits = limits or Limits()
        self.image = image
        self.pool_size = max(0, pool_size)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._sweep_at_start = sweep
        self._api = api
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="treadle-docker")
        # last in, first out: a reused container runs the next request while its caches are hot
        self._pool: asyncio.Queue[_Warm] = asyncio.LifoQueue()
        self._filling = 0
        self._bg: set[asyncio.Future[Any]] = set()
        self._closed = False
        self._started = False
        self._create_sem = asyncio.Semaphore(4)
        self._active = 0  # runs in progress: the pool grows to match them (up to MAX_POOL)
        self._busy = 0  # pooled containers serving a run, that come back after it (reset)
        self.swept: list[str] = []
        self.retired: list[tuple[str, str]] = []  # (container, why) in reset mode, for tests

    # ------------------------------------------------------------------ lifecycle

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> DockerSandbox:
        if self._started:
            return self
        if self._api is None:
            self._api = await self._call(connect)
        if not await self._call(image_exists, self._api, self.image):
            raise SandboxError(
                f"The sandbox image {self.image} is missing. Build it once with "
                "`treadle sandbox build` (no registry needed: it uses mmdebstrap and your apt "
                "sources), then retry. `treadle sandbox doctor` checks the whole setup."
            )
        if self._sweep_at_start:
            self.swept = await self._call(lbl.sweep, self._api)
        self._started = True
        self._refill()
        return self

    async def aclose(self) -> None:
        self._closed = True
        while not self._pool.empty():
            warm = self._pool.get_nowait()
            self._remove_later(warm)
        while self._bg:
            await asyncio.gather(*list(self._bg), return_exceptions=True)
        # containers started by refills that finished after the drain above
        while not self._pool.empty():
            warm = self._pool.get_nowait()
            warm.close()
            with contextlib.suppress(Exception):
                await self._call(self._api.remove_container, warm.cid, force=True)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> DockerSandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ containers

    def _host_config(self, limits: Limits) -> Any:
        from docker.types import LogConfig, Ulimit

        api = self._api
        mem = f"{limits.memory_mb}m"
        return api.create_host_config(
            network_mode="bridge" if limits.network else "none",
            read_only=True,
            tmpfs={
                WORKDIR: f"rw,exec,nosuid,nodev,size={limits.workdir_mb}m,mode=0700",
                "/tmp": f"rw,nosuid,nodev,size={limits.workdir_mb}m,mode=0700",
            },
            shm_size="8m",
            cap_drop=["ALL"],
            cap_add=list(AGENT_CAPS),
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=mem,
            memswap_limit=mem,
            nano_cpus=int(limits.cpus * 1e9),
            init=True,
            ulimits=[
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="nofile", soft=256, hard=256),
            ],
            ipc_mode="private",
            # the host reads the output from the attached stream; a log driver would also copy
            # it (JSON-encoded) into a file on the host's disk, for nothing
            log_config=LogConfig(type="none"),
        )

    def _create_blocking(self, limits: Limits, warm: bool = False) -> _Warm:
        """Create, attach and start one container (runs on the thread pool)."""
        api = self._api
        config = api.create_container_config(
            self.image,
            command=[
                *("python3", "-I", "-S", "-X", "utf8", "-c", AGENT_SOURCE),
                *(["--warm"] if warm else []),
            ],
            user="0:0",  # the agent; every run drops to a fresh uid (see guest/agent.py)
            working_dir=WORKDIR,
            stdin_open=True,
            environment={},
            hostname="sandbox",
            labels=lbl.labels(self.run_id),
            network_disabled=not limits.network,
            host_config=self._host_config(limits),
        )
        # the agent sees EOF (and exits) when its owner's attach connection closes
        config["StdinOnce"] = True
        cid = api.create_container_from_config(config, None)["Id"]
        try:
            io_sock = api.attach_socket(
                cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            raw = getattr(io_sock, "_sock", io_sock)
            api.start(cid)
        except Exception:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)
            raise
        raw.setblocking(False)
        return _Warm(cid, raw, io_sock, _shape(limits) == _shape(self.limits))

    async def _create(self, limits: Limits, warm: bool = False) -> _Warm:
        async with self._create_sem:
            try:
                return await self._call(self._create_blocking, limits, warm)
            except SandboxError:
                raise
            except Exception as exc:
                raise SandboxError(
                    f"Starting a sandbox container failed: {exc}. Run `treadle sandbox doctor`."
                ) from exc

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._bg.add(fut)
        fut.add_done_callback(self._bg.discard)

    def _refill(self) -> None:
        if self._closed:
            return
        target = max(self.pool_size, min(self._active, MAX_POOL)) if self.pool_size else 0
        while self._pool.qsize() + self._filling + self._busy < target:
            self._filling += 1
            self._track(asyncio.ensure_future(self._fill_one()))

    async def _fill_one(self) -> None:
        try:
            warm = await self._create(self.limits, warm=True)
        except Exception:
            await asyncio.sleep(1.0)  # an engine hiccup: let the next take retry
            return
        finally:
            self._filling -= 1
        if self._closed:
            self._remove_later(warm)
        else:
            self._pool.put_nowait(warm)

    def _remove_later(self, warm: _Warm) -> None:
        warm.close()

        async def remove() -> None:
            with contextlib.suppress(Exception):
                await self._call(self._api.remove_container, warm.cid, force=True)

        self._track(asyncio.ensure_future(remove()))

    async def _take(self, limits: Limits) -> _Warm:
        """A container for one run: from the pool when the limits fit it, else a new one. In
        reset mode a pooled container counts as busy until it comes back."""
        reusable = self.isolation == "reset"
        if _shape(limits) == _shape(self.limits) and (self.pool_size or reusable):
            try:
                warm = self._pool.get_nowait()
            except asyncio.QueueEmpty:
                warm = None
            self._busy += reusable
            self._refill()
            if warm is None:
                try:
                    warm = await self._create(limits)
                except BaseException:
                    self._busy -= reusable
                    raise
            return warm
        return await self._create(limits)

    def _release(self, warm: _Warm, reply: dict[str, Any] | None) -> None:
        """Back to the pool after a verified reset (reset mode), else removed: any doubt (no
        reply, an agent error, a timeout, an OOM kill, a failed reset) retires a container."""
        why = self._retire_reason(warm, reply)
        if why is None and not self._closed and self._pool.qsize() < MAX_POOL:
            self._pool.put_nowait(warm)
            return
        if self.isolation == "reset" and warm.pooled:
            self.retired.append((warm.cid, why or "pool full"))
        self._remove_later(warm)

    def _retire_reason(self, warm: _Warm, reply: dict[str, Any] | None) -> str | None:
        if self.isolation != "reset" or not warm.pooled:
            return "single use"
        if reply is None:
            return "no reply"
        if reply.get("error"):
            return "agent error"
        if reply.get("timed_out"):
            return "timed out"
        if reply.get("oom"):
            return "out of memory"
        if not reply.get("clean"):
            return f"reset failed: {reply.get('reset_error')}"
        if warm.runs >= self.max_runs:
            return "max runs"
        return None

    # ------------------------------------------------------------------ a run

    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        if not self._started:
            await self.start()
        if self._closed:
            raise SandboxError("This sandbox was closed; open a new one.")
        limits = limits or self.limits
        check_files(files or {})
        start = time.monotonic()
        self._active += 1
        try:
            warm = await self._take(limits)
        except BaseException:
            self._active -= 1
            raise
        reuse = self.isolation == "reset" and warm.pooled
        request = encode_request(command, files or {}, stdin or b"", limits, reset=reuse)
        warm.runs += 1
        loop = asyncio.get_running_loop()
        reply: dict[str, Any] | None = None
        try:
            try:
                await loop.sock_sendall(warm.sock, request)
                reply = await asyncio.wait_for(
                    _read_reply(loop, warm.sock), limits.timeout_s + KILL_AFTER + HOST_GRACE
                )
            except TimeoutError:
                return ExecResult(
                    stdout="",
                    stderr="[treadle] no reply before the deadline; the container was removed\n",
                    exit_code=137,
                    timed_out=True,
                    duration_s=time.monotonic() - start,
                )
            except OSError:
                reply = None
            if reply is None:
                return await self._lost(warm, start)
        finally:
            self._active -= 1
            self._busy -= reuse
            self._release(warm, reply)
            self._refill()
        if reply.get("error"):
            raise SandboxError(f"The sandbox agent failed: {reply['error']}")
        out, err = reply["stdout"], reply["stderr"]
        code = int(reply["exit_code"])
        if code < 0:  # killed by a signal: report it the way shells and Docker do
            code = 128 - code
        return ExecResult(
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            exit_code=code,
            timed_out=bool(reply["timed_out"]),
            oom_killed=bool(reply["oom"]),
            stdout_truncated=reply["stdout_total"] > len(out),
            stderr_truncated=reply["stderr_total"] > len(err),
            duration_s=float(reply["duration"]),
        )

    async def _lost(self, warm: _Warm, start: float) -> ExecResult:
        """The agent ended without replying: the code killed it, or the OOM killer did."""
        oom = False
        code = 137
        with contextlib.suppress(Exception):
            await self._call(self._api.wait, warm.cid, timeout=5)
            state = (await self._call(self._api.inspect_container, warm.cid))["State"]
            oom = bool(state.get("OOMKilled"))
            code = int(state.get("ExitCode") or 137)
        return ExecResult(
            stdout="",
            stderr="[treadle] the sandbox process ended before replying (killed by the code "
            "or out of memory)\n",
            exit_code=code,
            oom_killed=oom,
            duration_s=time.monotonic() - start,
        )


async def _read_reply(
    loop: asyncio.AbstractEventLoop, sock: socket.socket
) -> dict[str, Any] | None:
    """Read Docker's multiplexed attach stream until the agent's reply: a JSON line, then
    `stdout_len` bytes of the code's stdout and `stderr_len` bytes of its stderr."""
    buf = bytearray()
    out = bytearray()
    header: dict[str, Any] | None = None
    body = 0
    while True:
        while len(buf) >= 8:
            stream, size = buf[0], struct.unpack_from(">I", buf, 4)[0]
            if len(buf) < 8 + size:
                break
            if stream == 1:
                out += buf[8 : 8 + size]
            del buf[: 8 + size]
        if header is None:
            nl = out.find(b"\n")
            if nl >= 0:
                header = dict(json.loads(out[:nl]))
                del out[: nl + 1]
                body = int(header.get("stdout_len") or 0) + int(header.get("stderr_len") or 0)
        if header is not None and len(out) >= body:
            n = int(header.get("stdout_len") or 0)
            header["stdout"] = bytes(out[:n])
            header["stderr"] = bytes(out[n:body])
            return header
        chunk = await loop.sock_recv(sock, 1 << 16)
        if not chunk:
            return None
        buf += chunk
