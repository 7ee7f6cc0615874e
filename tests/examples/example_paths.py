"""Reading the path a run took from its trace spans: which steps ran, which were skipped, how
many turns each loop made, which arm each branch took, and the events operators recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treadle.api import Flow, RunResult
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.tracing import Span

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: ops of spans that are not operator steps: composites and their parts
_COMPOSITE = ("branch", "loop", "map", "call")
_PARTS = ("turn", "item")


@dataclass
class Path_:
    """The path of one run. Operator steps by name, composite nodes by IR id (`wf.if1`)."""

    #: operator steps that ran, in start order (a name once, however many turns ran it)
    ran: list[str] = field(default_factory=list)
    #: operator steps of untaken arms
    skipped: list[str] = field(default_factory=list)
    #: step name → how many times it ran (loop turns run a step more than once)
    counts: dict[str, int] = field(default_factory=dict)
    #: loop id → number of turns
    turns: dict[str, int] = field(default_factory=dict)
    #: branch id → index of the arm taken (the last arm is the else)
    arms: dict[str, int | None] = field(default_factory=dict)
    #: workflow calls that ran: (step name, workflow)
    calls: list[tuple[str, str]] = field(default_factory=list)
    #: (step name, event name, attributes)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def path_of(spans: list[Span]) -> Path_:
    p = Path_()
    for s in spans:
        if s.kind != "step" or s.op in _PARTS:
            continue
        composite = s.op in _COMPOSITE
        if s.status == "skipped":
            if not composite and s.name not in p.skipped:
                p.skipped.append(s.name)
            continue
        if s.status != "ok":
            continue
        if s.op == "loop":
            p.turns[str(s.step)] = s.attrs["iterations"]
        elif s.op == "branch":
            p.arms[str(s.step)] = s.attrs.get("arm")
        elif s.op == "call":
            p.calls.append((s.name, s.attrs.get("workflow", "")))
        else:
            if s.name not in p.ran:
                p.ran.append(s.name)
            p.counts[s.name] = p.counts.get(s.name, 0) + 1
        for e in s.events:
            attrs = {k: v for k, v in e.items() if k not in ("name", "time")}
            p.events.append((s.name, e.get("name", ""), attrs))
    return p


async def run_example(
    file: str, inputs: dict[str, Any], script: Any, *, workflow: str | None = None
) -> tuple[RunResult, Path_, ScriptedBackend]:
    """Compile `examples/<file>` and run it on a scripted model through the real scheduler
    (code runs in the default sandbox: Docker)."""
    model = ScriptedBackend(script)
    flow = Flow.load(EXAMPLES / file)
    result = await flow.run(inputs, workflow=workflow, model=model, cache=False, trace=None, seed=1)
    return result, path_of(result.spans), model
