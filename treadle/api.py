"""The public API in one import: `from treadle.flow import Flow, Session, RunResult`.

`Flow` lives in `treadle.flow` (between the compiler and everything that runs flows); this
module only gathers the public names, so nothing inside treadle imports it.
"""

from __future__ import annotations

from treadle.flow import Flow, RunOptions, RunResult, SandboxConfig, Session, load
from treadle.optimization import OptimizeSettings, optimize

__all__ = ["Flow", "OptimizeSettings", "RunOptions", "RunResult", "SandboxConfig", "Session",
           "load", "optimize"]  # fmt: skip
