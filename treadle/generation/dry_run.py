"""The dry run: each compiled candidate runs once on a scripted model, to catch what only shows
at run time (a value of the wrong shape reaching an operator), before anyone spends real model
calls on it. It also counts the calls and sandbox runs, which must stay within the static
cost bound.

The scripted model answers every prompt with one reply that every operator can read (a final
answer, a verdict, a fenced `solve()`); the code it returns is this module's own, so the
process sandbox (no isolation) is enough unless the caller asks for Docker.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from treadle.runtime.ir import Program, Workflow
from treadle.runtime.models.base import Message
from treadle.runtime.types import parse_type

SCRIPTED_REPLY = """Thought: the dry run answers every prompt alike.
Answer: 42
VERDICT: approved
```python
def solve():
    return 42
```"""


class DryRun(BaseModel):
    ok: bool
    error: str | None = None
    model_calls: int = 0
    sandbox_runs: int = 0
    #: map step name → how many items its list had (for the per-item cost terms)
    map_items: dict[str, int] = {}


def sample_value(type_text: str) -> Any:
    t = parse_type(type_text)
    return _sample(t.kind, t.item.kind if t.item is not None else None)


def _sample(kind: str, item: str | None) -> Any:
    if kind == "number":
        return 3
    if kind == "boolean":
        return True
    if kind == "code":
        return "def f(x):\n    return x\n"
    if kind == "json":
        return {"value": 1}
    if kind == "list":
        return [_sample(item or "text", None), _sample(item or "text", None)]
    return "a sample input for the dry run"


def sample_inputs(wf: Workflow) -> dict[str, Any]:
    return {f.name: sample_value(f.type) for f in wf.inputs}


def _reply(_messages: list[Message]) -> str:
    return SCRIPTED_REPLY


async def dry_run(program: Program, *, sandbox: str = "process") -> DryRun:
    from treadle.errors import TreadleError
    from treadle.flow import Flow
    from treadle.runtime.models.scripted import ScriptedBackend
    from treadle.runtime.scheduler import RunOptions

    flow = Flow(program)
    backend = ScriptedBackend(_reply)
    wf = program.workflows[program.entry]
    try:
        result = await flow.run(
            sample_inputs(wf),
            model=backend,
            cache=False,
            sandbox=sandbox,
            options=RunOptions(retries=0),
        )
    except TreadleError as e:
        spans = getattr(e, "spans", [])
        return DryRun(
            ok=False,
            error=str(e).splitlines()[0][:300],
            model_calls=len(backend.calls),
            sandbox_runs=sum(1 for s in spans if s.kind == "sandbox"),
        )
    spans = result.spans
    return DryRun(
        ok=True,
        model_calls=len(backend.calls),
        sandbox_runs=sum(1 for s in spans if s.kind == "sandbox"),
        map_items=_map_items(wf, spans),
    )


def _map_items(wf: Workflow, spans: list[Any]) -> dict[str, int]:
    """How many items each top-level `for each` ran over (its span's `items` attribute)."""
    from treadle.runtime import ir

    out: dict[str, int] = {}
    for node in wf.graph.nodes:
        if isinstance(node, ir.Map):
            for s in spans:
                if s.step == node.id and isinstance(s.attrs.get("items"), int):
                    out[node.name] = s.attrs["items"]
    return out
