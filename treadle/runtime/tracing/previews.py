"""Value previews: what a trace keeps of a span's inputs and outputs.

A value is recorded whole when small, else cut and marked, with the sha256 of the whole value's
canonical JSON so runs can be compared without storing everything. Large inputs that repeat
are stored once per trace, by hash (`BLOB_MIN`, `Tracer.blob`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import orjson

#: longest text kept in a trace preview; longer text is cut and marked
MAX_TEXT = 2000
#: most list items / record fields kept in a preview
MAX_ITEMS = 50
#: canonical JSON this short cannot hold anything `_truncate` would cut (51 one-character list
#: items already take 103 bytes, and a longer string than MAX_TEXT takes more)
_NEVER_CUT = 2 * (MAX_ITEMS + 1)
#: inputs at least this large (sandbox files) are stored once per trace, by hash
BLOB_MIN = 1024


def summarize(value: Any) -> dict[str, Any]:
    """A preview of a value: `{"value": v}` when whole; when cut, also `truncated`, `bytes` and
    the `sha256` of the full canonical JSON (a whole value is its own fingerprint; see
    `value_sha256`)."""
    kind = type(value)
    if kind is dict:  # a step's arguments, a workflow's outputs: usually a few scalars
        if len(value) <= MAX_ITEMS and _flat(value.values()) and _text_keys(value):
            return {"value": dict(value)}
    elif kind is str:
        if len(value) <= MAX_TEXT:
            return {"value": value}
    elif kind in _SCALARS:
        return {"value": value}
    elif kind is list and len(value) <= MAX_ITEMS and _flat(value):
        return {"value": list(value)}
    data = canonical_bytes(value)
    if len(data) <= _NEVER_CUT:
        # a JSON-native copy, so later changes to the value do not reach the trace
        return {"value": orjson.loads(data)}
    preview, cut = _truncate(value)
    if not cut:
        return {"value": preview}
    return {
        "value": preview,
        "truncated": True,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


_SCALARS = frozenset((type(None), bool, int, float))


def _flat(values: Iterable[Any]) -> bool:
    """Whether every value is a scalar or a short text: a copy of the container is then a
    whole preview, with nothing to cut."""
    for v in values:
        kind = type(v)
        if kind is str:
            if len(v) > MAX_TEXT:
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _text_keys(value: dict[Any, Any]) -> bool:
    # a loop, not all(...): no generator to build on a path taken for every step
    for key in value:  # noqa: SIM110
        if type(key) is not str:
            return False
    return True


def value_sha256(summary: Any) -> str | None:
    """The sha256 of the canonical JSON of the value a preview stands for."""
    if not isinstance(summary, dict) or "value" not in summary:
        return None
    found = summary.get("sha256")
    if isinstance(found, str):
        return found
    return hashlib.sha256(canonical_bytes(summary["value"])).hexdigest()


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) as bytes: orjson, or the standard
    library for what orjson refuses (non-text keys, integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=json_default, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(
            _text_keyed(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=json_default,
        ).encode()


def _text_keyed(value: Any) -> Any:
    """`value` with every record key as text (JSON's keys are; mixed keys cannot be sorted)."""
    if isinstance(value, dict):
        return {str(k): _text_keyed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text_keyed(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode()


def json_default(value: Any) -> Any:
    """What JSON cannot hold as is: a pydantic model as its JSON form, a set sorted, else the
    repr (a trace never fails on a value it cannot encode)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def _truncate(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        if len(value) <= MAX_TEXT:
            return value, False
        return value[:MAX_TEXT] + f"…[+{len(value) - MAX_TEXT} chars]", True
    if isinstance(value, list | tuple):
        items = [_truncate(v) for v in value[:MAX_ITEMS]]
        out = [v for v, _ in items]
        cut = len(value) > MAX_ITEMS or any(c for _, c in items)
        if len(value) > MAX_ITEMS:
            out.append(f"…[+{len(value) - MAX_ITEMS} items]")
        return out, cut
    if isinstance(value, dict):
        keys = list(value)[:MAX_ITEMS]
        pairs = {str(k): _truncate(value[k]) for k in keys}
        cut = len(value) > MAX_ITEMS or any(c for _, c in pairs.values())
        return {k: v for k, (v, _) in pairs.items()}, cut
    if value is None or isinstance(value, bool | int | float):
        return value, False
    return _truncate(json_default(value))
