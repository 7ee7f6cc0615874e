"""No public function takes more than about 12 parameters: settings travel in value objects
(`Scoring`, `RowSelection`, `RunConfig`, `Epochs`, `RankSettings`, `SandboxConfig`, ...), not in
30-parameter signatures. A record's generated `__init__` (a dataclass, a pydantic model) lists
its fields, and a CLI command's parameters are its options: neither is a call signature to
keep short."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator

from pydantic import BaseModel

import treadle

LIMIT = 12


def _public_callables() -> Iterator[tuple[str, Callable[..., object]]]:
    for info in pkgutil.walk_packages(treadle.__path__, "treadle."):
        parts = info.name.split(".")[1:]
        if parts[0] == "cli" or any(p.startswith("_") for p in parts):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                record = dataclasses.is_dataclass(obj) or issubclass(obj, BaseModel)
                for attr, fn in vars(obj).items():
                    if inspect.isfunction(fn) and (
                        (attr == "__init__" and not record) or not attr.startswith("_")
                    ):
                        yield f"{module.__name__}.{name}.{attr}", fn


def _count(fn: Callable[..., object]) -> int:
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return sum(
        1
        for p in inspect.signature(fn).parameters.values()
        if p.name not in ("self", "cls") and p.kind not in skip
    )


def test_no_public_function_takes_more_than_about_twelve_parameters() -> None:
    found = dict(_public_callables())
    assert "treadle.eval.evaluate.evaluate" in found and "treadle.flow.Flow.run" in found
    long = sorted((n, name) for name, fn in found.items() if (n := _count(fn)) > LIMIT)
    assert not long, "public functions with long parameter lists: " + ", ".join(
        f"{name} ({n})" for n, name in long
    )


def test_the_check_counts_what_it_should() -> None:
    def wide(a: int, b: int, *args: int, c: int = 0, **kw: int) -> None: ...

    assert _count(wide) == 3
