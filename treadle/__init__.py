"""treadle: a workflow language for LLM agents, its compiler, and a sandboxed runtime."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from treadle.version import __version__

#: public names, imported on first use so `import treadle` stays cheap: name → (module, attribute);
#: an attribute of None means the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "Flow": ("treadle.flow", "Flow"),
    "RunResult": ("treadle.flow", "RunResult"),
    "Session": ("treadle.runtime.session", "Session"),
    "SandboxConfig": ("treadle.runtime.session", "SandboxConfig"),
    "RunOptions": ("treadle.runtime.scheduler", "RunOptions"),
    "Scoring": ("treadle.eval.options", "Scoring"),
    "RowSelection": ("treadle.eval.options", "RowSelection"),
    "RunConfig": ("treadle.eval.options", "RunConfig"),
    "Epochs": ("treadle.eval.options", "Epochs"),
    "LocalExecutor": ("treadle.eval.executors", "LocalExecutor"),
    "RayExecutor": ("treadle.eval.executors", "RayExecutor"),
    "evaluate": ("treadle.eval.evaluate", "evaluate"),
    "evaluate_sync": ("treadle.eval.evaluate", "evaluate_sync"),
    "rewards": ("treadle.rewards", None),
    "attribute": ("treadle.studies.attribution", "attribute"),
    "rank": ("treadle.studies.ranking", "rank"),
    "generate": ("treadle.generation", "generate"),
    "optimize": ("treadle.optimization", "optimize"),
    "optimize_sync": ("treadle.optimization", "optimize_sync"),
    "OptimizeSettings": ("treadle.optimization", "OptimizeSettings"),
}

__all__ = [
    "Epochs",
    "Flow",
    "LocalExecutor",
    "OptimizeSettings",
    "RayExecutor",
    "RowSelection",
    "RunConfig",
    "RunOptions",
    "RunResult",
    "SandboxConfig",
    "Scoring",
    "Session",
    "__version__",
    "attribute",
    "evaluate",
    "evaluate_sync",
    "generate",
    "optimize",
    "optimize_sync",
    "rank",
    "rewards",
]

if TYPE_CHECKING:
    from treadle.flow import Flow, RunResult


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'treadle' has no attribute {name!r}")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value
