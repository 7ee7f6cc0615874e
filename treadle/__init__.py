"""treadle: a workflow language for LLM agents, its compiler, and a sandboxed runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Flow", "RunResult", "__version__"]

if TYPE_CHECKING:
    from treadle.runtime.api import Flow, RunResult


def __getattr__(name: str) -> Any:
    """`treadle.Flow` and `treadle.RunResult`, imported on first use so `import treadle` stays
    cheap."""
    if name in ("Flow", "RunResult"):
        from treadle.runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'treadle' has no attribute {name!r}")
