"""The embedding API: `from treadle.api import Flow` (see `treadle.runtime.api`)."""

from treadle.runtime.api import Flow, RunResult, load

__all__ = ["Flow", "RunResult", "load"]
