"""Is the installed llama-cpp-python the portable build, and does it run? Rebuild it if not.

pip builds llama-cpp-python from source with `-march=native` unless CMAKE_ARGS says otherwise,
and caches the wheel it built: a later install with the portable flags silently reinstalls the
cached native wheel. On a CPU that advertises AMX (or AVX-512) its VM does not enable, that
build dies on its first matrix product. `make install` and `make install-test` call `ensure`,
which reads the build's CPU features from `llama_print_system_info()` and runs a one-token
completion of the embedded model in a child process (so a segfault is a verdict, not the end of
the check), and rebuilds without pip's cache when either says so. `serve-once` is CI's check
that llama-cpp-python's own server answers one request before the suite runs.

    python -m treadle.runtime.models.llama_build check
    python -m treadle.runtime.models.llama_build ensure --cmake-args "-DGGML_NATIVE=OFF ..."
    python -m treadle.runtime.models.llama_build serve-once

It lives beside the llama backend because it reuses `default_model_path` and because the
system-info reading is what a backend needs to know which CPU features the build uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from treadle.runtime.models.spec import default_model_path

DIST = "llama-cpp-python"

# CPU features beyond x86-64-v3 (what the portable flags build): a kernel using them dies of
# SIGILL, or worse, where the CPU advertises them and the kernel or VM does not enable them.
BEYOND_PORTABLE = re.compile(r"AVX512\w*|AMX\w*|AVX_VNNI|AVX_VNNI_INT8")

# The child: print the build's system info, then complete one token with the embedded model.
SMOKE_CHILD = """
import sys
import llama_cpp
print("SYSTEM_INFO " + llama_cpp.llama_print_system_info().decode(errors="replace"), flush=True)
model = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False)
out = model.create_completion("The capital of France is", max_tokens=1, temperature=0.0)
print("COMPLETION " + repr(out["choices"][0]["text"]), flush=True)
"""


def parse_system_info(text: str) -> dict[str, str]:
    """`llama_print_system_info()`'s `KEY = VALUE | ...` pairs (the `CPU :` backend prefix and
    any other `NAME :` section labels dropped)."""
    pairs: dict[str, str] = {}
    for part in text.split("|"):
        if "=" not in part:
            continue
        key, _, value = part.partition("=")
        key = key.rsplit(":", 1)[-1].strip()
        if key:
            pairs[key] = value.strip()
    return pairs


def beyond_portable(info: dict[str, str]) -> list[str]:
    """The features turned on in a build that the portable flags never turn on."""
    return sorted(k for k, v in info.items() if v == "1" and BEYOND_PORTABLE.fullmatch(k))


@dataclass(frozen=True)
class BuildCheck:
    """What the child process saw: the build's features and whether one token came out."""

    system_info: str
    returncode: int
    completion: str | None
    stderr_tail: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def rebuild_needed(self) -> bool:
        return bool(self.reasons)


def death(returncode: int) -> str:
    """How a child ended, in words: `killed by SIGSEGV` or `exit status 1`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def check_build(
    model: Path | None = None, *, child: str = SMOKE_CHILD, timeout: float = 300.0
) -> BuildCheck:
    """Run the smoke child (`child`, Python source taking the GGUF path as argv[1]) and judge
    the build: non-portable features or a child that did not complete one token both mean a
    rebuild."""
    path = model or default_model_path()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", child, str(path)],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or b""  # captured so far; bytes on POSIX whatever `text` says
        out = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        err, code = f"no answer in {timeout:.0f} s", -int(signal.SIGKILL)
    info = next((ln[12:] for ln in out.splitlines() if ln.startswith("SYSTEM_INFO ")), "")
    completion = next((ln[11:] for ln in out.splitlines() if ln.startswith("COMPLETION ")), None)
    reasons = []
    extra = beyond_portable(parse_system_info(info))
    if extra:
        reasons.append(f"not the portable build: {', '.join(f'{k} = 1' for k in extra)}")
    if code != 0 or completion is None:
        reasons.append(f"the one-token smoke test failed ({death(code)})")
    return BuildCheck(info, code, completion, err[-2000:], reasons)


def rebuild_command(cmake_args: str) -> tuple[list[str], dict[str, str]]:
    """pip's command and environment that rebuild the installed version from source with
    `cmake_args`, bypassing the wheel cache (which would hand back the old build)."""
    version = metadata.version(DIST)
    argv = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--force-reinstall",
            "--no-deps", f"{DIST}=={version}"]  # fmt: skip
    return argv, {**os.environ, "CMAKE_ARGS": cmake_args, "FORCE_CMAKE": "1"}


def report(check: BuildCheck) -> str:
    lines = [f"{DIST} {metadata.version(DIST)}: {check.system_info.strip() or '(no system info)'}"]
    if check.rebuild_needed:
        lines += [f"  rebuild needed: {r}" for r in check.reasons]
        if check.stderr_tail.strip():
            lines.append("  child's stderr (end):\n" + check.stderr_tail.strip()[-800:])
    else:
        lines.append(f"  portable, one token completed: {check.completion}")
    return "\n".join(lines)


def ensure(cmake_args: str) -> int:
    """Check; rebuild once if needed; check again. 0 when the build is portable and runs."""
    first = check_build()
    print(report(first), flush=True)
    if not first.rebuild_needed:
        return 0
    argv, env = rebuild_command(cmake_args)
    print(f"rebuilding: CMAKE_ARGS={cmake_args!r} {' '.join(argv)}", flush=True)
    if subprocess.run(argv, env=env).returncode != 0:
        print(f"error: rebuilding {DIST} failed (see pip's output above)", file=sys.stderr)
        return 1
    second = check_build()
    print(report(second), flush=True)
    if second.rebuild_needed:
        print(f"error: {DIST} still fails after a clean rebuild", file=sys.stderr)
        return 1
    return 0


def server_argv(model: Path, port: int, *, n_ctx: int = 2048, n_threads: int = 1) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for `model` on 127.0.0.1:`port`."""
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model),
        "--model_alias", "smollm2",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_completion(base: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Wait for the server to list its model, then complete one token; raise on failure."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({death(proc.returncode)}) before answering")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                if r.status == 200:
                    break
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer in {timeout:.0f} s")
        time.sleep(0.25)
    body = json.dumps({"model": "smollm2", "prompt": "Hello", "max_tokens": 1}).encode()
    request = urllib.request.Request(
        f"{base}/completions", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            answer = json.load(r)
    except (OSError, ValueError) as exc:
        try:
            state = f"the server {death(proc.wait(5))}"
        except subprocess.TimeoutExpired:
            state = "the server still running"
        raise RuntimeError(f"the completion request failed ({exc}; {state})") from exc
    return str(answer["choices"][0]["text"])


def stop_server(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_once(log: Path, timeout: float = 180.0) -> int:
    """Start the server on the embedded model, complete one request, stop it. 0 on success;
    otherwise 1, with why and the end of the server's log on stderr."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_argv(default_model_path(), port), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        text = _first_completion(f"http://127.0.0.1:{port}/v1", proc, timeout)
    except (RuntimeError, KeyError, IndexError, TypeError) as exc:
        tail = log.read_text(errors="replace")[-3000:]
        print(f"error: llama_cpp.server: {exc}\n--- {log} (end) ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        stop_server(proc)
    print(f"llama_cpp.server on 127.0.0.1:{port} completed one request: {text!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m treadle.runtime.models.llama_build")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="exit 1 when the installed build needs a rebuild")
    rebuild = sub.add_parser("ensure", help="check, and rebuild with --cmake-args if needed")
    rebuild.add_argument("--cmake-args", required=True)
    serve = sub.add_parser("serve-once", help="start llama_cpp.server, complete one request")
    serve.add_argument(
        "--log", type=Path, default=Path(tempfile.gettempdir()) / "treadle-llama-server-check.log"
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        check = check_build()
        print(report(check))
        return 1 if check.rebuild_needed else 0
    if args.command == "ensure":
        return ensure(args.cmake_args)
    return serve_once(args.log)


if __name__ == "__main__":
    sys.exit(main())
