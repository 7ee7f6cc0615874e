"""The signal tests hold under `nohup make test &`: a parent that ignores SIGINT and SIGHUP
passes that on to every child, and `with_default_signals` takes it back off."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from default_signals import with_default_signals, with_ignored_signals

TESTS = Path(__file__).resolve().parent

SHOW = (
    "import signal\n"
    "names = {signal.SIG_DFL: 'default', signal.SIG_IGN: 'ignored'}\n"
    "print(*(names.get(signal.getsignal(s), 'handled') for s in "
    "(signal.SIGINT, signal.SIGHUP, signal.SIGTERM)))\n"
)
WAIT = "import sys, time\nprint('ready', flush=True)\ntime.sleep(60)\n"


def dispositions(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_an_ignoring_parent_is_inherited_and_the_launcher_resets_it() -> None:
    child = [sys.executable, "-c", SHOW]
    # Python installs its own SIGINT handler only where SIGINT was at its default
    assert dispositions(with_ignored_signals(child)) == "ignored ignored default"
    assert dispositions(with_ignored_signals(with_default_signals(child))) == (
        "handled default default"
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_a_reset_child_of_an_ignoring_parent_dies_of_the_signal(sig: signal.Signals) -> None:
    # the ignoring parent execs into the launcher: the child has the ignoring parent's state
    argv = with_ignored_signals(with_default_signals([sys.executable, "-c", WAIT]))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # SIGINT: Python's KeyboardInterrupt, which exits by re-raising SIGINT; SIGHUP: the default
    assert proc.returncode == -sig, err


@pytest.mark.slow  # a second pytest starts: ~30 s of plugin imports on a busy machine
def test_the_hangup_test_passes_under_nohup() -> None:
    """The tracing test that hangs up its child, run by a pytest that ignores SIGHUP and
    SIGINT (it failed there before its child was started with the default dispositions)."""
    test = f"{TESTS / 'runtime' / 'test_tracing.py'}::test_a_terminating_signal_flushes_then_kills"
    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    res = subprocess.run(
        with_ignored_signals(pytest_argv),
        capture_output=True, text=True, timeout=300, cwd=TESTS.parent,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    assert "2 passed" in res.stdout
