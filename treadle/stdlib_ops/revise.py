"""`revise SOLUTION using FEEDBACK [for PROBLEM]`: the solution rewritten to address the
feedback (AFlow's Revise).

Code stays code: when the solution is Python (or `kind` says so), the reply's code block is
taken, so a repair loop can run or test the result directly. A solution of definitions alone
(a function under test) gets back definitions alone, without demo calls; a script stays whole.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops import _code, _text
from treadle.stdlib_ops._model_options import ReplyControls, ask
from treadle.stdlib_ops._prompts import prompt
from treadle.stdlib_ops.registry import OpArgs, Operator, passes, prep, register, subject


class ReviseArgs(OpArgs):
    solution: str = subject("the solution to rewrite (text or code)")
    feedback: str = prep("using", "what to fix (a review's or a test's feedback)")
    problem: str | None = prep("for", "the problem the solution solves", default=None)


class ReviseOptions(ReplyControls):
    kind: Literal["auto", "text", "code"] = Field(
        "auto", description="what the solution is (auto: code when it parses as Python definitions)"
    )
    max_tokens: int = Field(1024, ge=1, le=32768, description="the most tokens the reply may have")


_FORMS = {
    "code": "Reply with the complete corrected code in one ```python block, without tests or "
    "example calls.",
    "text": "Reply with the complete improved solution only.",
}


async def run(ctx: OpContext, args: ReviseArgs, options: ReviseOptions) -> str:
    kind = options.kind
    if kind == "auto":
        kind = "code" if _code.is_code(args.solution) else "text"
    content = prompt("revise").format(
        problem=args.problem or "(not given)",
        solution=args.solution,
        feedback=args.feedback or "(none)",
        form=_FORMS[kind],
    )
    reply = await ask(ctx, options, content)
    if kind == "code":
        code = _text.code_in(reply)
        return _code.sanitize(code) if _code.only_definitions(args.solution) else code
    return reply.strip()


register(
    Operator(
        name="revise",
        summary="Rewrite a solution to address feedback; code in, code out.",
        args=ReviseArgs,
        options=ReviseOptions,
        output=str,
        run=run,
        ablation=passes("solution"),
        uses_model=True,
    )
)
