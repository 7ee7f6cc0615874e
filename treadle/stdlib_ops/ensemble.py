"""`ensemble CANDIDATES [for PROBLEM]`: the model picks the most consistent of several
candidates (AFlow's ScEnsemble).

The model answers with a label; an unreadable or out-of-range label never fails the step:
the candidates' majority (`vote.majority` over their final answers, or their code) is taken
instead and the trace records `ensemble.fallback` with the reason.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any, Literal

from pydantic import Field

from treadle.errors import StepError
from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops import _code, _text
from treadle.stdlib_ops._model_options import ModelOptions, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, first_of, prep, register, subject
from treadle.stdlib_ops.vote import majority


class EnsembleArgs(OpArgs):
    candidates: list[Any] = subject("the candidate solutions (at least one; nulls are dropped)")
    problem: str | None = prep("for", "the problem they solve", default=None)


class EnsembleOptions(ModelOptions):
    compare: Literal["auto", "answer", "number", "text", "code"] = Field(
        "auto",
        description="how the fallback vote compares candidates (auto: code by AST, "
        "other text by its final answer)",
    )


def labels(n: int) -> list[str]:
    """A, B, C, ... for up to 26 candidates; 1, 2, 3, ... beyond."""
    if n <= len(string.ascii_uppercase):
        return list(string.ascii_uppercase[:n])
    return [str(i + 1) for i in range(n)]


#: the label line the prompt asks for (`Choice: B`, `**Choice:** (B)`, `Answer: 2`)
_LABELLED_RE = re.compile(
    r"^[ \t>*#_]*(?:final[ \t]+)?(?:choice|answer|selection|pick)[ \t*_]*[:=：][ \t*_`'\"(\[]*"
    r"([A-Za-z]|\d+)\b",
    re.IGNORECASE | re.MULTILINE,
)
#: a label named in prose (`I pick solution B`); the label itself must be upper case
_NAMED_RE = re.compile(r"(?i:\b(?:solution|option|candidate|choice))\s+\(?([A-Z]|\d+)\b")


def parse_choice(reply: str, n: int) -> tuple[int | None, str]:
    """The 0-based index the reply picks, or None with the reason it is not a valid choice.

    Reads a reply that is only a label, else the last `Choice: X` line, else the last
    `solution X` in prose. Letters and 1-based numbers are both accepted.
    """
    text = reply.strip()
    bare = text.strip("*_`'\"().[] \n")
    token: str | None = None
    if re.fullmatch(r"[A-Za-z]|\d+", bare):
        token = bare
    else:
        for pattern in (_LABELLED_RE, _NAMED_RE):
            found = pattern.findall(text)
            if found:
                token = found[-1]
                break
    if token is None:
        return None, "the reply names no choice"
    names = labels(n)
    if token.isdigit():
        index = int(token) - 1
        if 0 <= index < n:
            return index, ""
        return None, f"choice {token} is not one of 1-{n}"
    if token.upper() in names:
        return names.index(token.upper()), ""
    return None, f"choice {token!r} is not one of {names[0]}-{names[-1]}"


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _vote_form(candidate: Any, compare: str) -> Any:
    """What the fallback vote compares: prose by its final answer, code as code."""
    if not isinstance(candidate, str):
        return candidate
    if compare == "answer" or (compare == "auto" and not _code.is_code(candidate)):
        return _text.final_answer(candidate)
    return candidate


def fallback(candidates: list[Any], compare: str) -> int:
    """The index of the majority candidate (the first one giving the most common answer)."""
    forms = [_vote_form(c, compare) for c in candidates]
    kind = "auto" if compare == "answer" else compare
    winner = majority(forms, kind)
    if winner is None:
        return 0
    key = _text.normalize(winner, kind)
    return next(i for i, f in enumerate(forms) if _text.normalize(f, kind) == key)


async def run(ctx: OpContext, args: EnsembleArgs, options: EnsembleOptions) -> Any:
    candidates = [c for c in args.candidates if c is not None]
    if not candidates:
        raise StepError("ensemble needs at least one candidate; the list was empty")
    if len(candidates) == 1:
        ctx.event("ensemble.single", reason="one candidate: taken without asking the model")
        return candidates[0]
    names = labels(len(candidates))
    listing = "\n\n".join(
        f"{name}.\n{_render(c)}" for name, c in zip(names, candidates, strict=True)
    )
    content = prompt("ensemble").format(
        problem=args.problem or "(not given)",
        candidates=listing,
        labels=", ".join(names),
    )
    reply = await ask(ctx, options, content)
    index, reason = parse_choice(reply, len(candidates))
    if index is None:
        index = fallback(candidates, options.compare)
        ctx.event("ensemble.fallback", reason=reason, chosen=names[index], method="majority vote")
    else:
        ctx.event("ensemble.choice", chosen=names[index])
    return candidates[index]


register(
    Operator(
        name="ensemble",
        summary="The model picks the most consistent candidate; an invalid pick falls back to "
        "a majority vote.",
        args=EnsembleArgs,
        options=EnsembleOptions,
        output=Any,
        run=run,
        ablation=first_of("candidates"),
        output_item_of="candidates",
        uses_model=True,
    )
)
