"""Proposals: each round's candidate child, from the optimizer model or a deterministic move,
and the gate every one goes through before it may cost an evaluation.

The optimizer's prompt is `treadle generate`'s system turn (the language's cheat-sheet and the
operator registry, the library's capabilities) and a user turn holding the parent's text, its
validation score and per-step statistics, up to k failure rows (inputs, expected, output, the
failing step), the parent's earlier children with their outcomes, and the parent's
attribution where it was measured. Decoding is `generate`'s (scope-aware grammar on the
embedded model, the server grammar where the spec asks for one, free decoding plus repair
elsewhere). The gate: compile (repairs bounded), the same signature as the seed, de-duplication
by IR hash against every flow seen, the dry run, the static cost bound. A proposal that fails
the gate is recorded and never evaluated.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from treadle.eval.report import EvalReport, RowReport
from treadle.generation.decoding.vocabulary import load_capabilities, vocabulary
from treadle.generation.generator import Candidate, GenerationSettings, generate, judge_candidate
from treadle.generation.prompt import system_prompt
from treadle.optimization.record import Experience, Node
from treadle.runtime.models.base import Message, ModelBackend

Verdict = Literal[
    "valid", "errors", "undecoded", "duplicate", "dry run failed", "signature", "no change"
]
#: characters of one value shown in a failure row
SHOWN = 400

USER = """\
You improve a workflow for a task, one small change at a time.

Task: {task}

The current workflow ({note} Validation score: {score}.):
```
{text}
```

Per step (runs, failures, tokens):
{steps}

Validation rows it got wrong:
{failures}

Earlier changes to this workflow and what came of them:
{experience}

What each step carries (counterfactual attribution: removing a step whose effect is 0 or \
below loses nothing; the steps that carry the successes are to keep):
{attribution}

Make ONE small change that should raise the score: a clearer prompt, samples and a vote, a \
review and revision, a program that checks a number, or removing a step that carries nothing. \
Keep the workflow's name, inputs and outputs. Reply with the whole new workflow only."""


class Proposal(BaseModel):
    """One candidate child and what the gate said of it."""

    move: str
    attempt: int = 0
    verdict: Verdict
    reason: str | None = None
    text: str | None = None
    ir_hash: str | None = None
    cost_calls: int = 0
    cost_text: str | None = None
    repairs: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    messages: list[dict[str, str]] = Field(default_factory=list)
    attempts: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def failure_rows(rows: Sequence[RowReport], k: int, rng: random.Random) -> list[RowReport]:
    """Up to k rows the parent did not solve, drawn with the round's generator."""
    wrong = [r for r in rows if r.status != "error" and (r.score or 0.0) < 1.0]
    return rng.sample(wrong, min(k, len(wrong)))


def _failing_step(row: RowReport) -> str:
    failed = [name for name, s in row.steps.items() if s.failures]
    if failed:
        return f"the step {failed[0]} failed" + (f": {row.error}" if row.error else "")
    return "every step ran; the answer was wrong"


def optimizer_messages(
    parent: Node,
    text: str,
    report: EvalReport,
    failures: Sequence[RowReport],
    experience: Sequence[Experience],
    context: PromptContext,
) -> list[Message]:
    steps = "\n".join(
        f"- {name}: {s.runs} runs, {s.failures} failures, {s.tokens_in + s.tokens_out} tokens"
        for name, s in report.steps.items()
    )
    inputs = context.inputs
    shown = "\n".join(
        f"- inputs {_short(inputs.get(r.id, {}))}; expected {_short(r.target)}; "
        f"output {_short(r.output)}; {_failing_step(r)}"
        for r in failures
    )
    mine = [e for e in experience if e.parent == parent.id]
    exp = "\n".join(
        f"- round {e.round}: {e.summary} → {e.outcome}"
        + (
            f" ({e.before:.3f} → {e.after:.3f})"
            if e.before is not None and e.after is not None
            else ""
        )
        for e in mine
    )
    user = USER.format(
        task=context.task,
        note=context.note,
        score=f"{parent.val:.3f} on {parent.val_rows} rows" if parent.val is not None else "-",
        text=text.strip(),
        steps=steps or "(none)",
        failures=shown or "(none)",
        experience=exp or "(none yet)",
        attribution=context.attribution.get(parent.id) or "(not measured)",
    )
    return [
        Message(role="system", content=system_prompt(context.vocab, context.capabilities, ())),
        Message(role="user", content=user),
    ]


class PromptContext:
    """What every round's prompt shares: the task, the vocabulary and capabilities, the
    validation rows' inputs (by id), attribution summaries by node, the strategy's note."""

    def __init__(self, task: str, library: Sequence[Path], inputs: dict[str, dict[str, Any]]):
        self.task = task
        self.library = list(library)
        self.capabilities = load_capabilities(self.library) if self.library else []
        self.vocab = vocabulary(self.capabilities)
        self.inputs = inputs
        self.attribution: dict[int, str] = {}
        self.note = ""


async def model_proposal(
    backend: str | ModelBackend | None,
    messages: list[Message],
    gen: GenerationSettings,
    library: Sequence[Path],
    base: Path,
) -> Candidate:
    """One candidate from the optimizer model through `generate`'s decoding and repair."""
    result = await generate(
        "improve the workflow",
        model=backend,
        library=library,
        settings=gen,
        base_dir=base,
        prompt=messages,
    )
    return result.candidates[0]


async def gate(
    cand: Candidate,
    move: str,
    signature: tuple[Any, ...],
    seen: dict[str, int],
    base: Path,
    dry_run: bool,
) -> Proposal:
    """Judge a candidate (`generate`'s judge, against every flow in `seen`, which it extends):
    compiled, the seed's signature, new by IR hash, dry run passed."""
    from treadle.compiler import compile_source

    await judge_candidate(cand, base, seen, dry_run, "process")
    proposal = Proposal(
        move=move,
        verdict="valid",
        text=cand.text,
        ir_hash=cand.ir_hash,
        repairs=cand.repairs,
        prompt_tokens=cand.prompt_tokens,
        output_tokens=cand.tokens,
        attempts=[a.model_dump() for a in cand.attempts],
        cost_text=cand.cost_text,
        cost_calls=cand.cost.bound()[0] if cand.cost else 0,
    )
    if cand.status == "undecoded" or (cand.attempts and cand.attempts[-1].codes == ["undecoded"]):
        proposal.verdict, proposal.reason = "undecoded", "the decoder gave up"
        return proposal
    if cand.status != "compiled":
        errors = [d for d in cand.diagnostics if d.get("severity") == "error"]
        proposal.verdict = "errors"
        proposal.reason = "; ".join(str(d.get("message")) for d in errors[:3]) or "no workflow"
        return proposal
    if cand.duplicate_of is not None:
        proposal.verdict, proposal.reason = "duplicate", "the same Graph IR as a flow seen before"
        return proposal
    program = compile_source(cand.text, "<proposal>", base_dir=base)
    wf = program.workflows[program.entry]
    got = _signature(wf)
    if got != signature:
        proposal.verdict = "signature"
        proposal.reason = f"the workflow's signature changed: {got} (the seed's: {signature})"
        return proposal
    if cand.dry_run is not None and not cand.dry_run.ok:
        proposal.verdict, proposal.reason = "dry run failed", cand.dry_run.error
        return proposal
    return proposal


def _signature(wf: Any) -> tuple[Any, ...]:
    return (
        tuple((f.name, f.type) for f in wf.inputs),
        tuple((f.name, f.type) for f in wf.outputs),
    )


def text_candidate(text: str) -> Candidate:
    """A candidate for text the loop wrote itself (a deterministic move)."""
    return Candidate(index=0, text=text, status="undecoded")


__all__ = [
    "PromptContext",
    "Proposal",
    "failure_rows",
    "gate",
    "model_proposal",
    "optimizer_messages",
    "text_candidate",
]
