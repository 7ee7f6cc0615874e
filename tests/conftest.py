"""What every test area shares: a real server process on 127.0.0.1, started and awaited.

The llama.cpp server (model and generation tests) and Arize Phoenix (tracing) are started the
same way: a process, a URL that answers 200 once it is ready, a log that explains a failure, and
an end that never leaves the process behind. Traffic stays on loopback.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from treadle.runtime.models.llama_build import server_argv, stop_server


def free_port() -> int:
    """A port nothing listens on (bound and released; the race is harmless on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    argv: list[str],
    ready_url: str,
    log: Path,
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv`, wait until `ready_url` answers 200, stop it afterwards. A process that
    exits or never answers fails the test (never skips it) with the end of its log."""

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=dict(env) if env else None, cwd=cwd
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{what} exited with {proc.returncode}:\n{tail()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not answer in {timeout:.0f} s:\n{tail()}")
            time.sleep(0.25)
        yield proc
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def free_ports() -> Callable[[], int]:
    """`free_port`, for fixtures of any scope."""
    return free_port


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening on it."""
    return free_port()


@pytest.fixture(scope="session")
def server() -> Callable[..., AbstractContextManager[subprocess.Popen[bytes]]]:
    """`serve`: start a server process and wait until it answers (see its docstring)."""
    return serve


@pytest.fixture(scope="session")
def llama_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., AbstractContextManager[str]]:
    """Start llama-cpp-python's own OpenAI-compatible server for SmolLM2; yields its /v1 URL."""
    from treadle.runtime.models.spec import default_model_path

    @contextlib.contextmanager
    def start(*, n_ctx: int = 2048, n_threads: int | None = None) -> Iterator[str]:
        port = free_port()
        log = tmp_path_factory.mktemp("llama_server") / "server.log"
        argv = server_argv(
            default_model_path(), port, n_ctx=n_ctx, n_threads=n_threads or os.cpu_count() or 1
        )
        base = f"http://127.0.0.1:{port}/v1"
        with serve(argv, f"{base}/models", log, what="llama_cpp.server"):
            yield base

    return start
