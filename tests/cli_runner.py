"""`treadle ARGS` in a fresh process, as a user types it, for the CLI tests: in `cwd`, with the
compiler and model caches under `cwd/cache` so no test reads another's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def treadle(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from treadle.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TREADLE_CACHE_DIR": str(cwd / "cache")},
    )
