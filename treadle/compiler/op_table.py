"""The operator signatures as a table, so a fresh `treadle check` need not import every operator.

The live registry (`treadle.stdlib_ops.registry`) imports each operator's module and builds its
pydantic models to derive a signature; that is most of a small check's start-up. The compiler
reads only names and signatures, so the first process writes them to a JSON table named by a
hash of the operator library's source (every `treadle/stdlib_ops` module and the type module),
the Python and the pydantic versions, and later processes read that table instead. Any change
to those sources names another table, so a stale one is never read. A test keeps the table equal
to the live registry.

When the registry is already imported (an embedding program, a test, or anyone who may have
registered operators of their own), the live registry is used: it is what that process sees.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treadle.compiler.build_cache import cache_dir, digest, write_atomic
from treadle.runtime.types import NumberRange, Type

_PACKAGE = Path(__file__).resolve().parents[1]
#: bump when the table's layout changes
TABLE_VERSION = 3


class TableParam:
    """A parameter as `registry.Param` has it (plain classes: a dataclass's generated methods
    cost more start-up than this module saves)."""

    __slots__ = ("description", "name", "prep", "range", "required", "type")

    def __init__(
        self,
        name: str,
        type: Type,
        prep: str | None,
        required: bool,
        description: str,
        range: NumberRange | None = None,
    ):
        self.name, self.type, self.prep = name, type, prep
        self.required, self.description, self.range = required, description, range


class TableOption:
    """An option as `registry.Option` has it."""

    __slots__ = ("default", "description", "name", "range", "type")

    def __init__(
        self,
        name: str,
        type: Type,
        default: Any,
        description: str,
        range: NumberRange | None = None,
    ) -> None:
        self.name, self.type, self.default, self.description = name, type, default, description
        self.range = range


class TableSignature:
    """What the compiler reads of `registry.Signature`, with the same lookups."""

    __slots__ = ("common", "item_of", "options", "output", "params")

    def __init__(
        self,
        params: tuple[TableParam, ...],
        options: tuple[TableOption, ...],
        output: Type,
        common: tuple[TableOption, ...],
        item_of: str | None = None,
    ) -> None:
        self.params, self.options, self.output, self.common = params, options, output, common
        self.item_of = item_of

    @property
    def subject(self) -> TableParam | None:
        return next((p for p in self.params if p.prep is None), None)

    def by_prep(self, word: str) -> TableParam | None:
        return next((p for p in self.params if p.prep == word), None)

    def option(self, name: str) -> TableOption | None:
        return next((o for o in (*self.options, *self.common) if o.name == name), None)


class TableOperator:
    __slots__ = ("name", "signature", "summary")

    def __init__(self, name: str, summary: str, signature: TableSignature) -> None:
        self.name, self.summary, self.signature = name, summary, signature


def operators() -> Mapping[str, Any]:
    """Every operator by name: the live registry if it is imported, else the table (written
    from the live registry on first use)."""
    if "treadle.stdlib_ops.registry" in sys.modules:
        return _live()
    return _table()


@functools.cache
def _table() -> Mapping[str, Any]:
    folder = cache_dir()
    path = folder / f"operators-{source_hash()}.json" if folder is not None else None
    if path is not None:
        try:
            return load(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or unreadable: derive it again
    live = _live()
    if path is not None:
        try:
            data = json.dumps(dump(live), sort_keys=True).encode()
        except (TypeError, ValueError):  # a default JSON cannot hold: no table, live only
            return live
        write_atomic(path, data)
    return live


def _live() -> Mapping[str, Any]:
    from treadle.stdlib_ops.registry import operators as registry

    return registry()


def source_hash() -> str:
    """A hash of everything a signature is derived from."""
    from pydantic.version import VERSION

    files = sorted((_PACKAGE / "stdlib_ops").rglob("*.py"))
    files.append(_PACKAGE / "runtime" / "types.py")
    parts: list[bytes | str] = [f"table {TABLE_VERSION}", VERSION]
    for f in files:
        parts += [f.relative_to(_PACKAGE).as_posix(), f.read_bytes()]
    return digest(*parts)


def dump(ops: Mapping[str, Any]) -> dict[str, Any]:
    """The table of a registry's operators, as JSON data."""
    from treadle.stdlib_ops.registry import COMMON_OPTIONS

    def option(o: Any) -> dict[str, Any]:
        t = o.type.model_dump(mode="json")
        return {
            "name": o.name,
            "type": t,
            "default": o.default,
            "description": o.description,
            "range": _dump_range(o.range),
        }

    return {
        "version": TABLE_VERSION,
        "common": [option(o) for o in COMMON_OPTIONS],
        "operators": {
            name: {
                "summary": op.summary,
                "params": [
                    {
                        "name": p.name,
                        "type": p.type.model_dump(mode="json"),
                        "prep": p.prep,
                        "required": p.required,
                        "description": p.description,
                        "range": _dump_range(p.range),
                    }
                    for p in op.signature.params
                ],
                "options": [option(o) for o in op.signature.options],
                "output": op.signature.output.model_dump(mode="json"),
                "item_of": op.signature.item_of,
            }
            for name, op in ops.items()
        },
    }


def load(data: dict[str, Any]) -> dict[str, TableOperator]:
    """Operators from a table's JSON data (no validation: the data was written by `dump`)."""
    if data["version"] != TABLE_VERSION:
        raise ValueError("another table layout")

    def option(o: dict[str, Any]) -> TableOption:
        return TableOption(
            o["name"], to_type(o["type"]), o["default"], o["description"], _load_range(o["range"])
        )

    common = tuple(option(o) for o in data["common"])
    out = {}
    for name, op in data["operators"].items():
        params = tuple(
            TableParam(
                p["name"],
                to_type(p["type"]),
                p["prep"],
                p["required"],
                p["description"],
                _load_range(p["range"]),
            )
            for p in op["params"]
        )
        options = tuple(option(o) for o in op["options"])
        sig = TableSignature(params, options, to_type(op["output"]), common, op["item_of"])
        out[name] = TableOperator(name, op["summary"], sig)
    return out


def _dump_range(r: NumberRange | None) -> dict[str, Any] | None:
    return None if r is None else r.model_dump(mode="json")


def _load_range(d: dict[str, Any] | None) -> NumberRange | None:
    return None if d is None else NumberRange.model_construct(**d)


def to_type(d: dict[str, Any]) -> Type:
    """A `Type` from its JSON dump, built as validation would build it."""
    item = d.get("item")
    return Type.model_construct(
        kind=d["kind"],
        item=to_type(item) if item is not None else None,
        name=d.get("name"),
        fields=tuple((k, to_type(v)) for k, v in d.get("fields", ())),
        choices=tuple(d.get("choices", ())),
    )
