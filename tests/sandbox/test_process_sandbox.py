"""The opt-in process sandbox: no isolation, but limits and timeouts still hold."""

from __future__ import annotations

import os
import time

import pytest

from treadle.errors import SandboxError
from treadle.runtime.sandbox import Limits, open_sandbox


async def test_process_sandbox_warns_and_enforces_limits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sb = await open_sandbox("process")
    assert "does NOT isolate" in capsys.readouterr().err
    r = await sb.run(["python3", "m.py"], files={"m.py": b"print(input()*2)"}, stdin=b"ab\n")
    assert r.ok and r.stdout == "abab\n"
    t = time.monotonic()
    r = await sb.run(
        ["python3", "-c", "import signal,time\nsignal.signal(15, signal.SIG_IGN)\ntime.sleep(99)"],
        limits=Limits(timeout_s=1),
    )
    assert r.timed_out and time.monotonic() - t < 4
    r = await sb.run(
        ["python3", "-c", "import sys\nfor _ in range(100): sys.stdout.write('x' * 2**20)"],
        limits=Limits(output_bytes=1000),
    )
    assert r.stdout_truncated and len(r.stdout) == 1000
    os.environ["TREADLE_HOST_SECRET"] = "s3cr3t"
    try:
        r = await sb.run(["python3", "-c", "import os; print(dict(os.environ))"])
        assert "s3cr3t" not in r.stdout
    finally:
        del os.environ["TREADLE_HOST_SECRET"]
    r = await sb.run(["python3", "-c", "x = bytearray(1 << 30)"], limits=Limits(memory_mb=128))
    assert not r.ok and "MemoryError" in r.stderr
    with pytest.raises(SandboxError):
        await sb.run(["true"], files={"../x": b""})
