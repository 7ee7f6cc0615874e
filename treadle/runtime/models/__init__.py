"""Model backends behind one async interface; `load_model(spec)` picks one from a spec string.

Importing this package is cheap: llama_cpp, httpx and asyncio_throttle load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.runtime.models.base import (
    Completion,
    GenParams,
    Message,
    ModelBackend,
    Usage,
)
from treadle.runtime.models.spec import (
    SPEC_HELP,
    GrammarMode,
    ModelSpec,
    SpecOptions,
    default_model_path,
    load_model,
    parse_spec,
)

if TYPE_CHECKING:
    from treadle.runtime.models.llama import LlamaBackend
    from treadle.runtime.models.openai import OpenAIBackend
    from treadle.runtime.models.scripted import ScriptedBackend

__all__ = [
    "SPEC_HELP",
    "Completion",
    "GenParams",
    "GrammarMode",
    "LlamaBackend",
    "Message",
    "ModelBackend",
    "ModelSpec",
    "OpenAIBackend",
    "ScriptedBackend",
    "SpecOptions",
    "Usage",
    "default_model_path",
    "load_model",
    "parse_spec",
]

_LAZY = {
    "LlamaBackend": "treadle.runtime.models.llama",
    "OpenAIBackend": "treadle.runtime.models.openai",
    "ScriptedBackend": "treadle.runtime.models.scripted",
}


def __getattr__(name: str) -> Any:
    """Backend classes load on first access, so importing the package stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
