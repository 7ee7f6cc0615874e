"""treadle: a workflow language for LLM agents, its compiler, and a sandboxed runtime."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public names, imported on first use so `import treadle` stays cheap: name → (module, attribute);
#: an attribute of None means the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "Flow": ("treadle.api", "Flow"),
    "RunResult": ("treadle.api", "RunResult"),
    "evaluate": ("treadle.analysis.evaluate", "evaluate"),
    "evaluate_sync": ("treadle.analysis.evaluate", "evaluate_sync"),
    "rewards": ("treadle.rewards", None),
    "attribute": ("treadle.analysis.attribution", "attribute"),
    "rank": ("treadle.analysis.calibration", "rank"),
    "generate": ("treadle.analysis.generation", "generate"),
}

__all__ = [
    "Flow",
    "RunResult",
    "__version__",
    "attribute",
    "evaluate",
    "evaluate_sync",
    "generate",
    "rank",
    "rewards",
]

if TYPE_CHECKING:
    from treadle.api import Flow, RunResult


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'treadle' has no attribute {name!r}")
    module = importlib.import_module(target[0])
    value = module if target[1] is None else getattr(module, target[1])
    globals()[name] = value
    return value
