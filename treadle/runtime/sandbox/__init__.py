"""Where LLM-written code runs: a hardened Docker container by default."""

from treadle.runtime.sandbox.base import Limits, RunResult, Sandbox

__all__ = ["Limits", "RunResult", "Sandbox"]
