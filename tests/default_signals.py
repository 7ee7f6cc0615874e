"""Start a child that a test signals with the default dispositions of SIGINT, SIGHUP and SIGTERM.

An ignored disposition survives fork and exec: under `nohup make test &` the suite ignores
SIGHUP (and a background job of a non-interactive shell ignores SIGINT), so would every child,
and a test that sends it Ctrl-C or a hangup would wait for nothing. `with_default_signals(argv)`
runs `argv` through a tiny launcher that resets those three, then execs it (same pid).
"""

from __future__ import annotations

import sys

RESET_THEN_EXEC = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)

# The dispositions the suite inherits under `nohup CMD &`, for the test that proves the point.
IGNORING_PARENT = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def with_default_signals(argv: list[str]) -> list[str]:
    """`argv`, started with SIGINT, SIGHUP and SIGTERM at their defaults."""
    return [sys.executable, "-c", RESET_THEN_EXEC, *argv]


def with_ignored_signals(argv: list[str]) -> list[str]:
    """`argv`, started with SIGINT and SIGHUP ignored, as `nohup CMD &` starts it."""
    return [sys.executable, "-c", IGNORING_PARENT, *argv]
