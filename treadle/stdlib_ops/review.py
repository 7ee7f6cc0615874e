"""`review SOLUTION [for PROBLEM] [given NOTES]`: a verdict and feedback, as a record
(AFlow's Review).

The verdict is read from a `Verdict:` line (approve/reject and their synonyms). A reply with
no readable verdict is not approved: a review that cannot be read is no evidence that the
solution is right, and the trace records `review.unreadable`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops._model_options import ModelOptions, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, constant, prep, register, subject


class Review(BaseModel):
    approved: bool = Field(description="whether the reviewer accepts the solution")
    feedback: str = Field(description="what is wrong and how to fix it (or why it is right)")


class ReviewArgs(OpArgs):
    solution: str = subject("the solution to review")
    problem: str | None = prep("for", "the problem it should solve", default=None)
    context: str | None = prep(
        "given", "evidence for the reviewer (a test report, a check)", default=None
    )


class ReviewOptions(ModelOptions):
    pass


_YES = {
    "approve",
    "approved",
    "accept",
    "accepted",
    "correct",
    "yes",
    "true",
    "pass",
    "passed",
    "ok",
    "right",
    "valid",
}
_NO = {
    "reject",
    "rejected",
    "incorrect",
    "wrong",
    "no",
    "false",
    "fail",
    "failed",
    "invalid",
    "not",
}
_VERDICT_RE = re.compile(
    r"^[ \t>*#_]*(?:verdict|decision|review(?:_result)?)[ \t*_]*[:=：][ \t*_`'\"]*([A-Za-z]+)",
    re.IGNORECASE | re.MULTILINE,
)
_FEEDBACK_RE = re.compile(
    r"^[ \t>*#_]*feedback[ \t*_]*[:=：][ \t*_]*", re.IGNORECASE | re.MULTILINE
)


def parse_review(reply: str) -> tuple[Review, bool]:
    """The review a reply gives, and whether its verdict was readable."""
    text = reply.strip()
    verdict: bool | None = None
    found = _VERDICT_RE.findall(text)
    if found:
        verdict = _word_verdict(found[-1])
    if verdict is None:
        # a reply that opens with the verdict: "Approve. The solution ..."
        first = re.match(r"[\W_]*([A-Za-z]+)", text)
        verdict = _word_verdict(first.group(1)) if first else None
    label = _FEEDBACK_RE.search(text)
    feedback = text[label.end() :] if label else _VERDICT_RE.sub("", text)
    feedback = feedback.strip()
    return Review(approved=bool(verdict), feedback=feedback), verdict is not None


def _word_verdict(word: str) -> bool | None:
    word = word.lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    return None


async def run(ctx: OpContext, args: ReviewArgs, options: ReviewOptions) -> Review:
    context = f"\nEvidence to consider:\n{args.context}\n" if args.context else ""
    content = prompt("review").format(
        context=context, problem=args.problem or "(not given)", solution=args.solution
    )
    reply = await ask(ctx, options, content)
    review, readable = parse_review(reply)
    if not readable:
        ctx.event("review.unreadable", reason="no verdict in the reply; not approved")
    return review


register(
    Operator(
        name="review",
        summary="Judge a solution; a record with `approved` and `feedback`.",
        args=ReviewArgs,
        options=ReviewOptions,
        output=Review,
        run=run,
        ablation=constant({"approved": True, "feedback": ""}, "approved with no feedback"),
        uses_model=True,
    )
)
