"""Model backends behind one async interface; `load_model(spec)` picks one from a spec string."""

from treadle.runtime.models.base import (
    Completion,
    GenParams,
    Message,
    ModelBackend,
    Usage,
)

__all__ = ["Completion", "GenParams", "Message", "ModelBackend", "Usage"]
