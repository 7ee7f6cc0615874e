"""IR nodes made without validation.

The compiler builds every IR node from values it has already checked, of exactly the field
types, so validating them again would only cost time; and a validated construction builds the
IR's pydantic schemas, which are deferred (`treadle.runtime.ir`) so that `treadle check` starts
without them. A test keeps what this makes equal to what validation makes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

_M = TypeVar("_M", bound=BaseModel)

#: per model class: its field names in order, their defaults, and which defaults are dicts or
#: lists (copied per node)
_FIELDS: dict[type[BaseModel], tuple[tuple[str, ...], dict[str, Any], frozenset[str]]] = {}


def ir_node(cls: type[_M], **fields: Any) -> _M:
    """What `cls(**fields)` builds for well-typed fields, minus validation (fields in their
    declared order, so dumps come out as a validated node's do)."""
    known = _FIELDS.get(cls)
    if known is None:
        defaults = {
            name: f.get_default(call_default_factory=True)
            for name, f in cls.model_fields.items()
            if not f.is_required()
        }
        mutable = frozenset(k for k, v in defaults.items() if isinstance(v, dict | list))
        known = _FIELDS[cls] = (tuple(cls.model_fields), defaults, mutable)
    names, defaults, mutable = known
    data = {}
    for name in names:
        if name in fields:
            data[name] = fields[name]
        elif name in mutable:
            data[name] = type(defaults[name])()
        else:
            data[name] = defaults[name]  # a KeyError: a required field is missing
    if len(fields) > len(data) or len(data) != len(names):
        raise TypeError(f"{cls.__name__}: unknown fields {sorted(set(fields) - set(names))}")
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
